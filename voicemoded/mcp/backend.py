"""What the MCP tools and resources ask of the daemon, and the daemon's implementation of it.

The MCP layer only knows :class:`Backend`: plain JSON-able answers, typed :class:`VoicemodeError`s for
failures, and a progress callback for long operations. :class:`DaemonBackend` implements it over the
daemon's parts; a part that is not wired into this daemon yet makes its tools fail with a
``FailedPrecondition`` that says so, instead of pretending to work.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import structlog

from voicemoded import __version__
from voicemoded.api.errors import FailedPrecondition, InvalidArgument, PermissionDenied
from voicemoded.config import SETTINGS, Caller, ConfigManager, SettingInfo, format_value, redact
from voicemoded.config.schema import ENDPOINT_KEYS

log = structlog.get_logger(__name__)

#: ``progress(done, total, message)``; a no-op when the MCP client asked for no progress.
ProgressFn = Callable[[float, float | None, str], Awaitable[None]]
JSON = dict[str, Any]

SERVICE_ACTIONS = ("status", "start", "stop", "restart", "enable", "disable", "logs", "install")


class Backend(Protocol):
    """The daemon as the MCP session sees it. Every method may raise ``VoicemodeError``."""

    async def converse(self, args: JSON, caller: Caller, progress: ProgressFn) -> JSON: ...

    async def service(self, action: str, name: str, lines: int, progress: ProgressFn) -> JSON: ...

    async def providers(self, action: str, kind: str) -> JSON: ...

    async def devices(self) -> JSON: ...

    async def config_get(self, keys: Sequence[str], caller: Caller) -> JSON: ...

    async def config_set(self, key: str, value: str, scope: str, caller: Caller) -> JSON: ...

    async def statistics(self, recent: int) -> JSON: ...

    async def voices(self, caller: Caller) -> JSON: ...

    async def conversations(self, recent: int) -> JSON: ...


class TurnRunner(Protocol):
    """The conversation loop's entry point (``Conversation.turn``)."""

    def turn(
        self, params: Any, emit: Callable[[Any], None], *, mode: str, client: str = "", cwd: str = ""
    ) -> Awaitable[Any]: ...


