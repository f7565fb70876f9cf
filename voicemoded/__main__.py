"""voicemoded: the composition root. Everything the daemon is made of is built here and passed in."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from voicemoded import __version__
from voicemoded.paths import Paths

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


async def run(paths: Paths, args: argparse.Namespace, env: Mapping[str, str]) -> int:
    # Heavy imports happen here, after --help/--version had their chance to exit.
    import structlog
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc

    from voicemoded import logsetup
    from voicemoded.api.v1 import daemon_pb2_grpc
    from voicemoded.config import ConfigManager, Settings
    from voicemoded.events import EventBus
    from voicemoded.health import Health, HealthRegistry
    from voicemoded.rpc.daemon_service import DaemonService
    from voicemoded.sdnotify import Notifier
    from voicemoded.server import SocketServer

    scrubber = logsetup.configure(args.log_level or "info", args.log_format)
    log = structlog.get_logger("voicemoded")
    started_at = time.time()
    paths.ensure()
    events = EventBus()
    config = ConfigManager(paths, env, events)
    config.load()

    def apply_daemon_settings(_old: Settings | None, new: Settings) -> None:
        scrubber.update([new.openai_api_key, new.livekit_api_secret, new.livekit_api_key])
        logsetup.set_level(args.log_level or new.log_level)

    apply_daemon_settings(None, config.settings)
    config.on_change(apply_daemon_settings)

    health_registry = HealthRegistry()
    health_registry.register(
        "config",
        lambda: (
            Health("config", "degraded", "; ".join(map(str, config.errors)))
            if config.errors
            else Health("config", "ok", str(paths.user_file))
        ),
    )

    notifier = Notifier(env)
    stop_requested = asyncio.Event()
    stopping = asyncio.Event()
    grace = [config.settings.shutdown_grace]

    def request_stop(grace_seconds: float = 0.0) -> None:
        if grace_seconds > 0:
            grace[0] = grace_seconds
        stop_requested.set()

    daemon_service = DaemonService(
        config=config,
        events=events,
        health=health_registry,
        socket=paths.socket,
        base_dir=paths.base,
        started_at=started_at,
        request_stop=request_stop,
        stopping=stopping,
        manager=service_manager(env),
    )
    health_servicer = health.aio.HealthServicer()

    def register(server: object) -> None:
        daemon_pb2_grpc.add_DaemonServicer_to_server(daemon_service, server)
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)

    loop = asyncio.get_running_loop()

    def on_hup() -> None:
        log.info("daemon.reload_requested", signal="SIGHUP")
        notifier.reloading()
        config.load()
        notifier.ready("configuration reloaded")

    async with SocketServer(paths.socket, register) as server:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, request_stop)
        loop.add_signal_handler(signal.SIGHUP, on_hup)
        await _set_serving(health_servicer, health_pb2.HealthCheckResponse.SERVING)
        background = [asyncio.create_task(notifier.watchdog(), name="sdnotify.watchdog")]
        if config.settings.config_watch:
            background.append(asyncio.create_task(config.watch(), name="config.watch"))
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
            with contextlib.suppress(asyncio.CancelledError):
                await task
    log.info("daemon.stopped")
    return 0


async def _set_serving(servicer: object, status: int) -> None:
    for service in ("", "voicemode.v1.Daemon"):
        await servicer.set(service, status)  # type: ignore[attr-defined]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    env = dict(os.environ)
    if args.base_dir:
        env["VOICEMODE_BASE_DIR"] = str(args.base_dir)
    paths = Paths.from_env(env, socket=args.socket)
    from voicemoded.errors import AlreadyExists, VoicemodeError

    try:
        return asyncio.run(run(paths, args, env))
    except AlreadyExists as exc:
        print(f"voicemoded: {exc.message}\n  {exc.hint}", file=sys.stderr)
        return EXIT_ALREADY_RUNNING
    except VoicemodeError as exc:
        print(f"voicemoded: {exc.message}" + (f"\n  {exc.hint}" if exc.hint else ""), file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
