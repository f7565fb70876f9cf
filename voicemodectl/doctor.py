"""voicemodectl doctor: everything voice needs, checked in one place, with the command that fixes each problem.

The daemon is asked about what only it can see (its devices through PortAudio, its services, its
endpoints, its configuration); what the daemon cannot report because it is down or because it is about
the way in (the socket, the sound server, the PortAudio library, the service unit) is checked here. Like
every front door, this imports neither PyAudio nor numpy.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from voicemodectl import output
from voicemodectl.config import _project_file
from voicemodectl.file_checks import config_file_findings
from voicemoded.api import starter
from voicemoded.api.client import Client, ClientError, DaemonNotRunning
from voicemoded.api.paths import Paths
from voicemoded.api.v1 import daemon_pb2, services_pb2

OK, WARN, FAIL, SKIP = "ok", "warn", "fail", "skip"
_MARK = {OK: "ok", WARN: "warn", FAIL: "FAIL", SKIP: "-"}
_SERVICE_FOR_KIND = {"stt": "whisper", "tts": "piper"}
_URLS_KEY = {"stt": "VOICEMODE_STT_BASE_URLS", "tts": "VOICEMODE_TTS_BASE_URLS"}


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    status: str
    detail: str
    fix: str = ""
    """The command that fixes it (failures and warnings)."""


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "doctor",
        help="check audio, sound server, socket, configuration, services and endpoints; print fixes",
        description="Exit code 0 when nothing failed (warnings allowed), 1 when a check failed.",
    )
    parser.add_argument("--no-probe", action="store_true", help="report endpoint health without probing")
    parser.set_defaults(func=run, needs_daemon=False)


def run(args: argparse.Namespace, client: Client) -> int:
    checks = diagnose(client, probe=not args.no_probe)
    failed = [c for c in checks if c.status == FAIL]
    if args.json:
        output.print_json({
            "ok": not failed, "failed": len(failed),
            "warnings": sum(c.status == WARN for c in checks), "checks": [asdict(c) for c in checks],
        })  # fmt: skip
    else:
        width = max(len(c.name) for c in checks)
        for c in checks:
            print(f"{_MARK[c.status]:4}  {c.name:{width}}  {c.detail}")
            if c.fix and c.status in (FAIL, WARN):
                print(f"{'':4}  {'':{width}}  fix: {c.fix}")
        print()
        warned = sum(c.status == WARN for c in checks)
        if failed:
            print(f"{len(failed)} problem{'s' if len(failed) != 1 else ''} found")
        elif warned:
            print(f"no failures; {warned} warning{'s' if warned != 1 else ''} to look at")
        else:
            print("all good")
    return output.ERROR if failed else output.OK


def diagnose(client: Client, *, probe: bool = True) -> list[Check]:
    checks: list[Check] = []
    status: daemon_pb2.Status | None = None
    try:
        status = client.status(timeout=5.0)
        manager = f", under {status.manager}" if status.manager else ""
        checks.append(Check("daemon", OK, f"voicemoded {status.version}, pid {status.pid}{manager}"))
    except DaemonNotRunning:
        checks.append(Check("daemon", FAIL, f"not running on {client.socket}", "voicemodectl daemon start"))
    except ClientError as exc:
        checks.append(Check("daemon", FAIL, exc.message, exc.hint or "voicemodectl daemon restart"))
    checks += socket_checks(client.socket, running=status is not None)
    checks.append(unit_check())
    checks.append(sound_server_check())
    base = Path(status.base_dir) if status is not None and status.base_dir else Paths.from_env().base
    project = _project_file()
    checks += file_checks(base, [base / "voicemode.env", *([Path(project)] if project else [])])
    if status is None:
        checks.append(portaudio_library_check())
        checks += accelerator_checks(os.environ.get("VOICEMODE_DEVICE") or "auto")
        return checks
    checks += device_checks(client)
    checks += accelerator_checks(_configured_device(client))
    checks += config_checks(client, status)
    checks += service_checks(client)
    checks += provider_checks(client, probe=probe)
    return checks


# --- local checks -----------------------------------------------------------------------------------


def socket_checks(socket: Path, *, running: bool) -> list[Check]:
    """The socket is the daemon's only door: 0600 in a 0700 folder, owned by the user, or anyone can talk."""
    try:
        info = socket.lstat()
    except FileNotFoundError:
        return [Check("socket", FAIL if running else SKIP, f"{socket} does not exist")]
    problems: list[tuple[str, str]] = []
    mode = stat.S_IMODE(info.st_mode)
    if not stat.S_ISSOCK(info.st_mode):
        problems.append(
            (f"{socket} is not a socket", f"rm {shlex.quote(str(socket))} && voicemodectl daemon start")
        )
    elif mode & 0o077:
        problems.append((f"mode {mode:04o}, others can connect", f"chmod 600 {shlex.quote(str(socket))}"))
    if info.st_uid != os.getuid():
        problems.append((f"owned by uid {info.st_uid}, not you", "voicemodectl daemon restart"))
    folder = socket.parent
    folder_mode = stat.S_IMODE(folder.stat().st_mode)
    ours = folder.name in ("voicemode", "run")
    if ours and folder_mode & 0o077:
        problems.append((f"folder {folder} is {folder_mode:04o}", f"chmod 700 {shlex.quote(str(folder))}"))
    if problems:
        return [Check("socket", FAIL, f"{socket}: {why}", fix) for why, fix in problems]
    where = f"folder {folder_mode:04o}" if ours else f"in shared folder {folder}"
    return [Check("socket", OK, f"{socket} ({mode:04o}, {where})")]


