"""What the MCP tools and resources ask of the daemon, answered by the application layer.

The MCP layer only knows :class:`Backend`: plain JSON-able answers, typed :class:`VoicemodeError`s for
failures, and a progress callback for long operations. :class:`DaemonBackend` implements it as a pure
translation: each method decodes the tool's arguments, makes one call on :class:`~voicemoded.app.
application.App` (as the MCP door, which may not redirect audio) and renders the answer as JSON. The
rules (defaults, checks, start-and-wait) are the application's, the same for every door.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from voicemoded.api.errors import InvalidArgument
from voicemoded.app.application import App
from voicemoded.app.doors import MCP
from voicemoded.app.services import Service
from voicemoded.app.tools import ToolInfo
from voicemoded.config import Caller
from voicemoded.livekit.rooms import JoinToken, Participant, Room
from voicemoded.providers import EndpointStatus
from voicemoded.providers.voices import describe_voice
from voicemoded.render import plain

#: ``progress(done, total, message)``; a no-op when the MCP client asked for no progress.
ProgressFn = Callable[[float, float | None, str], Awaitable[None]]
JSON = dict[str, Any]

SERVICE_ACTIONS = ("status", "start", "stop", "restart", "enable", "disable", "logs", "install")
ROOM_ACTIONS = ("list", "create", "delete", "participants", "token")


class Backend(Protocol):
    """The daemon as the MCP session sees it. Every method may raise ``VoicemodeError``."""

    async def converse(self, args: JSON, caller: Caller, progress: ProgressFn) -> JSON: ...

    async def service(self, action: str, name: str, lines: int, progress: ProgressFn) -> JSON: ...

    async def providers(self, action: str, kind: str) -> JSON: ...

    async def devices(self) -> JSON: ...

    async def config_get(self, keys: Sequence[str], caller: Caller) -> JSON: ...

    async def config_set(self, key: str, value: str, scope: str, caller: Caller) -> JSON: ...

    async def statistics(self, recent: int) -> JSON: ...

    async def rooms(self, action: str, args: JSON) -> JSON: ...

    async def voices(self, caller: Caller) -> JSON: ...

    async def conversations(self, recent: int) -> JSON: ...

    def plugin_tools(self) -> Sequence[ToolInfo]:
        """The tools plugins add, listed after the built-in ones."""
        ...

    async def plugin_tool(self, name: str, arguments: JSON) -> JSON | str: ...


class DaemonBackend:
    """:class:`Backend` over the daemon's application layer."""

    def __init__(self, app: App) -> None:
        self._app = app

    # --- conversation ------------------------------------------------------------------------------
    async def converse(self, args: JSON, caller: Caller, progress: ProgressFn) -> JSON:
        """The turn's events become progress notifications; its result is the answer."""
        events = self._app.conversations.turn(args, caller, MCP)
        step = 0
        async with contextlib.aclosing(events):  # a cancelled call closes it: the audio stops first
            async for event in events:
                if event.kind == "done" and event.result is not None:
                    return event.result.summary()
                if event.kind == "transcript":
                    continue
                step += 1
                await progress(step, None, f"{event.kind}: {event.detail}" if event.detail else event.kind)
        raise AssertionError("a turn ends with its done event or raises its error")

    async def statistics(self, recent: int) -> JSON:
        report = self._app.statistics.report(recent)
        daemon = report.daemon
        out: JSON = {
            "daemon": {"version": daemon.version, "pid": daemon.pid, "uptime_s": round(daemon.uptime, 1)},
            "turns": report.turns,
            "errors": report.errors,
            "timings": {
                s.name: {"p50": s.p50, "p90": s.p90, "max": s.max, "n": s.count} for s in report.summaries
            },
            "recent": [r.summary() for r in report.recent],
        }
        # Only when there are any: every byte of the answer is in the assistant's context.
        if plugins := self._app.daemon.plugins():
            out["plugins"] = [p.as_dict() for p in plugins]
        if webhooks := self._app.daemon.webhooks():
            out["webhooks"] = [w.as_dict() for w in webhooks]
        return plain(out)

    async def conversations(self, recent: int) -> JSON:
        return {"recent": [r.summary() for r in self._app.statistics.recent(recent)]}

    # --- plugin tools ------------------------------------------------------------------------------
    def plugin_tools(self) -> Sequence[ToolInfo]:
        return self._app.tools.list()

    async def plugin_tool(self, name: str, arguments: JSON) -> JSON | str:
        return await self._app.tools.call(name, arguments)

    # --- services ------------------------------------------------------------------------------------
    async def service(self, action: str, name: str, lines: int, progress: ProgressFn) -> JSON:
        """One tool for every service action: decoded here, each one call on the services."""
        if action not in SERVICE_ACTIONS:
            raise InvalidArgument(
                f"unknown action {action!r}", hint=f"use one of {', '.join(SERVICE_ACTIONS)}"
            )
        services = self._app.services
        if action == "status" and not name:
            return {"services": [service_summary(s) for s in await services.list()]}
        if not name:
            raise InvalidArgument(
                f"{action} needs a service name", hint=f"name one of {', '.join(services.names)}"
            )
        if action == "status":
            return service_summary(await services.get(name))
        if action in ("start", "restart"):
            await progress(0, None, f"{action} {name}")
            run = services.start if action == "start" else services.restart
            return service_summary(await run(name))
        if action == "stop":
            return service_summary(await services.stop(name))
        if action in ("enable", "disable"):
            return service_summary(services.set_autostart(name, action == "enable"))
        if action == "logs":
            return {"name": name, "lines": await services.tail_logs(name, lines)}
        return await self._install(name, progress)

    async def _install(self, name: str, progress: ProgressFn) -> JSON:
        """Each line of the install's output is a progress notification."""
        step = 0

        async def on_line(line: str) -> None:
            nonlocal step
            step += 1
            await progress(step, None, line)

        status = await self._app.services.install(name, on_line)
        return {"name": name, "installed": status.installed, "steps": step}

    async def providers(self, action: str, kind: str) -> JSON:
        providers = self._app.providers
        if action == "list":
            statuses = providers.list(kind)
        elif action == "probe":
            statuses = await providers.probe(kind)
        else:
            raise InvalidArgument(f"unknown action {action!r}", hint="use list or probe")
        return {"endpoints": [endpoint_summary(s) for s in statuses]}

    async def voices(self, caller: Caller) -> JSON:
        """Each endpoint's voices by name, and in ``voice_info`` with their languages and gender."""
        voices = self._app.providers.voices(caller)
        return {
            "preferred": list(voices.preferred),
            "endpoints": [
                {
                    "url": s.url,
                    "name": s.name,
                    "voices": list(s.voices),
                    "voice_info": [describe_voice(v, s.voice_genders, s.voice_languages) for v in s.voices],
                }
                for s in voices.endpoints
            ],
        }

    async def devices(self) -> JSON:
        return {"devices": plain((await self._app.devices.list()).devices)}

    # --- rooms ---------------------------------------------------------------------------------------
    async def rooms(self, action: str, args: JSON) -> JSON:
        """One tool for every room action: decoded here, each one call on the rooms."""
        rooms = self._app.rooms
        if action == "list":
            return {"rooms": [room_summary(r) for r in await rooms.list()]}
        if action not in ROOM_ACTIONS:
            raise InvalidArgument(f"unknown action {action!r}", hint=f"use one of {', '.join(ROOM_ACTIONS)}")
        room = args.get("room", "")  # an empty name is the rooms' to refuse, as on every door
        if action == "create":
            return room_summary(await rooms.create(room))
        if action == "delete":
            await rooms.delete(room)
            return {"deleted": room}
        if action == "participants":
            found = await rooms.participants(room)
            return {"room": room, "participants": [participant_summary(p) for p in found]}
        identity = args.get("identity", "")
        return token_summary(rooms.token(room, identity, MCP, name=args.get("name", ""), ttl=args.get("ttl")))

    # --- configuration -----------------------------------------------------------------------------
    async def config_get(self, keys: Sequence[str], caller: Caller) -> JSON:
        """Values by key, and where each came from (all of them for named keys; only the ones that
        differ from the defaults when listing everything, to keep the answer short)."""
        view = self._app.configuration.get(keys, caller)
        return {
            "values": {e.key: e.value for e in view.entries},
            "from": {e.key: e.origin for e in view.entries if keys or e.layer != "default"},
        }

    async def config_set(self, key: str, value: str, scope: str, caller: Caller) -> JSON:
        written = self._app.configuration.set(key, value, scope, caller, MCP)
        return {
            "key": written.entry.key,
            "written": f"{written.file}:{written.line}",
            "effective": written.entry.value,
        }


