"""voicemodectl daemon install|uninstall|enable|disable: voicemoded as a systemd or launchd service.

Units are rendered for the install that runs this command (the absolute path of this Python's
``voicemoded``, the user, the base dir and socket in force), so a unit never points at a ``voicemoded``
that happens to be first on some other PATH. Writing the file and asking the manager to reload are separate
steps: a machine without a running manager (a container, a build root) still gets the file, and the
reload failure is a warning that names the command to run later.

Standard library + the client only: this is part of a front door.
"""

from __future__ import annotations

import argparse
import os
import pwd
import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from voicemodectl import output
from voicemoded.api.client import Client, ClientError
from voicemoded.api.starter import LAUNCHD_LABEL, SYSTEMD_UNIT

SYSTEM_UNIT_DIR = Path("/etc/systemd/system")
SYSTEM_SOCKET = "/run/voicemode/voicemoded.sock"
SYSTEM_STATE = "/var/lib/voicemode"
MANAGER_TIMEOUT = 30.0

# Options that harden the process without touching what audio needs: the sound server's socket under
# $XDG_RUNTIME_DIR, /dev/snd, and (user unit) a writable home for ~/.voicemode. Left out on purpose:
# PrivateDevices= (hides /dev/snd), ProtectHome= in the user unit (state lives there), RestrictRealtime=
# (audio threads may ask for real-time scheduling), MemoryDenyWriteExecute= (libffi/onnxruntime need it).
_HARDENING = """\
NoNewPrivileges=yes
LockPersonality=yes
RestrictSUIDSGID=yes
RestrictNamespaces=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallErrorNumber=EPERM
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK"""

# A system unit runs as one user with namespaces available, so it can also hide what it never needs.
_SYSTEM_HARDENING = """\
CapabilityBoundingSet=
ProtectSystem=strict
ProtectHome=read-only
PrivateTmp=yes
ProtectProc=invisible
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes"""

_UNIT = """\
# voicemoded as a systemd {scope} service; rendered by `voicemodectl daemon install{flag}`.
[Unit]
Description=voicemode daemon: voice conversation for AI assistants
After={after}
StartLimitIntervalSec=120
StartLimitBurst=5

[Service]
Type=notify
NotifyAccess=main
{identity}ExecStart={exec_start}
ExecReload=/bin/kill -HUP $MAINPID
Restart=on-failure
RestartSec=2
# Exit code 3: another voicemoded already serves the socket; restarting would not help.
RestartPreventExitStatus=3
TimeoutStartSec=60
TimeoutStopSec=30
WatchdogSec=30
# SIGTERM to voicemoded alone: it stops its speech servers in order; leftovers get SIGKILL at the end.
KillMode=mixed
RuntimeDirectory=voicemode
RuntimeDirectoryMode=0700
{directories}UMask=0077
{environment}
{hardening}

[Install]
WantedBy={wanted_by}
"""


@dataclass(frozen=True, slots=True)
class Install:
    """What a unit is rendered for."""

    command: tuple[str, ...]
    """How to run this install's voicemoded, absolute."""
    user: str
    group: str
    uid: int
    path: str
    """PATH for the daemon and its speech servers (a service manager's default PATH is short)."""
    base_dir: str = ""
    """``--base-dir`` when the installing shell set VOICEMODE_BASE_DIR; empty for the default."""
    socket: str = ""
    """``--socket`` when the installing shell set VOICEMODE_SOCKET; empty for the manager's default."""


@dataclass(frozen=True, slots=True)
class Target:
    """One rendered unit, where it goes, and the manager commands that go with it."""

    manager: str
    scope: str
    path: Path
    content: bytes
    reload: tuple[str, ...] = ()
    enable: tuple[str, ...] = ()
    disable: tuple[str, ...] = ()
    notes: list[str] = field(default_factory=list)


def voicemoded_command() -> tuple[str, ...]:
    """This interpreter's ``voicemoded`` script; ``python -m voicemoded`` when there is none beside it."""
    script = Path(sys.executable).parent / "voicemoded"
    if script.is_file() and os.access(script, os.X_OK):
        return (str(Path(os.path.abspath(script))),)
    return (os.path.abspath(sys.executable), "-m", "voicemoded")


def current_install(env: Mapping[str, str] | None = None, run_as: str = "") -> Install:
    env = os.environ if env is None else env
    entry = pwd.getpwnam(run_as) if run_as else pwd.getpwuid(os.getuid())
    try:
        import grp

        group = grp.getgrgid(entry.pw_gid).gr_name
    except KeyError:
        group = str(entry.pw_gid)
    command = voicemoded_command()
    bin_dir = str(Path(command[0]).parent)
    default_path = "/usr/local/bin:/usr/bin:/bin"
    ordered = [p for p in dict.fromkeys([bin_dir, *env.get("PATH", default_path).split(":")]) if p]
    path = ":".join(ordered)
    return Install(
        command=command,
        user=entry.pw_name,
        group=group,
        uid=entry.pw_uid,
        path=path,
        base_dir=env.get("VOICEMODE_BASE_DIR", "").strip(),
        socket=env.get("VOICEMODE_SOCKET", "").strip(),
    )


