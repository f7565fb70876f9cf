"""The MCP tools: their schemas (kept small: every byte is in the assistant's context) and dispatch.

Schemas are written by hand rather than derived from function signatures so their size is a choice:
one line per parameter, defaults stated where they are fixed. Arguments are checked against the schema
before anything runs, and every failure of a known tool is an ``isError`` result that says what went
wrong and what to do next (the assistant reads it and can correct itself), never a success that hides
it. An unknown tool name is the one protocol error (-32602), as the 2025-06-18 and 2025-11-25 specs say.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import jsonschema
import mcp_types as types

from voicemoded.api.errors import InvalidArgument, VoicemodeError
from voicemoded.config import Caller
from voicemoded.mcp.backend import JSON, ROOM_ACTIONS, SERVICE_ACTIONS, Backend, ProgressFn


def _obj(props: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": props, "additionalProperties": False}
    if required:
        schema["required"] = list(required)
    return schema


def _p(type_: str, doc: str, **extra: Any) -> dict[str, Any]:
    return {"type": type_, "description": doc, **extra}


CONVERSE = _obj(
    {
        "message": _p("string", "What to say (spoken aloud)."),
        "wait_for_response": _p("boolean", "Listen for the answer after speaking.", default=True),
        "listen_duration_max": _p("number", "Max seconds to listen.", default=120),
        "listen_duration_min": _p("number", "Min seconds before silence may end listening.", default=2),
        "voice": _p("string", "TTS voice (default from config)."),
        "tts_provider": _p("string", "TTS endpoint name or URL (default: best healthy one)."),
        "tts_model": _p("string", "TTS model, e.g. tts-1, gpt-4o-mini-tts."),
        "tts_instructions": _p("string", "Tone/style, for models that honour it."),
        "speed": _p("number", "Speech rate 0.25-4.", minimum=0.25, maximum=4),
        "vad_aggressiveness": _p(
            "integer", "0 (lenient) to 3 (strict) speech detection.", minimum=0, maximum=3
        ),
        "disable_silence_detection": _p("boolean", "Listen for the full max duration.", default=False),
        "chime_enabled": _p("boolean", "Chimes when listening starts/ends (default from config)."),
        "audio_format": _p("string", "Format of saved audio.", enum=["wav", "flac", "mp3", "opus"]),
        "skip_tts": _p("boolean", "Don't speak; only listen.", default=False),
        "transport": _p("string", "auto: the room if someone is in it.", enum=["local", "livekit", "auto"]),
        "room": _p("string", "LiveKit room (livekit/auto)."),
    },
    ("message",),
)

TOOLS: list[types.Tool] = [
    types.Tool(
        name="converse",
        description="Speak a message to the user and, by default, return their spoken answer as text.",
        input_schema=CONVERSE,
    ),
    types.Tool(
        name="service",
        description="Local speech services (whisper, kokoro, piper, livekit): status, control, logs.",
        input_schema=_obj(
            {
                "action": _p("string", "What to do.", enum=list(SERVICE_ACTIONS)),
                "name": _p("string", "Service; empty with status lists all."),
                "lines": _p("integer", "Log lines for logs.", default=50, minimum=1, maximum=1000),
            },
            ("action",),
        ),
    ),
    types.Tool(
        name="providers",
        description="STT/TTS endpoints with health; probe re-checks them now.",
        input_schema=_obj(
            {
                "action": _p("string", "list or probe.", enum=["list", "probe"], default="list"),
                # No enum: the application checks the kind, with the same error on every door.
                "kind": _p("string", "Only stt or tts."),
            }
        ),
    ),
    types.Tool(name="devices", description="Audio input/output devices.", input_schema=_obj({})),
    types.Tool(
        name="config",
        description="Read or change voicemode settings (VOICEMODE_* keys) for this project or user.",
        input_schema=_obj(
            {
                "action": _p("string", "get or set.", enum=["get", "set"], default="get"),
                "key": _p("string", "Setting, e.g. VOICEMODE_VOICES; empty get lists all."),
                "value": _p("string", "New value for set."),
                "scope": _p("string", "Where set writes.", enum=["user", "project"], default="user"),
            }
        ),
    ),
    types.Tool(
        name="statistics",
        description="Daemon status, recent conversation turns and timing summaries.",
        input_schema=_obj({"recent": _p("integer", "Turns to list.", default=5, minimum=0, maximum=100)}),
    ),
    types.Tool(
        name="rooms",
        description="LiveKit rooms: list, create, delete, participants, or a join token for a person.",
        input_schema=_obj(
            {
                "action": _p("string", "What to do.", enum=list(ROOM_ACTIONS), default="list"),
                "room": _p("string", "Room name (all but list)."),
                "identity": _p("string", "Who joins (token)."),
                "name": _p("string", "Their display name (token)."),
                "ttl": _p("number", "Token lifetime in seconds.", default=3600),
            }
        ),
    ),
]

TOOL_NAMES = frozenset(t.name for t in TOOLS)
_VALIDATORS = {t.name: jsonschema.Draft202012Validator(t.input_schema) for t in TOOLS}


def schema_bytes() -> int:
    """Size of the ``tools/list`` payload the assistant carries in its context."""
    return len(types.ListToolsResult(tools=TOOLS).model_dump_json(by_alias=True, exclude_none=True))


def check_arguments(name: str, arguments: dict[str, Any]) -> None:
    validator = _VALIDATORS.get(name)
    if validator is None:
        raise InvalidArgument(f"unknown tool {name!r}", hint=f"use one of {', '.join(t.name for t in TOOLS)}")
    errors = sorted(validator.iter_errors(arguments), key=lambda e: list(e.path))
    if errors:
        where = ".".join(str(p) for p in errors[0].path)
        raise InvalidArgument(
            f"{name}: {where + ': ' if where else ''}{errors[0].message}",
            hint=f"fix the {where or 'arguments'} per the {name} tool's input schema",
        )


def text_result(payload: JSON | str, *, error: bool = False) -> types.CallToolResult:
    text = (
        payload
        if isinstance(payload, str)
        else json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    )
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], is_error=error)


def error_result(exc: VoicemodeError) -> types.CallToolResult:
    text = f"Error ({exc.code.value}): {exc.message}"
    if exc.hint:
        text += f"\nNext step: {exc.hint}"
    return text_result(text, error=True)


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One tools/call as the session sees it: who is calling and how to report progress."""

    name: str
    arguments: dict[str, Any]
    caller: Caller
    progress: ProgressFn
    extra_statistics: Callable[[], JSON]


