"""The typed client both front doors use: socket discovery, start-up retry, errors with hints.

A call to a daemon that is not running fails at once with a message saying how to start it; a call to
a daemon that is still starting (its lock file names a live process) waits for it within a short bound.
When no socket exists where this front door looks, the base directory's record names the socket of the
daemon that runs there (see ``voicemoded.api.instance``), so a front door launched with a trimmed environment
still reaches the one daemon instead of starting a second.

Front doors call the typed methods (``client.start_service(name)``): the request messages and the
caller's context (working folder, forwarded environment) are built here, never by a front door.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import grpc

from voicemoded.api.context import current_cwd, forwarded_env
from voicemoded.api.errors import VoicemodeError
from voicemoded.api.instance import running_daemon
from voicemoded.api.paths import base_dir, check_socket_path, default_socket, lock_path, socket_configured
from voicemoded.api.v1 import common_pb2, daemon_pb2, daemon_pb2_grpc

if TYPE_CHECKING:
    # Each front door needs one or two services: their stubs and messages load when first used.
    from voicemoded.api.v1 import (
        conversation_pb2,
        conversation_pb2_grpc,
        mcp_pb2_grpc,
        providers_pb2,
        providers_pb2_grpc,
        rooms_pb2,
        rooms_pb2_grpc,
        services_pb2,
        services_pb2_grpc,
    )

ERROR_METADATA_KEY = "voicemode-error-bin"
STARTUP_WAIT = 10.0
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
CHANNEL_OPTIONS = (
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
)
"""No retry policy, so grpc retries nothing the daemon may have seen; its transparent retries stay on:
a call that never reached the daemon (sent as a connection was told to go away) is made again on a
fresh one instead of failing as UNAVAILABLE, "is the daemon running?"."""

T = TypeVar("T")


class ClientError(Exception):
    """A failed call: the gRPC status name, the daemon's message, and the next step when it gave one."""

    def __init__(self, code: str, message: str, hint: str = "", fields: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.hint = hint
        self.fields = fields or {}

    def __str__(self) -> str:
        return self.message + (f"\n  {self.hint}" if self.hint else "")

    @classmethod
    def of(cls, error: VoicemodeError) -> ClientError:
        """The same error met on the client's side, before any call (a bad path, a file too large)."""
        return cls(error.code.value, error.message, error.hint, error.fields)


class DaemonNotRunning(ClientError):
    def __init__(self, socket: Path, detail: str = "") -> None:
        super().__init__(
            "UNAVAILABLE",
            f"voicemoded is not running (no daemon answers on {socket}){': ' + detail if detail else ''}",
            "start it with `voicemodectl daemon start` (or run `voicemoded` in a terminal)",
        )
        self.socket = socket


def discover_socket(env: Mapping[str, str] | None = None) -> Path:
    """The socket to talk to: the one the user named, else the standard one when something is there,
    else the socket recorded by the base directory's running daemon, else the standard one (to start on).
    """
    socket = default_socket(env)
    if socket_configured(env) or socket.exists():
        return socket
    record = running_daemon(base_dir(env))
    return record.socket if record is not None else socket


def daemon_pid(socket: Path) -> int | None:
    """The pid in the lock file when that process is alive (the daemon is running or starting)."""
    try:
        text = lock_path(socket).read_text().strip()
    except OSError:
        text = ""
    if not text.isdigit():
        # Not yet bound: the base directory's record may already name it.
        record = running_daemon(base_dir())
        return record.pid if record is not None and record.socket == socket else None
    pid = int(text)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    return pid


def translate(error: grpc.RpcError, socket: Path) -> ClientError:
    """An RpcError as a ClientError, with the daemon's ErrorDetail when it sent one."""
    code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    for key, value in (error.trailing_metadata() or ()) if hasattr(error, "trailing_metadata") else ():
        if key == ERROR_METADATA_KEY:
            detail = common_pb2.ErrorDetail.FromString(value)
            return ClientError(detail.code or code.name, detail.message, detail.hint, dict(detail.fields))
    message = error.details() if hasattr(error, "details") else str(error)
    if code == grpc.StatusCode.UNAVAILABLE and daemon_pid(socket) is None:
        return DaemonNotRunning(socket)
    if code == grpc.StatusCode.UNAVAILABLE:
        return ClientError(code.name, f"lost the connection to voicemoded: {message}", "try again")
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return ClientError(code.name, "voicemoded did not answer in time", "check `voicemodectl status`")
    return ClientError(code.name, message or code.name)


def _from_daemon(error: grpc.RpcError) -> bool:
    """The daemon itself sent this error (with its ErrorDetail), rather than the transport failing."""
    metadata = error.trailing_metadata() if hasattr(error, "trailing_metadata") else None
    return any(key == ERROR_METADATA_KEY for key, _ in metadata or ())


class Stream(Iterator[T]):
    """A server stream's responses, with the client's error translation; the call starts at the first
    ``next``. ``cancel`` hangs up from any thread: a ``next`` blocked in another thread then ends the
    iteration, and the daemon sees the call cancelled (a turn stops, a log tail closes)."""

    def __init__(
        self, client: Client, method: Callable[..., Iterator[T]], request: Any, timeout: float | None
    ) -> None:
        self._client, self._method, self._request, self._timeout = client, method, request, timeout
        self._call: Any = None
        self._cancelled = False

    def __next__(self) -> T:
        if self._cancelled:
            raise StopIteration
        client = self._client
        try:
            if self._call is None:
                client.check_socket()
                if not client.socket.exists() and client._ready_timeout() is None:
                    raise DaemonNotRunning(client.socket)
                wait = client._ready_timeout() is not None
                self._call = self._method(self._request, timeout=self._timeout, wait_for_ready=wait)
                if self._cancelled:  # hung up while the call was being made
                    self._call.cancel()
            return next(self._call)
        except grpc.RpcError as exc:
            if self._cancelled:
                raise StopIteration from None
            raise translate(exc, client.socket) from None

    def cancel(self) -> None:
        self._cancelled = True
        call = self._call
        if call is not None:
            call.cancel()


Scope = Literal["user", "project"]
Kind = Literal["", "stt", "tts"]


@dataclass(frozen=True, slots=True)
class TurnOptions:
    """How one spoken turn differs from the caller's configuration; ``None`` or "" leaves a setting to it."""

    voice: str = ""
    tts_provider: str = ""
    tts_model: str = ""
    tts_instructions: str = ""
    speed: float | None = None
    listen_duration_max: float | None = None
    listen_duration_min: float | None = None
    vad_aggressiveness: int | None = None
    silence_threshold: float | None = None
    disable_silence_detection: bool | None = None
    chime_enabled: bool | None = None
    barge_in: bool | None = None
    audio_format: str = ""
    language: str = ""
    stt_provider: str = ""
    no_wait: bool = False
    transport: str = ""
    """"local", "livekit" or "auto" ("" is local)."""
    room: str = ""
    """The LiveKit room of transport livekit or auto."""


@dataclass(frozen=True, slots=True)
class McpClose:
    """The last item a tunnel sends: the session ends, and why."""

    reason: str


class Client:
    """Synchronous client over one channel; cheap to build, the channel connects on first use."""

    def __init__(self, socket: Path | None = None, *, client_name: str = "voicemodectl") -> None:
        self.socket = socket or discover_socket()
        self.client_name = client_name
        self._channel: grpc.Channel | None = None

    def check_socket(self) -> None:
        """A path the kernel cannot connect to is the user's to fix, not "daemon not running"."""
        try:
            check_socket_path(self.socket)
        except VoicemodeError as exc:
            raise ClientError.of(exc) from None

    @property
    def channel(self) -> grpc.Channel:
        if self._channel is None:
            self.check_socket()
            self._channel = grpc.insecure_channel(f"unix:{self.socket}", options=CHANNEL_OPTIONS)
        return self._channel

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- stubs -----------------------------------------------------------------------------------
    @property
    def daemon(self) -> daemon_pb2_grpc.DaemonStub:
        return daemon_pb2_grpc.DaemonStub(self.channel)

    @property
    def supervisor(self) -> services_pb2_grpc.SupervisorStub:
        from voicemoded.api.v1 import services_pb2_grpc

        return services_pb2_grpc.SupervisorStub(self.channel)

    @property
    def providers(self) -> providers_pb2_grpc.ProvidersStub:
        from voicemoded.api.v1 import providers_pb2_grpc

        return providers_pb2_grpc.ProvidersStub(self.channel)

    @property
    def conversation(self) -> conversation_pb2_grpc.ConversationStub:
        from voicemoded.api.v1 import conversation_pb2_grpc

        return conversation_pb2_grpc.ConversationStub(self.channel)

    @property
    def rooms(self) -> rooms_pb2_grpc.RoomsStub:
        from voicemoded.api.v1 import rooms_pb2_grpc

        return rooms_pb2_grpc.RoomsStub(self.channel)

    @property
    def mcp(self) -> mcp_pb2_grpc.McpTunnelStub:
        from voicemoded.api.v1 import mcp_pb2_grpc

        return mcp_pb2_grpc.McpTunnelStub(self.channel)

    def caller(self) -> common_pb2.CallerContext:
        return common_pb2.CallerContext(
            cwd=current_cwd(), env=forwarded_env(), pid=os.getpid(), client=self.client_name
        )

    # --- calls -----------------------------------------------------------------------------------
    def _ready_timeout(self) -> float | None:
        """None when no daemon is there to wait for; else how long to wait for it to start answering."""
        if daemon_pid(self.socket) is None:
            return None
        return STARTUP_WAIT

    def call(self, method: Callable[..., T], request: Any, timeout: float | None = 30.0) -> T:
        """A unary call; waits for a starting daemon, fails fast when there is none."""
        self.check_socket()
        if not self.socket.exists() and self._ready_timeout() is None:
            raise DaemonNotRunning(self.socket)
        try:
            return method(request, timeout=timeout)
        except grpc.RpcError as exc:
            # Only a connection that failed is retried: an UNAVAILABLE the daemon answered with (a service
            # that did not start, no usable endpoint) is its verdict, and the call must not run twice.
            answered = _from_daemon(exc)
            if answered or exc.code() != grpc.StatusCode.UNAVAILABLE or self._ready_timeout() is None:
                raise translate(exc, self.socket) from None
        try:  # the daemon is starting: let grpc wait for the socket to answer
            return method(request, timeout=STARTUP_WAIT, wait_for_ready=True)
        except grpc.RpcError as exc:
            raise translate(exc, self.socket) from None

    def stream(
        self, method: Callable[..., Iterator[T]], request: Any, timeout: float | None = None
    ) -> Stream[T]:
        """A server-streaming call as an iterator of responses, with the same error translation."""
        return Stream(self, method, request, timeout)

    def status(self, timeout: float = 5.0) -> daemon_pb2.Status:
        return self.call(self.daemon.GetStatus, daemon_pb2.GetStatusRequest(caller=self.caller()), timeout)

    def wait_until_ready(self, timeout: float, alive: Callable[[], bool] | None = None) -> daemon_pb2.Status:
        """Poll GetStatus until the daemon answers; ``alive`` lets a starter notice its child died."""
        deadline = time.monotonic() + timeout
        last: ClientError | None = None
        while time.monotonic() < deadline:
            if alive is not None and not alive():
                break
            try:
                return self.daemon.GetStatus(
                    daemon_pb2.GetStatusRequest(caller=self.caller()), timeout=min(1.0, timeout)
                )
            except grpc.RpcError as exc:
                last = translate(exc, self.socket)
            time.sleep(0.02)
        raise last or DaemonNotRunning(self.socket, "it did not start")

    # --- typed calls: each builds its request (and the caller's context) here, not in a front door ---
    def watch_events(
        self, *, replay: int = 0, subsystems: Sequence[str] = (), timeout: float | None = None
    ) -> Stream[common_pb2.Event]:
        request = daemon_pb2.WatchEventsRequest(replay=replay, subsystems=list(subsystems))
        return self.stream(self.daemon.WatchEvents, request, timeout=timeout)

    def get_config(self, keys: Sequence[str] = ()) -> daemon_pb2.ConfigSnapshot:
        request = daemon_pb2.GetConfigRequest(caller=self.caller(), keys=list(keys))
        return self.call(self.daemon.GetConfig, request)

    def set_config(self, key: str, value: str, scope: Scope = "user") -> daemon_pb2.SetConfigResponse:
        request = daemon_pb2.SetConfigRequest(caller=self.caller(), key=key, value=value, scope=scope)
        return self.call(self.daemon.SetConfig, request)

    def unset_config(self, key: str, scope: Scope = "user") -> daemon_pb2.SetConfigResponse:
        request = daemon_pb2.UnsetConfigRequest(caller=self.caller(), key=key, scope=scope)
        return self.call(self.daemon.UnsetConfig, request)

    def reload_config(self) -> daemon_pb2.ReloadConfigResponse:
        return self.call(self.daemon.ReloadConfig, daemon_pb2.ReloadConfigRequest())

    def shutdown(self, timeout: float = 5.0) -> daemon_pb2.ShutdownResponse:
        return self.call(self.daemon.Shutdown, daemon_pb2.ShutdownRequest(), timeout=timeout)

    def list_services(self) -> services_pb2.ListServicesResponse:
        from voicemoded.api.v1 import services_pb2

        return self.call(self.supervisor.ListServices, services_pb2.ListServicesRequest())

    def get_service(self, name: str) -> services_pb2.ServiceInfo:
        from voicemoded.api.v1 import services_pb2

        return self.call(self.supervisor.GetService, services_pb2.ServiceRequest(name=name))

    def start_service(self, name: str, timeout: float = 180.0) -> services_pb2.ServiceInfo:
        """Start a service and wait until it is ready (or has failed: then the error says why)."""
        return self.call(self.supervisor.StartService, self._service_request(name), timeout=timeout)

    def stop_service(self, name: str, timeout: float = 180.0) -> services_pb2.ServiceInfo:
        return self.call(self.supervisor.StopService, self._service_request(name), timeout=timeout)

    def restart_service(self, name: str, timeout: float = 180.0) -> services_pb2.ServiceInfo:
        return self.call(self.supervisor.RestartService, self._service_request(name), timeout=timeout)

    def _service_request(self, name: str) -> services_pb2.ServiceRequest:
        from voicemoded.api.v1 import services_pb2

        return services_pb2.ServiceRequest(name=name, caller=self.caller())

    def set_autostart(self, name: str, autostart: bool) -> services_pb2.ServiceInfo:
        from voicemoded.api.v1 import services_pb2

        request = services_pb2.SetAutostartRequest(name=name, autostart=autostart)
        return self.call(self.supervisor.SetAutostart, request)

    def tail_logs(self, name: str, *, lines: int = 50, follow: bool = False) -> Stream[services_pb2.LogLine]:
        from voicemoded.api.v1 import services_pb2

        request = services_pb2.TailLogsRequest(name=name, lines=lines, follow=follow)
        return self.stream(self.supervisor.TailLogs, request)

    def reopen_logs(self) -> services_pb2.ReopenLogsResponse:
        from voicemoded.api.v1 import services_pb2

        return self.call(self.supervisor.ReopenLogs, services_pb2.ReopenLogsRequest())

    def install_service(self, name: str, timeout: float = 1800.0) -> Iterator[services_pb2.InstallProgress]:
        from voicemoded.api.v1 import services_pb2

        request = services_pb2.InstallServiceRequest(name=name, caller=self.caller())
        return self.stream(self.supervisor.InstallService, request, timeout=timeout)

    def list_models(self, kind: Kind = "") -> services_pb2.ListModelsResponse:
        from voicemoded.api.v1 import services_pb2

        return self.call(self.supervisor.ListModels, services_pb2.ListModelsRequest(kind=kind))

    def install_model(
        self, name: str, kind: Kind = "", timeout: float = 1800.0
    ) -> Iterator[services_pb2.InstallProgress]:
        from voicemoded.api.v1 import services_pb2

        request = services_pb2.ModelRequest(kind=kind, name=name)
        return self.stream(self.supervisor.InstallModel, request, timeout=timeout)

    def remove_model(self, name: str, kind: Kind = "") -> services_pb2.ModelInfo:
        from voicemoded.api.v1 import services_pb2

        return self.call(self.supervisor.RemoveModel, services_pb2.ModelRequest(kind=kind, name=name))

    def use_model(self, name: str, kind: Kind = "") -> services_pb2.ModelInfo:
        from voicemoded.api.v1 import services_pb2

        return self.call(self.supervisor.UseModel, services_pb2.ModelRequest(kind=kind, name=name))

    def list_providers(self, kind: Kind = "", timeout: float = 60.0) -> providers_pb2.ListProvidersResponse:
        return self.call(self.providers.ListProviders, self._providers_request(kind), timeout=timeout)

    def probe_providers(self, kind: Kind = "", timeout: float = 60.0) -> providers_pb2.ListProvidersResponse:
        """Probe every endpoint now, then list them with what the probe found."""
        return self.call(self.providers.ProbeProviders, self._providers_request(kind), timeout=timeout)

    def _providers_request(self, kind: Kind) -> providers_pb2.ListProvidersRequest:
        from voicemoded.api.v1 import providers_pb2

        return providers_pb2.ListProvidersRequest(caller=self.caller(), kind=kind)

    def synthesize(
        self,
        text: str,
        *,
        voice: str = "",
        model: str = "",
        provider: str = "",
        speed: float | None = None,
        instructions: str = "",
        timeout: float = 300.0,
    ) -> Iterator[providers_pb2.SynthesizeChunk]:
        """The speech as it is made: one ``info`` chunk, then raw PCM in the format the info names."""
        from voicemoded.api.v1 import providers_pb2

        request = providers_pb2.SynthesizeRequest(
            caller=self.caller(), text=text, voice=voice, model=model, provider=provider,
            instructions=instructions, format="pcm",
        )  # fmt: skip
        if speed is not None:
            request.speed = speed
        return self.stream(self.providers.Synthesize, request, timeout=timeout)

    def transcribe(
        self,
        *,
        path: str = "",
        audio: bytes = b"",
        filename: str = "",
        last: bool = False,
        language: str = "",
        model: str = "",
        provider: str = "",
        prompt: str = "",
        timeout: float = 600.0,
    ) -> providers_pb2.TranscribeResponse:
        """A file the daemon reads itself (``path``), the bytes of one (``audio``), or the last recording."""
        from voicemoded.api.v1 import providers_pb2

        request = providers_pb2.TranscribeRequest(
            caller=self.caller(), last=last, language=language, model=model, provider=provider, prompt=prompt
        )
        if path:
            request.path = path
        if audio or filename:
            request.audio, request.filename = audio, filename
        return self.call(self.providers.Transcribe, request, timeout=timeout)

    def converse(
        self, message: str, options: TurnOptions = TurnOptions()
    ) -> Stream[conversation_pb2.ConverseEvent]:
        """Speak ``message``, listen for the answer; the events of the turn, the last one ``DONE``."""
        return self.stream(self.conversation.Converse, self._turn_request(message, options))

    def speak(
        self, message: str, options: TurnOptions = TurnOptions()
    ) -> Stream[conversation_pb2.ConverseEvent]:
        request = self._turn_request(message, options)
        request.wait_for_response = False
        return self.stream(self.conversation.Speak, request)

    def listen(self, options: TurnOptions = TurnOptions()) -> Stream[conversation_pb2.ConverseEvent]:
        request = self._turn_request("", options)
        request.skip_tts = True
        return self.stream(self.conversation.Listen, request)

    def _turn_request(self, message: str, options: TurnOptions) -> conversation_pb2.ConverseRequest:
        from voicemoded.api.v1 import conversation_pb2

        request = conversation_pb2.ConverseRequest(caller=self.caller(), message=message)
        for field in dataclasses.fields(options):
            value = getattr(options, field.name)
            if value is not None and value != "":
                setattr(request, field.name, value)
        return request

    def list_devices(self, timeout: float = 30.0) -> conversation_pb2.ListDevicesResponse:
        from voicemoded.api.v1 import conversation_pb2

        return self.call(
            self.conversation.ListDevices, conversation_pb2.ListDevicesRequest(), timeout=timeout
        )

    def statistics(self, recent: int = 0) -> conversation_pb2.Statistics:
        from voicemoded.api.v1 import conversation_pb2

        request = conversation_pb2.GetStatisticsRequest(recent=recent)
        return self.call(self.conversation.GetStatistics, request)

    def recording(self, turn_id: str, timeout: float = 60.0) -> Stream[conversation_pb2.RecordingChunk]:
        """A kept recording's bytes in chunks; the first names its format, MIME type and size."""
        from voicemoded.api.v1 import conversation_pb2

        request = conversation_pb2.GetRecordingRequest(turn_id=turn_id)
        return self.stream(self.conversation.GetRecording, request, timeout=timeout)

    def create_room(
        self, name: str, *, empty_timeout: int = 0, max_participants: int = 0
    ) -> rooms_pb2.RoomInfo:
        """Create a LiveKit room (an existing one of that name is returned as it is)."""
        from voicemoded.api.v1 import rooms_pb2

        request = rooms_pb2.CreateRoomRequest(
            name=name, empty_timeout_seconds=empty_timeout, max_participants=max_participants
        )
        return self.call(self.rooms.CreateRoom, request)

    def list_rooms(self) -> rooms_pb2.ListRoomsResponse:
        from voicemoded.api.v1 import rooms_pb2

        return self.call(self.rooms.ListRooms, rooms_pb2.ListRoomsRequest())

    def delete_room(self, name: str) -> rooms_pb2.DeleteRoomResponse:
        from voicemoded.api.v1 import rooms_pb2

        return self.call(self.rooms.DeleteRoom, rooms_pb2.RoomRequest(name=name))

    def list_participants(self, room: str) -> rooms_pb2.ListParticipantsResponse:
        from voicemoded.api.v1 import rooms_pb2

        return self.call(self.rooms.ListParticipants, rooms_pb2.RoomRequest(name=room))

    def create_token(
        self, room: str, identity: str, *, name: str = "", ttl: float = 0.0
    ) -> rooms_pb2.JoinToken:
        """A join token for a person; ``ttl`` in seconds, 0 for the daemon's default (an hour)."""
        from voicemoded.api.v1 import rooms_pb2

        request = rooms_pb2.CreateTokenRequest(room=room, identity=identity, name=name, ttl_seconds=ttl)
        return self.call(self.rooms.CreateToken, request)

    def mcp_session(self, messages: Iterable[bytes | McpClose], *, tunnel_version: str) -> Any:
        """One MCP session: the ``open`` frame with this caller's context, then each JSON-RPC message, and
        the close when ``messages`` yields one. Returns the gRPC call: iterate it for the daemon's frames,
        cancel it to hang up."""
        from voicemoded.api.v1 import mcp_pb2

        def frames() -> Iterator[mcp_pb2.McpFrame]:
            yield mcp_pb2.McpFrame(open=mcp_pb2.McpOpen(caller=self.caller(), tunnel_version=tunnel_version))
            for item in messages:
                if isinstance(item, McpClose):
                    yield mcp_pb2.McpFrame(close=mcp_pb2.McpClose(reason=item.reason))
                    return
                yield mcp_pb2.McpFrame(message=item)

        return self.mcp.Session(frames(), wait_for_ready=True)