def file_checks(base: Path, files: list[Path]) -> list[Check]:
    """Private state: problems one check each, everything fine as one line."""
    findings = config_file_findings(base, files)
    problems = [
        Check("config files", status, detail, fix) for status, detail, fix in findings if status != OK
    ]
    if problems:
        return problems
    fine = "; ".join(detail for _, detail, _ in findings)
    return [Check("config files", OK, fine or f"{base} does not exist yet")]


def unit_check() -> Check:
    """An installed unit that points at a voicemoded which no longer exists (moved venv, upgrade) is stale."""
    unit = starter.systemd_unit() or starter.launchd_plist()
    if unit is None:
        return Check("service unit", SKIP, "none installed (optional: voicemodectl daemon install)")
    program = _unit_program(unit)
    if program and not os.access(program, os.X_OK):
        return Check(
            "service unit", FAIL, f"{unit} runs {program}, which is gone", "voicemodectl daemon install"
        )
    return Check("service unit", OK, f"{unit} runs {program or '?'}")


def _unit_program(unit: Path) -> str:
    try:
        if unit.suffix == ".plist":
            import plistlib

            return str(plistlib.loads(unit.read_bytes()).get("ProgramArguments", [""])[0])
        for line in unit.read_text().splitlines():
            if line.startswith("ExecStart="):
                return shlex.split(line.partition("=")[2].lstrip("-@:+!"))[0]
    except (OSError, ValueError, IndexError):
        pass
    return ""


def _sound_server_fix() -> str:
    if shutil.which("pipewire"):
        return "systemctl --user restart pipewire pipewire-pulse"
    if shutil.which("pulseaudio"):
        return "pulseaudio --start"
    return "sudo apt-get install pipewire-pulse (or pulseaudio), then log in again"


