"""MCP resources (read-only views of the daemon for the caller) and the ``converse`` prompt."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

import mcp_types as types
from mcp.shared.exceptions import MCPError

from voicemoded.api.errors import ErrorCode, VoicemodeError
from voicemoded.config import Caller
from voicemoded.mcp.backend import JSON, Backend

JSON_MIME = "application/json"


async def _no_progress(done: float, total: float | None, message: str) -> None:
    return None


RESOURCES: dict[str, tuple[str, str, Callable[[Backend, Caller], Awaitable[JSON]]]] = {
    "voicemode://config": (
        "config",
        "Effective settings for this project (secrets redacted) and where each came from.",
        lambda b, c: b.config_get([], c),
    ),
    "voicemode://voices": (
        "voices",
        "Preferred voices and the voices each TTS endpoint offers.",
        lambda b, c: b.voices(c),
    ),
    "voicemode://services": (
        "services",
        "Local speech services and their state.",
        lambda b, c: b.service("status", "", 0, _no_progress),
    ),
    "voicemode://conversations": (
        "conversations",
        "Recent conversation turns: message, answer, timings.",
        lambda b, c: b.conversations(20),
    ),
}

CONVERSE_PROMPT = """\
You are holding a spoken conversation with the user through the `converse` tool.
- Call converse with what you want to say; it speaks it and returns the user's spoken answer as text.
- Speak the way people talk: short sentences, one idea at a time, no markdown, lists, code or URLs.
- Keep each message brief (one to three sentences) and end with a question when you expect an answer.
- If the answer is empty or end_reason is no_speech, ask once more briefly, then stop and say so in text.
- To say something without waiting for an answer (e.g. before a long task), set wait_for_response=false.
- If converse returns an error, tell the user in text what failed and the next step it names.
"""


def list_resources() -> types.ListResourcesResult:
    return types.ListResourcesResult(
        resources=[
            types.Resource(uri=uri, name=name, description=doc, mime_type=JSON_MIME)
            for uri, (name, doc, _) in RESOURCES.items()
        ]
    )


async def read_resource(backend: Backend, caller: Caller, uri: str) -> types.ReadResourceResult:
    entry = RESOURCES.get(uri)
    if entry is None:
        raise MCPError(types.INVALID_PARAMS, f"unknown resource {uri}", {"known": list(RESOURCES)})
    try:
        payload = await entry[2](backend, caller)
    except VoicemodeError as exc:
        code = types.INVALID_PARAMS if exc.code is ErrorCode.INVALID_ARGUMENT else types.INTERNAL_ERROR
        raise MCPError(code, f"{exc.message}" + (f"; next step: {exc.hint}" if exc.hint else "")) from exc
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    return types.ReadResourceResult(
        contents=[types.TextResourceContents(uri=uri, mime_type=JSON_MIME, text=text)]
    )


def list_prompts() -> types.ListPromptsResult:
    return types.ListPromptsResult(
        prompts=[
            types.Prompt(
                name="converse",
                description="How to hold a voice conversation with the user.",
                arguments=[types.PromptArgument(name="topic", description="What to talk about.")],
            )
        ]
    )


def get_prompt(name: str, arguments: dict[str, str] | None) -> types.GetPromptResult:
    if name != "converse":
        raise MCPError(types.INVALID_PARAMS, f"unknown prompt {name!r}", {"known": ["converse"]})
    text = CONVERSE_PROMPT
    topic = (arguments or {}).get("topic", "").strip()
    if topic:
        text += f"\nStart the conversation about: {topic}\n"
    return types.GetPromptResult(
        description="Voice conversation",
        messages=[types.PromptMessage(role="user", content=types.TextContent(type="text", text=text))],
    )
