"""The Daemon service: status, events, configuration, shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import grpc
import psutil

from voicemoded import __version__
from voicemoded.api.v1 import common_pb2, daemon_pb2, daemon_pb2_grpc
from voicemoded.config import SETTINGS, ConfigError, ConfigManager, Resolved, format_value, redact
from voicemoded.config.layers import Caller
from voicemoded.events import EventBus
from voicemoded.health import HealthRegistry
from voicemoded.rpc import convert
from voicemoded.rpc.errors import streaming, unary

_HEALTH = {
    "ok": daemon_pb2.SubsystemHealth.OK,
    "degraded": daemon_pb2.SubsystemHealth.DEGRADED,
    "down": daemon_pb2.SubsystemHealth.DOWN,
    "disabled": daemon_pb2.SubsystemHealth.DISABLED,
}


def config_error(e: ConfigError) -> daemon_pb2.ConfigError:
    return daemon_pb2.ConfigError(key=e.key, file=e.file, line=e.line, reason=e.reason)


def sources(resolved: Resolved) -> list[daemon_pb2.ConfigSource]:
    out = [daemon_pb2.ConfigSource(layer="default", loaded=True, keys=len(SETTINGS))]
    for layer in resolved.layers:
        out.append(
            daemon_pb2.ConfigSource(
                layer=layer.name, path=layer.path, loaded=layer.loaded, keys=len(layer.values)
            )
        )
    return out


def config_values(resolved: Resolved, keys: list[str] | None = None) -> list[daemon_pb2.ConfigValue]:
    wanted = {ConfigManager.info(k).name for k in keys} if keys else None
    out = []
    for info in SETTINGS:
        if wanted is not None and info.name not in wanted:
            continue
        origin = resolved.origins[info.name]
        text = format_value(getattr(resolved.settings, info.name))
        default = format_value(info.default)
        out.append(
            daemon_pb2.ConfigValue(
                key=info.env,
                value=redact(text) if info.secret else text,
                layer=origin.layer,
                file=origin.file,
                line=origin.line,
                secret=info.secret,
                type=info.type_name,
                description=info.doc,
                default=redact(default) if info.secret else default,
            )
        )
    return out


class DaemonService(daemon_pb2_grpc.DaemonServicer):
    def __init__(
        self,
        *,
        config: ConfigManager,
        events: EventBus,
        health: HealthRegistry,
        socket: Path,
        base_dir: Path,
        started_at: float,
        request_stop: Callable[[float], None],
        stopping: asyncio.Event,
        manager: str = "",
    ) -> None:
        self._config = config
        self._events = events
        self._health = health
        self._socket = socket
        self._base_dir = base_dir
        self._started_at = started_at
        self._started_monotonic = time.monotonic() - (time.time() - started_at)
        self._request_stop = request_stop
        self._stopping = stopping
        self._manager = manager
        self._process = psutil.Process()

    @unary
    async def GetStatus(
        self, request: daemon_pb2.GetStatusRequest, context: grpc.aio.ServicerContext
    ) -> daemon_pb2.Status:
        resolved = self._config.resolved
        return daemon_pb2.Status(
            version=__version__,
            pid=os.getpid(),
            uptime_seconds=time.monotonic() - self._started_monotonic,
            socket=str(self._socket),
            started_at=convert.timestamp(self._started_at),
            base_dir=str(self._base_dir),
            config_sources=sources(resolved),
            config_errors=[config_error(e) for e in self._config.errors],
            subsystems=[
                daemon_pb2.SubsystemHealth(
                    name=h.name, state=_HEALTH[h.state], detail=self._detail(h.name, h.detail)
                )
                for h in self._health.report()
            ],
            manager=self._manager,
            resident_bytes=self._process.memory_info().rss,
        )

    def _detail(self, name: str, detail: str) -> str:
        """The config line of ``status`` also carries the warnings (unknown keys, a non-loopback host),
        which change nothing in force but are usually a mistake the person wants to see."""
        warnings = self._config.warnings if name == "config" else ()
        if not warnings:
            return detail
        count = f"{len(warnings)} warning{'s' if len(warnings) != 1 else ''}"
        return f"{detail}; {count}: " + "; ".join(warnings)

    @streaming
    async def WatchEvents(
        self, request: daemon_pb2.WatchEventsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[common_pb2.Event]:
        subscription = self._events.subscribe(
            replay=max(0, request.replay), subsystems=frozenset(request.subsystems)
        )
        stop = asyncio.ensure_future(self._stopping.wait())
        try:
            while True:
                nxt = asyncio.ensure_future(anext(subscription))
                done, _ = await asyncio.wait({nxt, stop}, return_when=asyncio.FIRST_COMPLETED)
                if nxt not in done:
                    nxt.cancel()
                    # Let the generator finish its cancelled step before aclose() below.
                    with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                        await nxt
                    return
                yield convert.event(nxt.result())
        finally:
            stop.cancel()
            await subscription.aclose()

    @unary
    async def GetConfig(
        self, request: daemon_pb2.GetConfigRequest, context: grpc.aio.ServicerContext
    ) -> daemon_pb2.ConfigSnapshot:
        resolved = self._config.resolve(convert.caller(request.caller))
        return daemon_pb2.ConfigSnapshot(
            values=config_values(resolved, list(request.keys)),
            sources=sources(resolved),
            errors=[config_error(e) for e in self._config.errors],
        )

    def _effective(self, key: str, caller: Caller) -> daemon_pb2.ConfigValue:
        return config_values(self._config.resolve(caller), [key])[0]

    @unary
    async def SetConfig(
        self, request: daemon_pb2.SetConfigRequest, context: grpc.aio.ServicerContext
    ) -> daemon_pb2.SetConfigResponse:
        caller = convert.caller(request.caller)
        path, line = self._config.set(request.key, request.value, request.scope or "user", caller)
        return daemon_pb2.SetConfigResponse(
            file=str(path), line=line, value=self._effective(request.key, caller)
        )

    @unary
    async def UnsetConfig(
        self, request: daemon_pb2.UnsetConfigRequest, context: grpc.aio.ServicerContext
    ) -> daemon_pb2.SetConfigResponse:
        caller = convert.caller(request.caller)
        path = self._config.unset(request.key, request.scope or "user", caller)
        return daemon_pb2.SetConfigResponse(file=str(path), value=self._effective(request.key, caller))

    @unary
    async def ReloadConfig(
        self, request: daemon_pb2.ReloadConfigRequest, context: grpc.aio.ServicerContext
    ) -> daemon_pb2.ReloadConfigResponse:
        result = self._config.load()
        return daemon_pb2.ReloadConfigResponse(
            changed=bool(result.changed),
            changed_keys=[ConfigManager.info(name).env for name in result.changed],
            errors=[config_error(e) for e in result.errors],
        )

    @unary
    async def Shutdown(
        self, request: daemon_pb2.ShutdownRequest, context: grpc.aio.ServicerContext
    ) -> daemon_pb2.ShutdownResponse:
        self._request_stop(request.grace_seconds)
        return daemon_pb2.ShutdownResponse()