def sound_server_check() -> Check:
    """PortAudio reaches PulseAudio/PipeWire through its socket; find it the way libpulse does, never spawn one."""
    if sys.platform == "darwin":
        return Check("sound server", SKIP, "CoreAudio (no sound server needed on macOS)")
    runtime = Path(os.environ.get("XDG_RUNTIME_DIR") or f"/run/user/{os.getuid()}")
    server = os.environ.get("PULSE_SERVER", "")
    source = "PULSE_SERVER"
    if not server:
        source = "$XDG_RUNTIME_DIR"
        if (runtime / "pulse" / "native").exists():
            server = f"unix:{runtime / 'pulse' / 'native'}"
        elif (runtime / "pipewire-0").exists():
            return Check(
                "sound server", WARN, f"PipeWire at {runtime / 'pipewire-0'} but no PulseAudio socket",
                "sudo apt-get install pipewire-pulse && systemctl --user restart pipewire-pulse",
            )  # fmt: skip
        else:
            cards = Path("/proc/asound/cards")
            direct = cards.exists() and "no soundcards" not in cards.read_text() and cards.read_text().strip()
            return Check(
                "sound server", WARN if direct else FAIL,
                f"none found (no PULSE_SERVER, nothing in {runtime})"
                + ("; PortAudio will use ALSA devices directly" if direct else ""),
                _sound_server_fix(),
            )  # fmt: skip
    path = server.removeprefix("unix:")
    if server.startswith(("unix:", "/")) and not Path(path).exists():
        return Check("sound server", FAIL, f"{source}={server}: no such socket", _sound_server_fix())
    return _pactl_info(server, source)


def _pulse_cookie() -> str:
    """The cookie libpulse would use, when there is one (a server may require it)."""
    configured = os.environ.get("PULSE_COOKIE", "")
    config_home = os.environ.get("XDG_CONFIG_HOME") or os.path.join(Path.home(), ".config")
    for candidate in (
        configured,
        os.path.join(config_home, "pulse", "cookie"),
        str(Path.home() / ".pulse-cookie"),
    ):
        if candidate and os.path.isfile(candidate):
            return candidate
    return ""


def _pactl(server: str) -> subprocess.CompletedProcess[str]:
    """``pactl info`` that leaves the home folder as it was.

    A libpulse client that finds no cookie writes a new one to ``~/.config/pulse/cookie`` (and creates the
    folders): a check must not. So pactl runs with a throw-away HOME and config folder, and is handed the
    person's existing cookie, if any, to read.
    """
    with tempfile.TemporaryDirectory(prefix="voicemode-doctor-") as scratch:
        env = {
            **os.environ,
            "PULSE_SERVER": server,  # explicit server: libpulse never autospawns one
            "HOME": scratch,
            "XDG_CONFIG_HOME": os.path.join(scratch, ".config"),
        }
        cookie = _pulse_cookie()
        if cookie:
            env["PULSE_COOKIE"] = cookie
        else:
            env.pop("PULSE_COOKIE", None)
        return subprocess.run(
            ["pactl", "info"], env=env, capture_output=True, text=True, timeout=5, stdin=subprocess.DEVNULL
        )


def _pactl_info(server: str, source: str) -> Check:
    if shutil.which("pactl") is None:
        return Check("sound server", OK, f"{server} (socket present; install pulseaudio-utils to query it)")
    try:
        done = _pactl(server)
    except subprocess.TimeoutExpired:
        return Check("sound server", FAIL, f"{server} does not answer (5 s)", _sound_server_fix())
    if done.returncode != 0:
        why = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no answer"]
        return Check("sound server", FAIL, f"{source}={server}: {why[0]}", _sound_server_fix())
    info = dict(line.split(": ", 1) for line in done.stdout.splitlines() if ": " in line)
    name = info.get("Server Name", "?") + (f" {info['Server Version']}" if "Server Version" in info else "")
    return Check(
        "sound server", OK,
        f"{name} at {server} (default sink {info.get('Default Sink', '?')}, "
        f"source {info.get('Default Source', '?')})",
    )  # fmt: skip


def _portaudio_fix() -> str:
    if sys.platform == "darwin":
        return "brew install portaudio"
    return "sudo apt-get install libportaudio2 (Fedora: sudo dnf install portaudio)"


def portaudio_library_check() -> Check:
    """With the daemon down, the next best thing to opening PortAudio: is the shared library there?"""
    import ctypes.util

    found = ctypes.util.find_library("portaudio")
    if found:
        return Check("portaudio", OK, f"library {found} (devices are checked when the daemon runs)")
    return Check(
        "portaudio", FAIL, "the PortAudio library (libportaudio.so.2) is not installed", _portaudio_fix()
    )


