"""The Supervisor service: the local speech servers, their logs, installs and models (over
:class:`~voicemoded.app.services.Services`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc

from voicemoded.api.errors import VoicemodeError
from voicemoded.api.v1 import services_pb2, services_pb2_grpc
from voicemoded.app.services import Service, Services
from voicemoded.engines.install import ModelInfo
from voicemoded.rpc.errors import streaming, unary

STATE = dict(services_pb2.ServiceState.items())


def service_info(service: Service) -> services_pb2.ServiceInfo:
    s = service.status
    return services_pb2.ServiceInfo(
        name=s.name,
        state=STATE.get(s.state.name, services_pb2.SERVICE_STATE_UNSPECIFIED),
        backend=s.backend,
        command=service.command,
        host=s.host,
        port=s.port or 0,
        url=service.url,
        pid=s.pid or 0,
        uptime_seconds=s.uptime or 0.0,
        restarts=s.restarts,
        last_exit=s.last_exit.describe() if s.last_exit else "",
        cpu_percent=s.cpu_percent or 0.0,
        resident_bytes=s.rss_bytes or 0,
        memory_limit_bytes=service.memory_limit_bytes or 0,
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
        language=m.language,
        gender=m.gender,
        source=m.source,
    )


async def progress_stream(
    run: Callable[[Callable[[str], None]], Awaitable[object]],
) -> AsyncIterator[services_pb2.InstallProgress]:
    """Run an install with a line callback; stream its lines, then a final done/ok message.

    What fails once the install is under way is that final message (with pip's output); what ``run``
    refuses before starting (an unknown name) is the call's own error.
    """
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
    def __init__(self, services: Services) -> None:
        self._services = services

    @unary
    async def ListServices(
        self, request: services_pb2.ListServicesRequest, context: grpc.aio.ServicerContext
    ) -> services_pb2.ListServicesResponse:
        return services_pb2.ListServicesResponse(
            services=[service_info(s) for s in await self._services.list()]
        )

    @unary
    async def GetService(
        self, request: services_pb2.ServiceRequest, context: grpc.aio.ServicerContext
    ) -> services_pb2.ServiceInfo:
        return service_info(await self._services.get(request.name))

    @unary
    async def StartService(
        self, request: services_pb2.ServiceRequest, context: grpc.aio.ServicerContext
    ) -> services_pb2.ServiceInfo:
        return service_info(await self._services.start(request.name))

    @unary
    async def StopService(
        self, request: services_pb2.ServiceRequest, context: grpc.aio.ServicerContext
    ) -> services_pb2.ServiceInfo:
        return service_info(await self._services.stop(request.name))

    @unary
    async def RestartService(
        self, request: services_pb2.ServiceRequest, context: grpc.aio.ServicerContext
    ) -> services_pb2.ServiceInfo:
        return service_info(await self._services.restart(request.name))

    @unary
    async def SetAutostart(
        self, request: services_pb2.SetAutostartRequest, context: grpc.aio.ServicerContext
    ) -> services_pb2.ServiceInfo:
        return service_info(self._services.set_autostart(request.name, request.autostart))

    @streaming
    async def TailLogs(
        self, request: services_pb2.TailLogsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[services_pb2.LogLine]:
        if request.follow:
            async with contextlib.aclosing(self._services.follow_logs(request.name, request.lines)) as lines:
                async for line in lines:
                    yield services_pb2.LogLine(service=request.name, line=line)
            return
        for line in await self._services.tail_logs(request.name, request.lines):
            yield services_pb2.LogLine(service=request.name, line=line)

    @unary
    async def ReopenLogs(
        self, request: services_pb2.ReopenLogsRequest, context: grpc.aio.ServicerContext
    ) -> services_pb2.ReopenLogsResponse:
        return services_pb2.ReopenLogsResponse(files=await self._services.reopen_logs())

    @streaming
    async def InstallService(
        self, request: services_pb2.InstallServiceRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[services_pb2.InstallProgress]:
        async for progress in progress_stream(lambda cb: self._services.install(request.name, cb)):
            yield progress

    @unary
    async def ListModels(
        self, request: services_pb2.ListModelsRequest, context: grpc.aio.ServicerContext
    ) -> services_pb2.ListModelsResponse:
        return services_pb2.ListModelsResponse(
            models=[model_info(m) for m in await self._services.models(request.kind)]
        )

    @streaming
    async def InstallModel(
        self, request: services_pb2.ModelRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[services_pb2.InstallProgress]:
        async for progress in progress_stream(lambda cb: self._services.install_model(request.name, cb)):
            yield progress

    @unary
    async def RemoveModel(
        self, request: services_pb2.ModelRequest, context: grpc.aio.ServicerContext
    ) -> services_pb2.ModelInfo:
        return model_info(await self._services.remove_model(request.name))

    @unary
    async def UseModel(
        self, request: services_pb2.ModelRequest, context: grpc.aio.ServicerContext
    ) -> services_pb2.ModelInfo:
        return model_info(await self._services.use_model(request.name))