async def dispatch(backend: Backend, call: ToolCall) -> JSON | str:
    """Run one tool against the backend; raises ``VoicemodeError`` for the session to turn into isError.
    A name that is not a built-in tool's is a plugin's (the session refused any other)."""
    if call.name not in TOOL_NAMES:
        return await backend.plugin_tool(call.name, call.arguments)
    a = call.arguments
    check_arguments(call.name, a)
    handlers: dict[str, Callable[[], Awaitable[JSON]]] = {
        "converse": lambda: backend.converse(a, call.caller, call.progress),
        "service": lambda: backend.service(a["action"], a.get("name", ""), a.get("lines", 50), call.progress),
        "providers": lambda: backend.providers(a.get("action", "list"), a.get("kind", "")),
        "devices": backend.devices,
        "config": lambda: _config(backend, a, call.caller),
        "statistics": lambda: _statistics(backend, a.get("recent", 5), call.extra_statistics),
        "rooms": lambda: backend.rooms(a.get("action", "list"), a),
    }
    return await handlers[call.name]()


async def _config(backend: Backend, a: dict[str, Any], caller: Caller) -> JSON:
    key = a.get("key", "")
    if a.get("action", "get") == "get":
        return await backend.config_get([key] if key else [], caller)
    if not key or "value" not in a:
        raise InvalidArgument("config set needs a key and a value", hint="give both key and value")
    return await backend.config_set(key, a["value"], a.get("scope", "user"), caller)


async def _statistics(backend: Backend, recent: int, extra: Callable[[], JSON]) -> JSON:
    out = await backend.statistics(recent)
    out.update(extra())
    return out