def accelerator_checks(requested: str) -> list[Check]:
    """Where the models would run, asked of the runtimes in a child process (this door imports none).

    The child gets a throw-away home folder: onnxruntime writes a cache file there when it is imported.
    """
    cmd = [sys.executable, "-m", "voicemoded.accelerator", "--device", requested, "--json"]
    try:
        with tempfile.TemporaryDirectory(prefix="voicemode-doctor-") as scratch:
            env = {**os.environ, "HOME": scratch, "XDG_CACHE_HOME": os.path.join(scratch, ".cache")}
            done = subprocess.run(
                cmd, env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
            )
        found = json.loads(done.stdout) if done.returncode == 0 else None
    except (subprocess.TimeoutExpired, ValueError):
        found = None
    if not isinstance(found, list):
        why = f"could not ask the model runtimes (VOICEMODE_DEVICE={requested})"
        return [Check("accelerator", WARN, why)]
    checks = []
    for p in found:
        detail = f"{p['runtime']} on {p['device']} (VOICEMODE_DEVICE={requested}): {p['reason']}"
        if p["fell_back"]:
            checks.append(Check("accelerator", WARN, detail, "voicemodectl config set VOICEMODE_DEVICE auto"))
        else:
            checks.append(Check("accelerator", OK, detail))
    return checks


def _configured_device(client: Client) -> str:
    try:
        values = client.get_config(["VOICEMODE_DEVICE"]).values
    except ClientError:
        return "auto"
    return next((v.value for v in values if v.key == "VOICEMODE_DEVICE" and v.value), "auto")


# --- what the daemon sees ---------------------------------------------------------------------------


def device_checks(client: Client) -> list[Check]:
    try:
        listed = client.list_devices(timeout=30)
    except ClientError as exc:
        return [Check("portaudio", FAIL, f"the daemon cannot list devices: {exc.message}", _portaudio_fix())]
    apis = sorted({d.host_api for d in listed.devices if d.host_api})
    checks = [Check("portaudio", OK, f"{len(listed.devices)} devices ({', '.join(apis) or 'no host API'})")]
    for direction, error, key in (
        ("input", listed.input_error, "VOICEMODE_INPUT_DEVICE"),
        ("output", listed.output_error, "VOICEMODE_OUTPUT_DEVICE"),
    ):
        chosen = [d for d in listed.devices if getattr(d, f"selected_{direction}")]
        if error:
            fix = (
                f"voicemodectl config unset {key}" if "available:" in error and listed.devices
                else _sound_server_fix()
            )  # fmt: skip
            checks.append(Check(f"{direction} device", FAIL, error, fix))
        elif chosen:
            d = chosen[0]
            where = f"{d.description}, {d.host_api}" if d.index < 0 else f"index {d.index}"
            checks.append(Check(f"{direction} device", OK, f"{d.name} ({where})"))
    return checks


def config_checks(client: Client, status: daemon_pb2.Status) -> list[Check]:
    """Errors keep the last good configuration in force; unknown keys (older versions) are only warnings."""
    started = time.time()
    errors = list(status.config_errors)
    try:  # re-read the files now, as SIGHUP does, so the findings are about the files as they are
        errors = list(client.reload_config().errors)
    except ClientError:
        pass
    checks = []
    for e in errors:
        editor = f"{os.environ.get('EDITOR', 'vi')} +{e.line} {shlex.quote(e.file)}"
        fix = f"voicemodectl config unset {e.key}" if e.key else editor
        checks.append(Check("config", FAIL, f"{e.key or 'line'} at {e.file}:{e.line}: {e.reason}", fix))
    warnings: dict[str, None] = {}
    try:
        for event in client.watch_events(replay=200, subsystems=["config"], timeout=0.5):
            if event.kind == "config.warning" and event.time.seconds + event.time.nanos / 1e9 >= started - 1:
                warnings[event.message] = None
    except ClientError:
        pass  # the deadline ends the replay
    checks += [Check("config", WARN, w, "voicemodectl config edit") for w in warnings]
    if not checks:
        user = next((s.path for s in status.config_sources if s.layer == "user"), "")
        checks.append(Check("config", OK, f"no errors ({user})"))
    return checks