def sd_quote(word: str) -> str:
    """One word for a systemd command line or assignment: % and $ escaped, quoted when it must be."""
    word = word.replace("\\", "\\\\").replace("%", "%%").replace("$", "$$")
    if word and not any(c.isspace() or c in "\"';" for c in word):
        return word
    return '"' + word.replace('"', '\\"') + '"'


def render_systemd(install: Install, *, system: bool) -> str:
    """The unit text; a user unit serves ``%t/voicemode``, a system unit ``/run/voicemode`` for one user."""
    socket = install.socket or (SYSTEM_SOCKET if system else "%t/voicemode/voicemoded.sock")
    argv = [sd_quote(a) for a in install.command]
    argv += ["--socket", socket if not install.socket else sd_quote(socket)]
    base = install.base_dir or (SYSTEM_STATE if system else "")
    if base:
        argv += ["--base-dir", sd_quote(base)]
    argv += ["--log-format", "json"]
    environment = ["Environment=PYTHONUNBUFFERED=1", f"Environment={sd_quote('PATH=' + install.path)}"]
    identity = directories = ""
    if system:
        runtime = f"/run/user/{install.uid}"
        identity = f"User={install.user}\nGroup={install.group}\nSupplementaryGroups=audio\n"
        directories = "StateDirectory=voicemode\nStateDirectoryMode=0700\nCacheDirectory=voicemode\n"
        environment += [
            "Environment=XDG_CACHE_HOME=%C/voicemode",
            # The user's sound server (keep it running at boot with `loginctl enable-linger USER`).
            f"Environment=XDG_RUNTIME_DIR={runtime}",
            f"Environment=PULSE_SERVER=unix:{runtime}/pulse/native",
        ]
    return _UNIT.format(
        scope="system" if system else "user",
        flag=" --system" if system else "",
        after="network.target sound.target"
        if system
        else "pipewire.service pipewire-pulse.service pulseaudio.service",
        identity=identity,
        exec_start=" ".join(argv),
        directories=directories,
        environment="\n".join(environment),
        hardening=_HARDENING + ("\n" + _SYSTEM_HARDENING if system else ""),
        wanted_by="multi-user.target" if system else "default.target",
    )


def render_launchd(install: Install, home: Path) -> bytes:
    """A LaunchAgent: started at login, restarted when it fails, logs beside the daemon's own."""
    base = Path(install.base_dir) if install.base_dir else home / ".voicemode"
    argv = [*install.command, "--log-format", "json"]
    if install.socket:
        argv[len(install.command) : len(install.command)] = ["--socket", install.socket]
    if install.base_dir:
        argv[len(install.command) : len(install.command)] = ["--base-dir", install.base_dir]
    plist = {
        "Label": LAUNCHD_LABEL,
        "ProgramArguments": argv,
        "RunAtLoad": True,
        "KeepAlive": {"SuccessfulExit": False},
        "ThrottleInterval": 5,
        "ExitTimeOut": 30,
        "ProcessType": "Interactive",
        "EnvironmentVariables": {"PATH": install.path, "PYTHONUNBUFFERED": "1"},
        "StandardOutPath": str(base / "logs" / "voicemoded.launchd.log"),
        "StandardErrorPath": str(base / "logs" / "voicemoded.launchd.log"),
    }
    import plistlib  # only launchd needs it; the CLI's start-up stays lean

    return plistlib.dumps(plist, sort_keys=False)


def default_manager() -> str:
    return "launchd" if sys.platform == "darwin" else "systemd"


