"""voicemoded: the composition root. Everything the daemon is made of is built here and passed in."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from voicemoded import __version__
from voicemoded.api.paths import Paths

if TYPE_CHECKING:
    from voicemoded.app.application import App
    from voicemoded.app.daemon import DaemonProcess
    from voicemoded.app.providers import Providers
    from voicemoded.audio.devices import AudioBackend
    from voicemoded.config import ConfigManager, Settings
    from voicemoded.conversation.journal import Journal
    from voicemoded.conversation.loop import Conversation, Turns
    from voicemoded.events import EventBus
    from voicemoded.health import HealthRegistry
    from voicemoded.mcp.session import McpHost
    from voicemoded.plugins.loaded import Plugins
    from voicemoded.supervisor.spec import ServiceSpec

#: More supervised services beside the built-in ones, from the daemon's settings (a plugin's, say);
#: called again whenever the service specs are rebuilt.
MoreServices = Callable[["Settings"], Iterable["ServiceSpec"]]

EXIT_ERROR = 1
EXIT_ALREADY_RUNNING = 3


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="voicemoded",
        description="The voicemode daemon: audio devices, local speech servers, STT/TTS endpoints, "
        "and the gRPC API on a Unix socket. Runs in the foreground; stop it with SIGTERM or Ctrl-C, "
        "reload its configuration with SIGHUP.",
    )
    parser.add_argument("--version", action="version", version=f"voicemoded {__version__}")
    parser.add_argument(
        "--socket", type=Path, help="Unix socket to serve (default: $XDG_RUNTIME_DIR/voicemode/)"
    )
    parser.add_argument(
        "--base-dir", type=Path, help="state folder (default: ~/.voicemode or VOICEMODE_BASE_DIR)"
    )
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"], help="overrides config")
    parser.add_argument(
        "--log-format", choices=["auto", "console", "json"], default="auto", help="auto: console on a tty"
    )
    return parser.parse_args(argv)


def service_manager(env: Mapping[str, str]) -> str:
    if env.get("NOTIFY_SOCKET") or env.get("INVOCATION_ID"):
        return "systemd"
    if env.get("XPC_SERVICE_NAME", "0") not in ("", "0"):
        return "launchd"
    return ""


def build_app(
    paths: Paths,
    config: ConfigManager,
    events: EventBus,
    journal: Journal,
    process: DaemonProcess,
    *,
    plugins: Plugins | None = None,
    more_services: Sequence[MoreServices] = (),
    turns: Callable[[], Turns] | None = None,
) -> App:
    """Every part of the daemon, built once and wired together under the application layer (nothing
    starts here). ``plugins``: what the installed plugins add (see :func:`load_installed_plugins`);
    ``more_services`` adds supervised services beside the built-in ones; ``turns`` replaces the
    converse loop (which is otherwise built with the audio stack on first use)."""
    from voicemoded import wiring
    from voicemoded.app.application import App
    from voicemoded.app.audio import AudioStack
    from voicemoded.app.config import Configuration
    from voicemoded.app.conversation import Conversations
    from voicemoded.app.daemon import Daemon
    from voicemoded.app.devices import Devices
    from voicemoded.app.providers import Providers
    from voicemoded.app.rooms import Rooms
    from voicemoded.app.services import Services
    from voicemoded.app.statistics import Statistics
    from voicemoded.app.tools import Tools
    from voicemoded.engines.install import Installer, ModelStore
    from voicemoded.livekit.binary import cache_folder
    from voicemoded.livekit.credentials import livekit_access
    from voicemoded.plugins.loaded import Plugins
    from voicemoded.supervisor.supervisor import Supervisor
    from voicemoded.webhooks import Webhooks

    settings = config.settings
    plugins = plugins if plugins is not None else Plugins()
    installer = Installer(
        binary_paths={
            "VOICEMODE_LIVEKIT_SERVER_PATH": settings.livekit_server_path,
            "VOICEMODE_WHISPER_SERVER_PATH": settings.whisper_server_path,
        },
        events=events,
        go_cache=cache_folder(settings.livekit_cache),
    )
    models = ModelStore(
        installer, paths.models, paths.services / "models.json", hub=lambda: config.settings.model_hub
    )

    def specs() -> list[ServiceSpec]:
        current = config.settings
        out = wiring.service_specs(current, paths, models.chosen())
        out += wiring.plugin_specs(current, plugins.service_specs())
        for more in more_services:
            out += list(more(current))
        return out

    supervisor = Supervisor(
        specs(), logs_dir=paths.logs, run_dir=paths.services, state_dir=paths.services, events=events
    )
    providers = Providers(config, paths, events, plugins.endpoint_keys())
    audio = AudioStack(lambda: build_audio(paths, config, events, journal, providers))
    configuration = Configuration(config)
    webhooks = Webhooks(wiring.webhook_settings(settings), events)
    daemon = Daemon(process, configuration, events, plugins, webhooks)
    return App(
        conversations=Conversations(config, turns or (lambda: audio.conversation)),
        services=Services(supervisor, installer, models, specs, plugins),
        providers=providers,
        configuration=configuration,
        statistics=Statistics(journal, daemon, paths.audio),
        devices=Devices(audio, config),
        daemon=daemon,
        audio=audio,
        events=events,
        tools=Tools(plugins),
        plugins=plugins,
        webhooks=webhooks,
        rooms=Rooms(lambda: livekit_access(config.settings, paths)),  # the settings of each call
    )


def log_secrets(settings: Settings, plugins: Plugins) -> list[str]:
    """Values the log never shows: every secret setting's, and the plugins' API keys."""
    from voicemoded.config import SETTINGS

    secrets = [str(getattr(settings, info.name)) for info in SETTINGS if info.secret]
    return [*secrets, *plugins.endpoint_keys().values()]


def load_installed_plugins(settings: Settings, events: EventBus) -> Plugins:
    """The plugins ``VOICEMODE_PLUGINS`` selects among the installed ones; never raises (a plugin that
    fails is reported in ``status`` and skipped)."""
    import functools
    import importlib.metadata

    from voicemoded.config.parsers import SERVICE_NAMES
    from voicemoded.mcp.names import BUILTIN_TOOLS
    from voicemoded.plugins.loader import load_plugins

    # One pass over the installed distributions' metadata serves all three groups (each pass costs
    # ~10 ms); inside ``discover``, so the loader reports metadata it cannot read instead of raising.
    everything = functools.cache(importlib.metadata.entry_points)
    return load_plugins(
        settings.plugins,
        builtin_services=SERVICE_NAMES,
        builtin_tools=BUILTIN_TOOLS,
        events=events,
        discover=lambda group: everything().select(group=group),
    )


def warn_unprovided_autostart(settings: Settings, plugins: Plugins, events: EventBus) -> None:
    """A name in ``VOICEMODE_AUTOSTART_SERVICES`` nothing provides (a typo, a plugin not installed) is said
    once at start, in the log and the event stream; the other services start as usual."""
    import structlog

    from voicemoded import wiring

    for name in wiring.unprovided_autostart(settings, plugins.service_names()):
        message = f"VOICEMODE_AUTOSTART_SERVICES names {name}, which no built-in service or loaded plugin provides"
        structlog.get_logger("voicemoded").warning("config.warning", detail=message)
        events.publish("config.warning", "config", message, level="warning", service=name)


def build_audio(
    paths: Paths, config: ConfigManager, events: EventBus, journal: Journal, providers: Providers
) -> tuple[AudioBackend, Conversation]:
    """The audio devices and the converse loop, built on the first call that needs them."""
    from voicemoded.audio.devices import AudioBackend
    from voicemoded.audio.microphone import Microphone
    from voicemoded.audio.owner import AudioOwner
    from voicemoded.audio.playback import Speaker
    from voicemoded.audio.recorder import Listener
    from voicemoded.audio.turn import TurnModels
    from voicemoded.conversation.loop import Conversation
    from voicemoded.livekit.credentials import livekit_access
    from voicemoded.livekit.transport import RoomTransport

    settings = config.settings
    audio = AudioBackend()
    microphone = Microphone(audio, settings.input_device or None, events=events)
    conversation = Conversation(
        owner=AudioOwner(default_wait=settings.queue_timeout, events=events),
        speaker=Speaker(audio, settings.output_device or None, events=events),
        microphone=microphone,
        listener=Listener(microphone, events=events),
        speech=providers.current,  # read at the start of each turn: a reload swaps the registry
        journal=journal,
        audio_dir=paths.audio,
        turns=TurnModels(paths.models, events=events, device=settings.device),
        events=events,
        rooms=RoomTransport(lambda: livekit_access(config.settings, paths), events=events),
    )
    return audio, conversation


#: Everything the daemon writes (recordings, transcripts, logs, pid files) is the user's alone, and the
#: children inherit it.
DAEMON_UMASK = 0o077


async def run(
    paths: Paths, args: argparse.Namespace, env: Mapping[str, str], more_services: Sequence[MoreServices] = ()
) -> int:
    """Claim the base directory for this daemon, then serve; a second daemon for it stops here."""
    from voicemoded.api.instance import BaseDirLock
    from voicemoded.api.paths import check_socket_path, storage_error

    check_socket_path(paths.socket)
    tightened = paths.ensure()
    lock = BaseDirLock(paths.base)
    try:
        lock.acquire(paths.socket)
    except OSError as exc:
        raise storage_error(exc, lock.path, "take the daemon's lock") from None
    try:
        return await serve(paths, args, env, tightened, more_services)
    finally:
        lock.release()


async def serve(
    paths: Paths,
    args: argparse.Namespace,
    env: Mapping[str, str],
    tightened: list[Path],
    more_services: Sequence[MoreServices] = (),
) -> int:
    # Heavy imports happen here, after --help/--version had their chance to exit.
    import structlog
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc

    from voicemoded import logsetup
    from voicemoded.api.v1 import (
        conversation_pb2_grpc,
        daemon_pb2_grpc,
        mcp_pb2_grpc,
        providers_pb2_grpc,
        rooms_pb2_grpc,
        services_pb2_grpc,
    )
    from voicemoded.app.daemon import DaemonProcess
    from voicemoded.config import ConfigManager
    from voicemoded.conversation.journal import Journal
    from voicemoded.events import EventBus
    from voicemoded.health import Health, HealthRegistry
    from voicemoded.peercred import PeerPolicy, allowed_peer_uids
    from voicemoded.rpc.conversation_service import ConversationService
    from voicemoded.rpc.daemon_service import DaemonService
    from voicemoded.rpc.mcp_service import McpTunnelService
    from voicemoded.rpc.providers_service import ProvidersService
    from voicemoded.rpc.rooms_service import RoomsService
    from voicemoded.rpc.supervisor_service import SupervisorService
    from voicemoded.sdnotify import Notifier
    from voicemoded.server import SocketServer

    scrubber = logsetup.configure(args.log_level or "info", args.log_format)
    log = structlog.get_logger("voicemoded")
    started_at = time.time()
    events = EventBus()
    if tightened:
        folders = ", ".join(map(str, tightened))
        log.warning("paths.tightened", folders=folders, mode="0700")
        events.publish(
            "daemon.folders_tightened", "daemon", f"made private (0700): {folders}", level="warning",
            folders=folders,
        )  # fmt: skip
    config = ConfigManager(paths, env, events)
    config.load()
    plugins = load_installed_plugins(config.settings, events)
    warn_unprovided_autostart(config.settings, plugins, events)
    journal = Journal(paths.conversations)
    recover_answers(paths, journal)
    loop = asyncio.get_running_loop()
    background: list[asyncio.Task[None]] = []

    notifier = Notifier(env)
    stop_requested = asyncio.Event()
    stopping = asyncio.Event()
    grace = [config.settings.shutdown_grace]

    def request_stop(grace_seconds: float = 0.0) -> None:
        if grace_seconds > 0:
            grace[0] = grace_seconds
        stop_requested.set()

    health_registry = HealthRegistry()
    process = DaemonProcess(
        paths.socket, paths.base, started_at, health_registry, request_stop, stopping, service_manager(env)
    )
    app = build_app(paths, config, events, journal, process, plugins=plugins, more_services=more_services)
    register_health(health_registry, app)

    def apply_daemon_settings(old: Settings | None, new: Settings) -> None:
        scrubber.update(log_secrets(new, plugins))
        logsetup.set_level(args.log_level or new.log_level)
        if old is not None:
            background.append(loop.create_task(app.settings_changed(old, new)))

    apply_daemon_settings(None, config.settings)
    config.on_change(apply_daemon_settings)

    mcp_service = McpTunnelService(lambda: mcp_host(app))
    health_registry.register("mcp", lambda: Health("mcp", "ok", mcp_service.health_detail()))
    health_servicer = health.aio.HealthServicer()

    def register(server: object) -> None:
        daemon_pb2_grpc.add_DaemonServicer_to_server(DaemonService(app.daemon, app.configuration), server)
        services_pb2_grpc.add_SupervisorServicer_to_server(SupervisorService(app.services), server)
        providers_pb2_grpc.add_ProvidersServicer_to_server(ProvidersService(app.providers), server)
        conversation_pb2_grpc.add_ConversationServicer_to_server(
            ConversationService(app.conversations, app.devices, app.statistics), server
        )
        rooms_pb2_grpc.add_RoomsServicer_to_server(RoomsService(app.rooms), server)
        mcp_pb2_grpc.add_McpTunnelServicer_to_server(mcp_service, server)
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)

    def on_hup() -> None:
        log.info("daemon.reload_requested", signal="SIGHUP")
        notifier.reloading()
        config.load()
        notifier.ready("configuration reloaded")

    # Who may connect besides the daemon's own user: read per connection, so a reload applies.
    policy = PeerPolicy(os.geteuid(), lambda: allowed_peer_uids(config.settings, env))
    async with SocketServer(paths.socket, register, policy=policy) as server:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, request_stop)
        loop.add_signal_handler(signal.SIGHUP, on_hup)
        await app.start()
        webhooks = asyncio.create_task(app.webhooks.run(), name="webhooks")
        background.append(webhooks)
        background.append(asyncio.create_task(app.follow_services(), name="providers.follow_services"))
        # Leftovers of a previous run are ended before their ports are needed; autostart runs in the
        # background so the API answers while models load.
        background.append(asyncio.create_task(app.services.startup(), name="supervisor.startup"))
        background.append(asyncio.create_task(notifier.watchdog(), name="sdnotify.watchdog"))
        if config.settings.config_watch:
            background.append(asyncio.create_task(config.watch(), name="config.watch"))
        await _set_serving(health_servicer, health_pb2.HealthCheckResponse.SERVING)
        await webhooks_following(app, webhooks)  # else they would miss the start
        events.publish("daemon.started", "daemon", f"voicemoded {__version__} ready", pid=os.getpid())
        log.info("daemon.ready", version=__version__, pid=os.getpid(), socket=str(paths.socket))
        notifier.ready(f"serving {paths.socket}")
        await stop_requested.wait()

        log.info("daemon.stopping", grace_seconds=grace[0])
        notifier.stopping()
        events.publish("daemon.stopping", "daemon", "shutting down")
        await _set_serving(health_servicer, health_pb2.HealthCheckResponse.NOT_SERVING)
        stopping.set()
        await server.stop(grace[0])
        for task in background:
            task.cancel()
        for task in background:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await app.aclose()
    log.info("daemon.stopped")
    return 0


async def webhooks_following(app: App, task: asyncio.Task[None]) -> None:
    """Return once the webhooks follow the event bus, or at once if their task ended instead."""
    import structlog

    following = asyncio.ensure_future(app.webhooks.subscribed.wait())
    try:
        await asyncio.wait({following, task}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        following.cancel()
    if task.done() and not task.cancelled() and task.exception() is not None:
        error = repr(task.exception())
        structlog.get_logger("voicemoded").error("webhooks.stopped", error=error)


def mcp_host(app: App) -> McpHost:
    """The MCP door over the application layer; built on the first session (the SDK is heavy)."""
    from voicemoded.mcp.backend import DaemonBackend
    from voicemoded.mcp.session import McpHost

    return McpHost(DaemonBackend(app), events=app.events)


def recover_answers(paths: Paths, journal: Journal) -> None:
    """Finish the answers a daemon that died mid-turn left spooled, before anyone asks for ``--last``."""
    import structlog

    from voicemoded.conversation.journal import recover_interrupted_turns

    log = structlog.get_logger("voicemoded")
    try:
        recovered = recover_interrupted_turns(paths.audio, journal)
    except OSError as exc:  # a start is never refused over this: the spools stay for the next one
        log.warning("conversation.recovery_failed", error=str(exc), folder=str(paths.audio))
        return
    for path in recovered:
        log.info("conversation.answer_recovered", path=str(path))


def register_health(registry: HealthRegistry, app: App) -> None:
    for name, probe in app.health_probes().items():
        registry.register(name, probe)


async def _set_serving(servicer: object, status: int) -> None:
    for service in ("", "voicemode.v1.Daemon"):
        await servicer.set(service, status)  # type: ignore[attr-defined]


def main(argv: list[str] | None = None, *, more_services: Sequence[MoreServices] = ()) -> int:
    """``more_services``: supervised services beside the built-in ones (see :data:`MoreServices`)."""
    args = parse_args(argv)
    env = dict(os.environ)
    if args.base_dir:
        env["VOICEMODE_BASE_DIR"] = str(args.base_dir)
    paths = Paths.from_env(env, socket=args.socket)
    from voicemoded.api.errors import AlreadyExists, VoicemodeError

    os.umask(DAEMON_UMASK)
    # gRPC's fork handlers, run when a child is forked while its threads are busy, crash that child (SIGSEGV
    # before exec, about one spawn in four under load). Our children exec at once and never use gRPC.
    os.environ["GRPC_ENABLE_FORK_SUPPORT"] = "false"
    try:
        return asyncio.run(run(paths, args, env, more_services))
    except ModuleNotFoundError as exc:
        # `pip install voicemode` is the front doors only; the daemon needs its extra.
        print(
            f"voicemoded: {exc.name or exc} is not installed: the daemon needs the 'daemon' extra\n"
            "  pip install 'voicemode[daemon]'   (or 'voicemode[engines]' for the offline speech engines too)",
            file=sys.stderr,
        )
        return EXIT_ERROR
    except AlreadyExists as exc:
        print(f"voicemoded: {exc.message}\n  {exc.hint}", file=sys.stderr)
        return EXIT_ALREADY_RUNNING
    except VoicemodeError as exc:
        print(f"voicemoded: {exc.message}" + (f"\n  {exc.hint}" if exc.hint else ""), file=sys.stderr)
        return EXIT_ERROR
    except OSError as exc:
        # The machine's state, not a bug in us: say which file and what went wrong, without a traceback.
        where = f" ({exc.filename})" if exc.filename else ""
        print(
            f"voicemoded: cannot start: {exc.strerror or exc}{where}\n"
            f"  check that {paths.base} and its folders belong to you and are writable",
            file=sys.stderr,
        )
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