def service_checks(client: Client) -> list[Check]:
    services = client.list_services().services
    try:
        models = list(client.list_models().models)
    except ClientError:
        models = []
    checks = []
    for s in services:
        state = services_pb2.ServiceState.Name(s.state).lower()
        in_use = [m.name for m in models if m.engine == s.name and m.in_use]
        model = f", model {', '.join(in_use)}" if in_use else ""
        where = f"{s.backend}{model}"
        name = f"service {s.name}"
        if not s.installed:
            status = FAIL if s.autostart else SKIP
            detail = f"{where}: not installed" + (f" ({s.install_hint})" if status == SKIP else "")
            checks.append(Check(name, status, detail, s.install_hint))
        elif state in ("fatal", "backoff"):
            why = s.reason or s.last_exit or state
            fix = f"voicemodectl service logs {s.name}; voicemodectl service restart {s.name}"
            checks.append(Check(name, FAIL, f"{where}: {state}: {why}", fix))
        elif state == "running":
            checks.append(Check(name, OK, f"{where}, running at {s.url or s.port}, pid {s.pid}"))
        elif state == "starting":
            checks.append(Check(name, OK, f"{where}, starting"))
        elif s.autostart:
            checks.append(
                Check(name, WARN, f"{where}: {state} ({s.reason})", f"voicemodectl service start {s.name}")
            )
        else:
            checks.append(Check(name, SKIP, f"{where}: {state} (start: voicemodectl service start {s.name})"))
    return checks


def provider_checks(client: Client, *, probe: bool) -> list[Check]:
    providers = client.probe_providers() if probe else client.list_providers()
    configured = _configured_urls(client)
    checks = []
    for p in providers.providers:
        name = f"{p.kind} endpoint {p.name}"
        if p.health == "healthy":
            checks.append(Check(name, OK, f"{p.url} ({p.source}, {p.latency_ms:.0f} ms)"))
            continue
        status = FAIL if p.health == "unhealthy" else WARN
        why = p.last_error or p.health
        if p.source == "local":
            fix = f"voicemodectl service restart {p.name}"
        elif p.source == "cloud" and "key" in why.lower():
            fix = "voicemodectl config set OPENAI_API_KEY sk-..."
        else:
            drop = _drop_url(p.kind, p.url, configured)
            fix = f"start the server at {p.url}, or drop it: {drop}"
        checks.append(Check(name, status, f"{p.url} ({p.source}): {why}", fix))
    for kind in ("stt", "tts"):
        if not any(p.kind == kind and p.health == "healthy" for p in providers.providers):
            service = _SERVICE_FOR_KIND[kind]
            checks.append(
                Check(
                    f"{kind} endpoint", FAIL, f"no healthy {kind.upper()} endpoint",
                    f"voicemodectl service start {service} && "
                    f"voicemodectl config set VOICEMODE_AUTOSTART_SERVICES whisper,piper",
                )
            )  # fmt: skip
    return checks


def _configured_urls(client: Client) -> dict[str, tuple[list[str], str]]:
    """Each kind's configured URLs and the layer that set them (the fix differs per layer)."""
    try:
        values = client.get_config(list(_URLS_KEY.values())).values
    except ClientError:
        return {}
    by_key = {v.key: ([u.strip() for u in v.value.split(",") if u.strip()], v.layer) for v in values}
    return {kind: by_key.get(key, ([], "")) for kind, key in _URLS_KEY.items()}


def _drop_url(kind: str, url: str, configured: dict[str, tuple[list[str], str]]) -> str:
    urls, layer = configured.get(kind, ([], ""))
    rest = ",".join(u for u in urls if u.rstrip("/") != url.rstrip("/"))
    key = _URLS_KEY[kind]
    if layer.endswith("environment"):
        change = f"export {key}={shlex.quote(rest)}" if rest else f"unset {key}"
        return change + (" && voicemodectl daemon restart" if layer == "daemon-environment" else "")
    scope = " --scope project" if layer == "project" else ""
    return (
        f"voicemodectl config set {key} {rest}{scope}" if rest else f"voicemodectl config unset {key}{scope}"
    )