def target(
    install: Install,
    *,
    manager: str,
    system: bool,
    unit_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Target:
    env = os.environ if env is None else env
    home = Path(env.get("HOME") or Path.home())
    if manager == "launchd":
        if system:
            raise ClientError("INVALID_ARGUMENT", "--system is for systemd", "drop --system on macOS")
        folder = unit_dir or home / "Library" / "LaunchAgents"
        path = folder / f"{LAUNCHD_LABEL}.plist"
        domain = f"gui/{install.uid}"
        return Target(
            "launchd", "user", path, render_launchd(install, home),
            enable=("launchctl", "bootstrap", domain, str(path)),
            disable=("launchctl", "bootout", f"{domain}/{LAUNCHD_LABEL}"),
        )  # fmt: skip
    config = Path(env.get("XDG_CONFIG_HOME") or home / ".config")
    folder = unit_dir or (SYSTEM_UNIT_DIR if system else config / "systemd" / "user")
    scope = () if system else ("--user",)
    return Target(
        "systemd", "system" if system else "user", folder / SYSTEMD_UNIT,
        render_systemd(install, system=system).encode(),
        reload=("systemctl", *scope, "daemon-reload"),
        enable=("systemctl", *scope, "enable", "--now", SYSTEMD_UNIT),
        disable=("systemctl", *scope, "disable", "--now", SYSTEMD_UNIT),
    )  # fmt: skip


def run_manager(command: Sequence[str], env: Mapping[str, str] | None = None) -> str:
    """Run a manager command; returns '' on success, else why it failed (missing tool, no bus, ...)."""
    if not command:
        return ""
    if shutil.which(command[0], path=(env or os.environ).get("PATH")) is None:
        return f"{command[0]} is not installed or not on PATH"
    try:
        done = subprocess.run(
            list(command), stdin=subprocess.DEVNULL, capture_output=True, text=True,
            timeout=MANAGER_TIMEOUT, env=dict(env) if env is not None else None,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    if done.returncode != 0:
        return (done.stderr or done.stdout).strip() or f"exit code {done.returncode}"
    return ""


# --- the CLI ---------------------------------------------------------------------------------------


def register_manager(verbs: argparse._SubParsersAction) -> None:
    """Add install/uninstall/enable/disable to ``voicemodectl daemon``."""

    def common(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--system", action="store_true", help="a system unit (root; runs at boot)")
        parser.add_argument(
            "--manager", choices=["systemd", "launchd"], default=default_manager(),
            help=f"service manager (default here: {default_manager()})",
        )  # fmt: skip
        parser.add_argument(
            "--unit-dir", type=Path,
            help="write into DIR instead of the manager's folder (packaging, staging); no reload",
        )  # fmt: skip
        parser.add_argument("--run-as", default="", metavar="USER", help="with --system: the user to run as")

    install = verbs.add_parser("install", help="write the systemd/launchd unit for this install")
    common(install)
    install.add_argument("--print", action="store_true", help="print the unit instead of writing it")
    install.set_defaults(func=install_cmd, needs_daemon=False)
    uninstall = verbs.add_parser("uninstall", help="stop, disable and remove the unit")
    common(uninstall)
    uninstall.set_defaults(func=uninstall_cmd, needs_daemon=False)
    enable = verbs.add_parser("enable", help="start the installed unit now and at login (or boot)")
    common(enable)
    enable.add_argument("--timeout", type=float, default=20.0, help="seconds to wait for it to answer")
    enable.set_defaults(func=enable_cmd, needs_daemon=False)
    disable = verbs.add_parser("disable", help="stop the unit and no longer start it at login")
    common(disable)
    disable.set_defaults(func=disable_cmd, needs_daemon=False)


def _run_as(args: argparse.Namespace) -> str:
    if not args.system:
        return ""
    user = args.run_as or (os.environ.get("SUDO_USER", "") if os.getuid() == 0 else "")
    if not user and os.getuid() != 0:
        user = pwd.getpwuid(os.getuid()).pw_name
    if not user or user == "root":
        raise ClientError(
            "INVALID_ARGUMENT",
            "the system unit runs voicemoded as a user, not as root",
            "pass --run-as USER (the user whose sound server it should use)",
        )
    try:
        pwd.getpwnam(user)
    except KeyError:
        raise ClientError(
            "NOT_FOUND", f"no such user: {user}", "pass --run-as with an existing user"
        ) from None
    return user


def _target(args: argparse.Namespace) -> Target:
    return target(
        current_install(run_as=_run_as(args)),
        manager=args.manager,
        system=args.system,
        unit_dir=args.unit_dir,
    )


def _warn(message: str, hint: str = "") -> None:
    print(f"voicemodectl: warning: {message}", file=sys.stderr)
    if hint:
        print(f"  {hint}", file=sys.stderr)


def _sudo_hint(args: argparse.Namespace) -> str:
    again = [shlex.quote(sys.argv[0]) if sys.argv and sys.argv[0].startswith("/") else "voicemodectl"]
    return f"run it as root: sudo {again[0]} daemon {args.verb} --system --run-as {_run_as(args)}"


def install_cmd(args: argparse.Namespace, client: Client) -> int:
    tgt = _target(args)
    if args.print:
        sys.stdout.write(tgt.content.decode())
        return output.OK
    unchanged = tgt.path.is_file() and tgt.path.read_bytes() == tgt.content
    try:
        tgt.path.parent.mkdir(parents=True, exist_ok=True)
        if tgt.manager == "launchd":  # launchd opens the log file but never creates its folder
            import plistlib

            log = plistlib.loads(tgt.content)["StandardOutPath"]
            Path(log).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = tgt.path.with_name(f".{tgt.path.name}.tmp")
        tmp.write_bytes(tgt.content)
        tmp.chmod(0o644)
        tmp.replace(tgt.path)
    except PermissionError as exc:
        raise ClientError(
            "FAILED_PRECONDITION", f"cannot write {tgt.path}: {exc.strerror}", _sudo_hint(args)
        ) from None
    problem = "" if args.unit_dir else run_manager(tgt.reload)
    if args.unit_dir:
        tgt.notes.append(f"not reloading {tgt.manager}: it does not read {args.unit_dir}")
    elif problem:
        _warn(
            f"wrote {tgt.path}, but `{shlex.join(tgt.reload)}` failed: {problem}",
            f"run `{shlex.join(tgt.reload)}` once {tgt.manager} runs (a login session), then "
            "`voicemodectl daemon enable`",
        )
    if args.json:
        output.print_json({
            "path": str(tgt.path), "manager": tgt.manager, "scope": tgt.scope, "unchanged": unchanged,
            "reloaded": bool(tgt.reload) and not problem and not args.unit_dir,
            "reload_error": problem, "exec": list(current_install().command), "notes": tgt.notes,
        })  # fmt: skip
        return output.OK
    print(f"{'unchanged' if unchanged else 'installed'}: {tgt.path} ({tgt.manager} {tgt.scope} unit)")
    for note in tgt.notes:
        print(note)
    enable = "voicemodectl daemon enable" + (" --system" if args.system else "")
    print(f"start it now and at {'boot' if args.system else 'login'} with `{enable}`")
    return output.OK


def uninstall_cmd(args: argparse.Namespace, client: Client) -> int:
    tgt = _target(args)
    if not tgt.path.exists():
        if args.json:
            output.print_json({"path": str(tgt.path), "removed": False})
        else:
            print(f"not installed: {tgt.path}")
        return output.OK
    if not args.unit_dir:
        problem = run_manager(tgt.disable)
        if problem:
            _warn(f"`{shlex.join(tgt.disable)}` failed: {problem}")
    try:
        tgt.path.unlink()
    except PermissionError as exc:
        raise ClientError(
            "FAILED_PRECONDITION", f"cannot remove {tgt.path}: {exc.strerror}", _sudo_hint(args)
        ) from None
    problem = "" if args.unit_dir else run_manager(tgt.reload)
    if problem:
        _warn(f"`{shlex.join(tgt.reload)}` failed: {problem}", f"run `{shlex.join(tgt.reload)}` later")
    if args.json:
        output.print_json({"path": str(tgt.path), "removed": True})
    else:
        print(f"removed {tgt.path}")
    return output.OK


def enable_cmd(args: argparse.Namespace, client: Client) -> int:
    tgt = _target(args)
    if not tgt.path.exists():
        flag = " --system" if args.system else ""
        raise ClientError(
            "FAILED_PRECONDITION",
            f"no unit at {tgt.path}",
            f"install it first: voicemodectl daemon install{flag}",
        )
    problem = run_manager(tgt.enable)
    if problem:
        raise ClientError(
            "UNAVAILABLE",
            f"`{shlex.join(tgt.enable)}` failed: {problem}",
            f"run `{shlex.join(tgt.enable)}` in a login session, or start it by hand: voicemodectl daemon start",
        )
    pid = 0
    if tgt.scope == "user":
        try:
            pid = client.wait_until_ready(args.timeout).pid
        except ClientError as exc:
            _warn(
                f"enabled, but voicemoded does not answer on {client.socket}: {exc.message}",
                _status_hint(tgt),
            )
    if args.json:
        output.print_json({"path": str(tgt.path), "enabled": True, "pid": pid})
    else:
        running = f"; voicemoded runs (pid {pid})" if pid else ""
        print(f"enabled {tgt.path.name} ({tgt.manager} {tgt.scope}){running}")
    return output.OK


def disable_cmd(args: argparse.Namespace, client: Client) -> int:
    tgt = _target(args)
    problem = run_manager(tgt.disable)
    if problem:
        raise ClientError("UNAVAILABLE", f"`{shlex.join(tgt.disable)}` failed: {problem}", _status_hint(tgt))
    if args.json:
        output.print_json({"path": str(tgt.path), "enabled": False})
    else:
        print(f"disabled {tgt.path.name}: stopped, and no longer started at login")
    return output.OK


def _status_hint(tgt: Target) -> str:
    if tgt.manager == "launchd":
        return f"see `launchctl print gui/{os.getuid()}/{LAUNCHD_LABEL}`"
    scope = "--user " if tgt.scope == "user" else ""
    return f"see `systemctl {scope}status {SYSTEMD_UNIT}` and `journalctl {scope}-u {SYSTEMD_UNIT}`"