def service_summary(service: Service) -> JSON:
    s = service.status
    out: JSON = {
        "name": s.name,
        "state": s.state.value,
        "backend": s.backend,
        "autostart": s.autostart,
        "port": s.port,
        "pid": s.pid,
        "uptime": plain(s.uptime),
        "restarts": s.restarts,
        "reason": s.reason,
    }
    if not s.installed:
        out["install_hint"] = s.install_hint
    return {k: v for k, v in out.items() if v is not None}


def endpoint_summary(e: EndpointStatus) -> JSON:
    out: JSON = {
        "kind": e.kind,
        "url": e.url,
        "name": e.name,
        "source": e.source,
        "health": e.health,
        "breaker": e.breaker,
        "latency_ms": plain(e.latency_ms),
        "last_error": e.last_error,
        "models": list(e.models),
    }
    return {k: v for k, v in out.items() if v not in (None, "", [])}


def room_summary(r: Room) -> JSON:
    return {
        "name": r.name,
        "sid": r.sid,
        "participants": r.participants,
        "max_participants": r.max_participants,
        "empty_timeout": r.empty_timeout,
        "created_at": timestamp(r.created_at),
    }


def participant_summary(p: Participant) -> JSON:
    out: JSON = {"identity": p.identity, "name": p.name, "state": p.state, "tracks": p.tracks}
    return {k: v for k, v in out.items() if v != ""}


def token_summary(t: JoinToken) -> JSON:
    return {
        "token": t.token,
        "url": t.url,
        "room": t.room,
        "identity": t.identity,
        "expires_at": timestamp(t.expires_at),
    }


def timestamp(seconds: float) -> str:
    """Wall-clock seconds as ISO 8601 UTC, to the second."""
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
