"""The Daemon service: status, events, configuration, shutdown (over :class:`~voicemoded.app.daemon.Daemon`
and :class:`~voicemoded.app.config.Configuration`)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import grpc

from voicemoded.api.v1 import common_pb2, daemon_pb2, daemon_pb2_grpc
from voicemoded.app.config import ConfigEntry, ConfigSource, Configuration
from voicemoded.app.daemon import Daemon
from voicemoded.app.doors import GRPC
from voicemoded.config import ConfigError
from voicemoded.render import timestamp
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


def config_source(s: ConfigSource) -> daemon_pb2.ConfigSource:
    return daemon_pb2.ConfigSource(layer=s.layer, path=s.path, loaded=s.loaded, keys=s.keys)


def config_value(e: ConfigEntry) -> daemon_pb2.ConfigValue:
    return daemon_pb2.ConfigValue(
        key=e.key,
        value=e.value,
        layer=e.layer,
        file=e.file,
        line=e.line,
        secret=e.secret,
        type=e.type,
        description=e.description,
        default=e.default,
    )


class DaemonService(daemon_pb2_grpc.DaemonServicer):
    def __init__(self, daemon: Daemon, configuration: Configuration) -> None:
        self._daemon = daemon
        self._configuration = configuration

    @unary
    async def GetStatus(
        self, request: daemon_pb2.GetStatusRequest, context: grpc.aio.ServicerContext
    ) -> daemon_pb2.Status:
        status = self._daemon.status()
        return daemon_pb2.Status(
            version=status.info.version,
            pid=status.info.pid,
            uptime_seconds=status.info.uptime,
            socket=str(status.socket),
            started_at=timestamp(status.started_at),
            base_dir=str(status.base_dir),
            config_sources=[config_source(s) for s in status.config.sources],
            config_errors=[config_error(e) for e in status.config.errors],
            subsystems=[
                daemon_pb2.SubsystemHealth(name=h.name, state=_HEALTH[h.state], detail=h.detail)
                for h in status.subsystems
            ],
            manager=status.manager,
            resident_bytes=status.resident_bytes,
            plugins=[p.to_proto() for p in status.plugins],
            webhooks=[w.to_proto() for w in status.webhooks],
        )

    @streaming
    async def WatchEvents(
        self, request: daemon_pb2.WatchEventsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[common_pb2.Event]:
        events = self._daemon.events(request.replay, frozenset(request.subsystems))
        async with contextlib.aclosing(events):
            async for event in events:
                yield convert.event(event)

    @unary
    async def GetConfig(
        self, request: daemon_pb2.GetConfigRequest, context: grpc.aio.ServicerContext
    ) -> daemon_pb2.ConfigSnapshot:
        view = self._configuration.get(list(request.keys), convert.caller(request.caller))
        return daemon_pb2.ConfigSnapshot(
            values=[config_value(e) for e in view.entries],
            sources=[config_source(s) for s in view.sources],
            errors=[config_error(e) for e in view.errors],
        )

    @unary
    async def SetConfig(
        self, request: daemon_pb2.SetConfigRequest, context: grpc.aio.ServicerContext
    ) -> daemon_pb2.SetConfigResponse:
        caller = convert.caller(request.caller)
        written = self._configuration.set(request.key, request.value, request.scope, caller, GRPC)
        return daemon_pb2.SetConfigResponse(
            file=str(written.file), line=written.line, value=config_value(written.entry)
        )

    @unary
    async def UnsetConfig(
        self, request: daemon_pb2.UnsetConfigRequest, context: grpc.aio.ServicerContext
    ) -> daemon_pb2.SetConfigResponse:
        caller = convert.caller(request.caller)
        written = self._configuration.unset(request.key, request.scope, caller, GRPC)
        return daemon_pb2.SetConfigResponse(file=str(written.file), value=config_value(written.entry))

    @unary
    async def ReloadConfig(
        self, request: daemon_pb2.ReloadConfigRequest, context: grpc.aio.ServicerContext
    ) -> daemon_pb2.ReloadConfigResponse:
        reload = self._configuration.reload()
        return daemon_pb2.ReloadConfigResponse(
            changed=bool(reload.changed_keys),
            changed_keys=list(reload.changed_keys),
            errors=[config_error(e) for e in reload.errors],
        )

    @unary
    async def Shutdown(
        self, request: daemon_pb2.ShutdownRequest, context: grpc.aio.ServicerContext
    ) -> daemon_pb2.ShutdownResponse:
        self._daemon.shutdown(request.grace_seconds)
        return daemon_pb2.ShutdownResponse()
