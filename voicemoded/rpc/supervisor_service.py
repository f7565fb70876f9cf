"""The Supervisor service: the local speech servers, their logs, installs and models."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc

from voicemoded.api.errors import InvalidArgument, NotFound, Unavailable, VoicemodeError
from voicemoded.api.v1 import services_pb2, services_pb2_grpc
from voicemoded.core import Core
from voicemoded.engines.install import ModelInfo
from voicemoded.rpc.errors import streaming, unary
from voicemoded.supervisor.stats import ServiceStatus
from voicemoded.wiring import service_url

STATE = dict(services_pb2.ServiceState.items())
START_WAIT = 180.0


def service_info(s: ServiceStatus, command: list[str], memory_limit: int | None) -> services_pb2.ServiceInfo:
    return services_pb2.ServiceInfo(
        name=s.name,
        state=STATE.get(s.state.name, services_pb2.SERVICE_STATE_UNSPECIFIED),
        backend=s.backend,
        command=command,
        host=s.host,
        port=s.port or 0,
        url=service_url(s.name, s.host, s.port),
        pid=s.pid or 0,
        uptime_seconds=s.uptime or 0.0,
        restarts=s.restarts,
        last_exit=s.last_exit.describe() if s.last_exit else "",
        cpu_percent=s.cpu_percent or 0.0,
        resident_bytes=s.rss_bytes or 0,
        memory_limit_bytes=memory_limit or 0,
        autostart=s.autostart,
        installed=s.installed,
        install_hint=s.install_hint,
        log_path=s.log_path,
        reason=s.reason,
    )


def model_info(m: ModelInfo) -> services_pb2.ModelInfo:
    return services_pb2.ModelInfo(
        kind=m.kind,
        name=m.name,
        engine=m.engine,
        installed=m.installed,
        in_use=m.in_use,
        description=m.description,
        packages=list(m.packages),
        size_bytes=m.size_mb * 1024 * 1024,
    )


async def progress_stream(
    run: Callable[[Callable[[str], None]], Awaitable[object]],
) -> AsyncIterator[services_pb2.InstallProgress]:
    """Run an install with a line callback; stream its lines, then a final done/ok message."""
    lines: asyncio.Queue[str | None] = asyncio.Queue()
    task = asyncio.ensure_future(run(lines.put_nowait))
    task.add_done_callback(lambda _t: lines.put_nowait(None))
    try:
        while (line := await lines.get()) is not None:
            yield services_pb2.InstallProgress(line=line, fraction=-1)
        error = task.exception()
        if error is None:
            yield services_pb2.InstallProgress(line="done", fraction=1.0, done=True, ok=True)
        elif isinstance(error, VoicemodeError):
            text = error.message + (f"\n{error.hint}" if error.hint else "")
            output = error.fields.get("output", "")
            yield services_pb2.InstallProgress(
                line=(output + "\n" if output else "") + text, done=True, ok=False
            )
        else:
            raise error
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


class SupervisorService(services_pb2_grpc.SupervisorServicer):
    def __init__(self, core: Core) -> None:
        self._core = core

    def _info(self, status: ServiceStatus) -> services_pb2.ServiceInfo:
        spec = self._core.supervisor.spec(status.name)
        return service_info(status, list(spec.command), spec.memory_limit_bytes)

    @unary
    async def ListServices(
        self, request: services_pb2.ListServicesRequest, context: grpc.aio.ServicerContext
    ) -> services_pb2.ListServicesResponse:
        statuses = await asyncio.to_thread(self._core.supervisor.list)
        return services_pb2.ListServicesResponse(services=[self._info(s) for s in statuses])

    @unary
    async def GetService(
        self, request: services_pb2.ServiceRequest, context: grpc.aio.ServicerContext
    ) -> services_pb2.ServiceInfo:
        return self._info(await asyncio.to_thread(self._core.supervisor.get, request.name))

    @unary
    async def StartService(
        self, request: services_pb2.ServiceRequest, context: grpc.aio.ServicerContext
    ) -> services_pb2.ServiceInfo:
        """Returns once this start's attempt is RUNNING (ready), or with the error that stopped it."""
        status = await self._core.supervisor.start_and_wait(request.name, START_WAIT)
        return self._info(self._outcome(status, "start"))

    @unary
    async def StopService(
        self, request: services_pb2.ServiceRequest, context: grpc.aio.ServicerContext
    ) -> services_pb2.ServiceInfo:
        return self._info(await self._core.supervisor.stop(request.name))

    @unary
    async def RestartService(
        self, request: services_pb2.ServiceRequest, context: grpc.aio.ServicerContext
    ) -> services_pb2.ServiceInfo:
        """Like StartService: a restart that ends anywhere but RUNNING is an error, not a success."""
        status = await self._core.supervisor.restart_and_wait(request.name, START_WAIT)
        return self._info(self._outcome(status, "restart"))

    @staticmethod
    def _outcome(status: ServiceStatus, verb: str) -> ServiceStatus:
        from voicemoded.supervisor.states import ServiceState

        if status.state is ServiceState.RUNNING:
            return status
        raise Unavailable(
            f"{status.name} did not {verb}: {status.reason or status.state.name.lower()}",
            hint=f"`voicemodectl service logs {status.name}` shows its output",
            fields={"service": status.name, "state": status.state.name},
        )

    @unary
    async def SetAutostart(
        self, request: services_pb2.SetAutostartRequest, context: grpc.aio.ServicerContext
    ) -> services_pb2.ServiceInfo:
        return self._info(self._core.supervisor.set_autostart(request.name, request.autostart))

    @streaming
    async def TailLogs(
        self, request: services_pb2.TailLogsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[services_pb2.LogLine]:
        lines = request.lines if request.lines > 0 else 50
        if request.follow:
            follower = self._core.supervisor.follow_logs(request.name, lines)
            async for line in follower:
                yield services_pb2.LogLine(service=request.name, line=line)
            return
        for line in await self._core.supervisor.tail_logs(request.name, lines):
            yield services_pb2.LogLine(service=request.name, line=line)

    @unary
    async def ReopenLogs(
        self, request: services_pb2.ReopenLogsRequest, context: grpc.aio.ServicerContext
    ) -> services_pb2.ReopenLogsResponse:
        await self._core.supervisor.reopen_logs()
        files = [self._core.supervisor.get(name).log_path for name in self._core.supervisor.names]
        return services_pb2.ReopenLogsResponse(files=files)

    @streaming
    async def InstallService(
        self, request: services_pb2.InstallServiceRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[services_pb2.InstallProgress]:
        if request.name not in self._core.supervisor.names:
            raise NotFound(
                f"no service named {request.name!r}",
                hint=f"services: {', '.join(self._core.supervisor.names)}",
            )
        installer = self._core.installer
        async for progress in progress_stream(lambda cb: installer.install(request.name, cb)):
            yield progress
        # A backend that was missing at start-up is usable now: rebuild the service specs.
        await self._core.refresh_services()

    @staticmethod
    def _kind(kind: str) -> str | None:
        if kind not in ("", "stt", "tts"):
            raise InvalidArgument(f"unknown kind {kind!r}", hint="use stt or tts")
        return kind or None

    @unary
    async def ListModels(
        self, request: services_pb2.ListModelsRequest, context: grpc.aio.ServicerContext
    ) -> services_pb2.ListModelsResponse:
        models = await asyncio.to_thread(self._core.models.list_models, self._kind(request.kind))
        return services_pb2.ListModelsResponse(models=[model_info(m) for m in models])

    @streaming
    async def InstallModel(
        self, request: services_pb2.ModelRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[services_pb2.InstallProgress]:
        models = self._core.models
        async for progress in progress_stream(lambda cb: models.install(request.name, cb)):
            yield progress

    @unary
    async def RemoveModel(
        self, request: services_pb2.ModelRequest, context: grpc.aio.ServicerContext
    ) -> services_pb2.ModelInfo:
        removed = await self._core.models.remove(request.name)
        return model_info(removed[0])

    @unary
    async def UseModel(
        self, request: services_pb2.ModelRequest, context: grpc.aio.ServicerContext
    ) -> services_pb2.ModelInfo:
        info = await asyncio.to_thread(self._core.models.use, request.name)
        await self._core.apply_model_choice(info.kind)
        return model_info(info)