def plain(value: Any) -> Any:
    """A dataclass/enum/tuple tree as JSON-able values (floats rounded to the millisecond)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return plain(value.value)
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(v) for v in value]
    if isinstance(value, float):
        return round(value, 3)
    if value is None or isinstance(value, str | int | bool):
        return value
    return str(value)


def missing(what: str) -> FailedPrecondition:
    return FailedPrecondition(
        f"{what} is not available in this daemon yet",
        hint="update voicemode (`pip install -U voicemode`) and restart the daemon "
        "(`voicemodectl daemon restart`)",
        fields={"part": what},
    )


class DaemonBackend:
    """:class:`Backend` over the daemon's parts; every part but the configuration is optional.

    A part is given directly, or found on ``parts`` (the daemon's ``Core``) at each use, so a part the
    daemon builds lazily (the audio stack) or replaces on reload (the provider registry) is always the
    current one. An explicit part wins over ``parts``.
    """

    def __init__(
        self,
        config: ConfigManager,
        *,
        parts: object | None = None,
        supervisor: Any | None = None,
        speech: Any | None = None,
        conversation: TurnRunner | None = None,
        journal: Any | None = None,
        audio: Any | None = None,
        started_at: float | None = None,
    ) -> None:
        self._config = config
        self._parts = parts
        self._given: dict[str, Any] = {
            "supervisor": supervisor,
            "speech": speech,
            "conversation": conversation,
            "journal": journal,
            "audio": audio,
        }
        self._started = time.monotonic() - (time.time() - started_at) if started_at else time.monotonic()

    def _part(self, name: str, what: str) -> Any:
        part = self._given.get(name)
        if part is None and self._parts is not None:
            part = getattr(self._parts, name, None)
        if part is None:
            raise missing(what)
        return part

    # --- conversation ------------------------------------------------------------------------------
    async def converse(self, args: JSON, caller: Caller, progress: ProgressFn) -> JSON:
        conversation = self._part("conversation", "the conversation loop")
        from voicemoded.conversation.loop import turn_events
        from voicemoded.conversation.params import resolve

        params = resolve(self._config.resolve(caller).settings, args)
        events = turn_events(
            conversation, params, mode="converse", client=caller.client or "mcp", cwd=caller.cwd
        )
        step = 0
        async with contextlib.aclosing(events):  # a cancelled call closes it: the audio stops first
            async for event in events:
                if event.kind == "done":
                    return turn_summary(event.result)
                if event.kind == "transcript":
                    continue
                step += 1
                await progress(step, None, f"{event.kind}: {event.detail}" if event.detail else event.kind)
        raise AssertionError("a turn ends with its done event or raises its error")

    async def statistics(self, recent: int) -> JSON:
        out: JSON = {
            "daemon": {"version": __version__, "pid": os.getpid(), "uptime_s": self._uptime()},
        }
        try:
            journal = self._part("journal", "the conversation journal")
        except FailedPrecondition as exc:
            out["turns"] = exc.message
            return out
        out["turns"] = journal.turns
        out["errors"] = journal.errors
        out["timings"] = {s.name: {"p50": s.p50, "p90": s.p90, "max": s.max, "n": s.count}
                          for s in journal.summaries()}  # fmt: skip
        out["recent"] = [record_summary(r) for r in journal.recent(recent)]
        return plain(out)

    async def conversations(self, recent: int) -> JSON:
        journal = self._part("journal", "the conversation journal")
        return {"recent": [record_summary(r) for r in journal.recent(recent)]}

    def _uptime(self) -> float:
        return round(time.monotonic() - self._started, 1)

    # --- services ------------------------------------------------------------------------------------
    async def service(self, action: str, name: str, lines: int, progress: ProgressFn) -> JSON:
        if action not in SERVICE_ACTIONS:
            raise InvalidArgument(
                f"unknown action {action!r}", hint=f"use one of {', '.join(SERVICE_ACTIONS)}"
            )
        sup = self._part("supervisor", "the service supervisor")
        if action == "status" and not name:
            return {"services": [service_summary(s) for s in sup.list()]}
        if not name:
            raise InvalidArgument(
                f"{action} needs a service name", hint=f"name one of {', '.join(s.name for s in sup.list())}"
            )
        if action == "status":
            return service_summary(sup.get(name))
        if action in ("start", "restart"):
            from voicemoded.supervisor.states import ServiceState

            await progress(0, None, f"{action} {name}")
            await getattr(sup, action)(name)
            # Answer with the outcome (ready, or given up), not the moment the attempt began.
            await sup.wait_for(name, (ServiceState.RUNNING, ServiceState.FATAL), 180.0)
            return service_summary(sup.get(name))
        if action == "stop":
            return service_summary(await sup.stop(name))
        if action in ("enable", "disable"):
            return service_summary(sup.set_autostart(name, action == "enable"))
        if action == "logs":
            return {"name": name, "lines": await sup.tail_logs(name, max(1, min(lines, 1000)))}
        return await self._install(name, progress)

    async def _install(self, name: str, progress: ProgressFn) -> JSON:
        """Install a service's backend, each pip line a progress notification; then its spec is rebuilt."""
        installer = self._part("installer", "installing services from the assistant")
        step = 0

        async def on_line(line: str) -> None:
            nonlocal step
            step += 1
            await progress(step, None, line)

        status = await installer.install(name, on_line)
        refresh = getattr(self._parts, "refresh_services", None)
        if refresh is not None:
            await refresh()
        return {"name": name, "installed": bool(getattr(status, "installed", True)), "steps": step}

    async def providers(self, action: str, kind: str) -> JSON:
        speech = self._part("speech", "the provider registry")
        if kind not in ("", "stt", "tts"):
            raise InvalidArgument(f"unknown kind {kind!r}", hint="use stt, tts or leave it empty")
        if action == "list":
            statuses = speech.list(kind or None)
        elif action == "probe":
            statuses = await speech.probe(kind or None)
        else:
            raise InvalidArgument(f"unknown action {action!r}", hint="use list or probe")
        return {"endpoints": [endpoint_summary(s) for s in statuses]}

    async def voices(self, caller: Caller) -> JSON:
        speech = self._part("speech", "the provider registry")
        configured = self._config.resolve(caller).settings.voices
        return {
            "preferred": list(configured),
            "endpoints": [
                {"url": s.url, "name": s.name, "voices": list(s.voices)} for s in speech.list("tts")
            ],
        }

    async def devices(self) -> JSON:
        audio = self._part("audio", "the audio device layer")

        def gather() -> list[Any]:
            audio.refresh()
            return audio.devices()

        return {"devices": plain(await asyncio.to_thread(gather))}

    # --- configuration -----------------------------------------------------------------------------
    async def config_get(self, keys: Sequence[str], caller: Caller) -> JSON:
        resolved = self._config.resolve(caller)
        wanted = {ConfigManager.info(k).name for k in keys} if keys else None
        values: JSON = {}
        origins: JSON = {}
        for info in SETTINGS:
            if wanted is not None and info.name not in wanted:
                continue
            text = format_value(getattr(resolved.settings, info.name))
            values[info.env] = redact(text) if info.secret else text
            origin = resolved.origins[info.name]
            if wanted is not None or origin.layer != "default":
                origins[info.env] = f"{origin.file}:{origin.line}" if origin.file else origin.layer
        return {"values": values, "from": origins}

    async def config_set(self, key: str, value: str, scope: str, caller: Caller) -> JSON:
        info = ConfigManager.info(key)
        self._check_door_may_change(info)
        path, line = self._config.set(info.env, value, scope or "user", caller)
        log.info("mcp.config_set", key=info.env, scope=scope or "user", file=str(path))
        effective = await self.config_get([info.env], caller)
        return {"key": info.env, "written": f"{path}:{line}", "effective": effective["values"][info.env]}

    def _check_door_may_change(self, info: SettingInfo) -> None:
        """Where audio goes (endpoint URLs) and the keys for it change only if the person allowed it.

        An assistant can be steered by text it read; it must not be able to send the person's recordings
        to a server of someone else's choosing. Only the user's own file grants it: a project file or
        a caller's environment could have been written by whoever steers the assistant.
        """
        if not sends_audio_elsewhere(info) or self._config.user_file_allows_endpoint_changes():
            return
        what = "a secret" if info.secret else "where audio goes, what programs run or who may connect"
        raise PermissionDenied(
            f"{info.env} decides {what} and cannot be changed through the assistant",
            hint=f"change it yourself (`voicemodectl config set {info.env} …` or edit "
            f"{self._config.user_file}); to let the assistant change endpoints and keys, put "
            f"VOICEMODE_MCP_CAN_CHANGE_ENDPOINTS=true in {self._config.user_file}",
            fields={"key": info.env},
        )


def sends_audio_elsewhere(info: SettingInfo) -> bool:
    """Endpoint URLs, secrets, program paths, who may connect, and the switch that guards them (an
    assistant must not grant itself)."""
    return (
        info.secret
        or info.env in ENDPOINT_KEYS
        or info.env.endswith(("_URL", "_URLS"))
        or info.env == "VOICEMODE_MCP_CAN_CHANGE_ENDPOINTS"
    )


def turn_summary(result: Any) -> JSON:
    """The fields of a finished turn an assistant needs, timings in seconds."""
    out = {
        "text": getattr(result, "text", ""),
        "end_reason": getattr(result, "end_reason", ""),
        "voice": getattr(result, "voice", ""),
        "tts_provider": getattr(result, "tts_provider", ""),
        "stt_provider": getattr(result, "stt_provider", ""),
        "recording": getattr(result, "recording_path", ""),
        "warnings": "; ".join(getattr(result, "warnings", ())),  # what could not be written (full disk)
        "timings": plain(getattr(result, "timings", {})),
    }
    return {k: v for k, v in out.items() if v not in ("", None, {})}


def record_summary(record: Any) -> JSON:
    out = {
        "turn_id": getattr(record, "turn_id", ""),
        "time": getattr(record, "time", 0.0),
        "message": getattr(record, "message", ""),
        "text": getattr(record, "text", ""),
        "end_reason": getattr(record, "end_reason", ""),
        "error": getattr(record, "error", "") or "",
        "total_s": getattr(getattr(record, "timings", None), "total", None),
    }
    return {k: plain(v) for k, v in out.items() if v not in ("", None)}


def service_summary(status: Any) -> JSON:
    keep = ("name", "state", "backend", "autostart", "port", "pid", "uptime", "restarts", "reason")
    out = {k: plain(getattr(status, k, None)) for k in keep}
    if not getattr(status, "installed", True):
        out["install_hint"] = getattr(status, "install_hint", "")
    return {k: v for k, v in out.items() if v is not None}


def endpoint_summary(status: Any) -> JSON:
    keep = ("kind", "url", "name", "source", "health", "breaker", "latency_ms", "last_error", "models")
    out = {k: plain(getattr(status, k, None)) for k in keep}
    return {k: v for k, v in out.items() if v not in (None, "", [])}
