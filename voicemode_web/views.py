"""The daemon's answers in the JSON shapes the page reads (one function per shape).

Times are ISO 8601 in UTC, durations in seconds, sizes in bytes; a value the daemon does not know is
``null``, not 0.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from voicemoded.api.v1 import conversation_pb2, services_pb2

if TYPE_CHECKING:
    from google.protobuf.timestamp_pb2 import Timestamp

    from voicemoded.api.v1 import common_pb2, daemon_pb2, providers_pb2

#: States in which a service has a process (its pid, uptime and usage mean something).
_LIVE = frozenset({"starting", "running", "stopping"})
#: The history's names for the two latencies it plots, beside the daemon's own timing names.
_TIMING_ALIASES = {"time_to_first_audio": "ttfa", "last_voiced_to_text": "endpoint_delay"}


def iso(seconds: float) -> str:
    moment = datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def iso_timestamp(stamp: Timestamp) -> str:
    return iso(stamp.seconds + stamp.nanos / 1e9)


def service(info: services_pb2.ServiceInfo) -> dict[str, Any]:
    state = services_pb2.ServiceState.Name(info.state).lower()
    live = state in _LIVE and info.pid > 0
    failed = state in ("exited", "fatal", "backoff")
    error = (info.reason or info.last_exit) if failed else ""
    if not info.installed and not error:
        error = f"not installed: {info.install_hint}" if info.install_hint else "not installed"
    return {
        "name": info.name,
        "state": state,
        "pid": info.pid if live else None,
        "uptime_s": round(info.uptime_seconds, 3) if live else None,
        "restarts": info.restarts,
        "cpu_percent": round(info.cpu_percent, 1) if live else None,
        "memory_bytes": info.resident_bytes if live else None,
        "url": info.url,
        "error": error,
        "reason": info.reason,
        "autostart": info.autostart,
        "installed": info.installed,
        "install_hint": info.install_hint,
        "backend": info.backend,
        "host": info.host,
        "port": info.port or None,
    }


def provider(p: providers_pb2.Provider) -> dict[str, Any]:
    return {
        "kind": p.kind,
        "name": p.name,
        "url": p.url,
        "healthy": p.health == "healthy",
        "health": p.health,
        "breaker": p.breaker or "closed",
        "latency_ms": round(p.latency_ms, 1) if p.latency_ms > 0 else None,
        "last_error": p.last_error,
        "source": p.source,
    }


def devices(found: conversation_pb2.ListDevicesResponse) -> dict[str, Any]:
    def one(d: conversation_pb2.Device, default: bool, selected: bool) -> dict[str, Any]:
        return {
            "index": d.index,
            "name": d.name,
            "description": d.description,
            "default": default,
            "selected": selected,
        }

    return {
        "inputs": [
            one(d, d.default_input, d.selected_input) for d in found.devices if d.max_input_channels > 0
        ],
        "outputs": [
            one(d, d.default_output, d.selected_output) for d in found.devices if d.max_output_channels > 0
        ],
        "input_error": found.input_error,
        "output_error": found.output_error,
    }


def setting(value: daemon_pb2.ConfigValue) -> dict[str, Any]:
    """One setting and where it came from ("user: /path/voicemode.env:3"); a secret's value is only its
    last characters (the daemon redacts it before it leaves)."""
    origin = value.layer
    if value.file:
        origin += f": {value.file}" + (f":{value.line}" if value.line else "")
    return {
        "key": value.key,
        "value": value.value,
        "origin": origin,
        "secret": value.secret,
        "type": value.type,
        "description": value.description,
        "default": value.default,
    }


def event(e: common_pb2.Event) -> dict[str, Any]:
    return {
        "seq": e.seq,
        "time": iso_timestamp(e.time),
        "kind": e.kind,
        "subsystem": e.subsystem,
        "level": e.level,
        "message": e.message,
        "fields": dict(e.fields),
    }


def timings(t: conversation_pb2.TurnTimings) -> dict[str, float | None]:
    names = [f.name for f in t.DESCRIPTOR.fields]
    out: dict[str, float | None] = {name: _seconds(getattr(t, name)) for name in names}
    out.update({alias: out[name] for alias, name in _TIMING_ALIASES.items()})
    return out


def turn(record: conversation_pb2.TurnRecord) -> dict[str, Any]:
    return {
        "turn_id": record.turn_id,
        "time": iso_timestamp(record.time),
        "message": record.message,
        "text": record.text,
        "end_reason": record.end_reason,
        "error": record.error,
        "recording": record.recording_kept,
        "timings": timings(record.timings),
    }


def history(records: Iterable[conversation_pb2.TurnRecord]) -> dict[str, Any]:
    """Newest first (the daemon lists them oldest first)."""
    return {"turns": [turn(r) for r in reversed(list(records))]}


def turn_event(e: conversation_pb2.ConverseEvent) -> dict[str, Any]:
    out: dict[str, Any] = {
        "kind": conversation_pb2.ConverseEvent.Kind.Name(e.kind).lower(),
        "t": round(e.t, 4),
        "time": iso_timestamp(e.time),
        "detail": e.detail,
    }
    if e.text:
        out["text"] = e.text
    return out


def turn_result(r: conversation_pb2.TurnResult) -> dict[str, Any]:
    return {
        "text": r.text,
        "end_reason": r.end_reason,
        "turn_id": r.turn_id,
        "timings": timings(r.timings),
        "recording": bool(r.recording_path),
        "voice": r.voice,
        "tts_provider": r.tts_provider,
        "stt_provider": r.stt_provider,
        "warnings": list(r.warnings),
    }


def _seconds(value: float) -> float | None:
    return round(value, 4) if value > 0 else None
