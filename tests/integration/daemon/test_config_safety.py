"""Configuration through the real daemon when the input is hostile or the files are odd: injected lines,
folders the daemon must not create, keys in rejected lines, pipes and links as files, risky values, file
modes, a full disk, and secrets that must never reach the log."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import grpc
import pytest

from tests.integration.daemon.test_config import get, watch_events
from voicemoded.api.v1 import common_pb2, daemon_pb2
from voicemoded.testing.daemon import DaemonHandle

KEY = "sk-proj-Zq81Xw0mRt5Lk2Vb7Nc4Hd9Jf6Gs3Pa"
INJECTION = "x\nVOICEMODE_STT_BASE_URLS=http://127.0.0.1:9/v1"


def call(daemon: DaemonHandle, method: str, request: object) -> grpc.RpcError | object:
    with daemon.client() as client:
        try:
            return getattr(client.daemon, method)(request, timeout=10)
        except grpc.RpcError as exc:
            return exc


def test_a_line_break_in_a_value_is_refused_at_the_daemon(daemon: DaemonHandle) -> None:
    project = daemon.root / "proj"
    project.mkdir()
    for scope in ([], ["--scope", "project"]):
        result = daemon.ctl("config", "set", *scope, "VOICEMODE_VOICES", INJECTION, cwd=project)
        assert result.returncode == 5, result.stdout + result.stderr
        assert "value contains the control character U+000A at position 1" in result.stderr
    for request in (
        daemon_pb2.SetConfigRequest(key="VOICEMODE_VOICES", value="a\u2028VOICEMODE_TTS_SPEED=4"),
        daemon_pb2.SetConfigRequest(key="VOICEMODE_VOICES\r", value="a"),
        daemon_pb2.UnsetConfigRequest(key="VOICEMODE_VOICES\n"),
    ):
        method = "SetConfig" if isinstance(request, daemon_pb2.SetConfigRequest) else "UnsetConfig"
        error = call(daemon, method, request)
        assert isinstance(error, grpc.RpcError) and error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "contains the control character" in (error.details() or "")
    assert not daemon.user_file.exists() or "STT_BASE_URLS" not in daemon.user_file.read_text()
    assert not (project / ".voicemode.env").exists()
    assert get(daemon, "VOICEMODE_STT_BASE_URLS")["value"] == ""


def test_project_scope_never_creates_a_folder(daemon: DaemonHandle) -> None:
    missing = daemon.root / "no" / "such" / "project"
    for cwd, why in ((str(missing), "does not exist"), ("rel/dir", "must be an absolute path")):
        request = daemon_pb2.SetConfigRequest(
            key="VOICEMODE_TTS_SPEED", value="1.5", scope="project", caller=common_pb2.CallerContext(cwd=cwd)
        )
        error = call(daemon, "SetConfig", request)
        assert isinstance(error, grpc.RpcError) and error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert f"caller.cwd {why}" in (error.details() or "") or why in (error.details() or "")
    assert not (daemon.root / "no").exists()
    assert not list(Path.cwd().glob("rel")), "nothing under the daemon's own folder either"


def test_a_typo_line_never_shows_the_key_anywhere(daemon_env: DaemonHandle) -> None:
    daemon_env.base.mkdir(parents=True)
    daemon_env.user_file.write_text(f"VOICEMODE_TTS_SPEED=1.25\nOPENAI_API_KEY: {KEY}\n")
    daemon_env.start()
    outputs = [
        daemon_env.ctl("status"),
        daemon_env.ctl("--json", "status"),
        daemon_env.ctl("config", "show"),
        daemon_env.ctl("config", "reload"),
        daemon_env.ctl("--json", "events", "--replay", "50", "--subsystem", "config", "--count", "1"),
        daemon_env.ctl("--json", "doctor", "--no-probe"),
    ]
    status = json.loads(outputs[1].stdout)
    [error] = status["config_errors"]
    assert error["line"] == 2 and error["reason"] == "not KEY=value: 'OPENAI_API_KEY: ****'"
    for result in outputs:
        text = result.stdout + result.stderr
        assert KEY not in text and KEY[8:24] not in text, text
    assert KEY not in daemon_env.log_text()


@pytest.mark.parametrize("kind", ["bad utf-8", "folder", "fifo", "link"])
def test_an_odd_user_file_is_a_config_error_and_the_daemon_serves(
    daemon_env: DaemonHandle, kind: str
) -> None:
    daemon_env.base.mkdir(parents=True)
    user = daemon_env.user_file
    elsewhere = daemon_env.root / "private-notes"
    elsewhere.write_text("my bank pin is 4321\n")
    if kind == "bad utf-8":
        user.write_bytes(b"VOICEMODE_TTS_SPEED=1.5\nVOICEMODE_VOICES=caf\xe9\n")
    elif kind == "folder":
        user.mkdir()
    elif kind == "fifo":
        os.mkfifo(user)
    else:
        user.symlink_to(elsewhere)
    daemon_env.start(timeout=20)
    expected = {
        "bad utf-8": "line 2 is not valid UTF-8",
        "folder": "it is a folder",
        "fifo": "it is a named pipe",
        "link": "not quoted: the file is a symbolic link",
    }[kind]
    [error] = json.loads(daemon_env.ctl("--json", "status").stdout)["config_errors"]
    assert expected in error["reason"] and error["file"] == str(user)
    reload = daemon_env.ctl("config", "reload")
    assert reload.returncode == 5 and expected in reload.stdout and "internal error" not in reload.stdout
    assert "bank pin" not in reload.stdout + daemon_env.ctl("status").stdout
    assert get(daemon_env, "VOICEMODE_TTS_SPEED")["layer"] == "default"


def test_a_project_file_edited_while_the_daemon_runs_is_read_again(daemon: DaemonHandle) -> None:
    project = daemon.root / "proj"
    (project / "src").mkdir(parents=True)
    path = project / ".voicemode.env"
    path.write_text("VOICEMODE_TTS_SPEED=1.5\n")
    assert get(daemon, "VOICEMODE_TTS_SPEED", cwd=project / "src")["value"] == "1.5"
    path.write_text("VOICEMODE_TTS_SPEED=2.5\n")  # same size, likely the same clock tick
    assert get(daemon, "VOICEMODE_TTS_SPEED", cwd=project / "src")["value"] == "2.5"
    path.write_text("# slower\nVOICEMODE_TTS_SPEED=0.75\n")
    value = get(daemon, "VOICEMODE_TTS_SPEED", cwd=project / "src")
    assert (value["value"], value["line"]) == ("0.75", 2)


def test_risky_values_warn_in_status_and_bad_service_names_are_refused(daemon_env: DaemonHandle) -> None:
    daemon_env.base.mkdir(parents=True)
    daemon_env.user_file.write_text("VOICEMODE_SERVICE_HOST=0.0.0.0\nVOICEMODE_SILENCE_THRESHOLD=900\n")
    daemon_env.start()
    status = json.loads(daemon_env.ctl("--json", "status").stdout)
    [config] = [s for s in status["subsystems"] if s["name"] == "config"]
    assert "VOICEMODE_SERVICE_HOST=0.0.0.0 lets other machines reach" in config["detail"]
    assert "did you mean VOICEMODE_SILENCE_THRESHOLD_MS?" in config["detail"]
    bad = daemon_env.ctl("config", "set", "VOICEMODE_AUTOSTART_SERVICES", "../../x")
    assert bad.returncode == 5 and "unknown service '../../x'" in bad.stderr
    report = json.loads(daemon_env.ctl("--json", "doctor", "--no-probe").stdout)
    warned = [c["detail"] for c in report["checks"] if c["name"] == "config" and c["status"] == "warn"]
    assert any("VOICEMODE_SERVICE_HOST" in w for w in warned), report


def test_config_writes_are_private_and_doctor_warns_about_readable_ones(daemon_env: DaemonHandle) -> None:
    daemon_env.base.mkdir(parents=True, mode=0o755)
    daemon_env.base.chmod(0o755)
    daemon_env.user_file.write_text(f"OPENAI_API_KEY={KEY}\n")
    daemon_env.user_file.chmod(0o644)
    daemon_env.start()
    # The daemon may tighten its own folder at start; put the readable modes back for doctor to find.
    daemon_env.base.chmod(0o755)
    daemon_env.user_file.chmod(0o644)
    report = json.loads(daemon_env.ctl("--json", "doctor", "--no-probe").stdout)
    files = {c["detail"]: c for c in report["checks"] if c["name"] == "config files"}
    assert all(c["status"] == "warn" for c in files.values()), files
    details = " | ".join(files)
    assert f"folder {daemon_env.base} is 0755" in details
    assert f"{daemon_env.user_file} is 0644 and holds a secret" in details
    assert {c["fix"] for c in files.values()} == {
        f"chmod 700 {daemon_env.base}",
        f"chmod 600 {daemon_env.user_file}",
    }
    assert daemon_env.ctl("config", "set", "OPENAI_API_KEY", KEY + "2").returncode == 0
    assert daemon_env.user_file.stat().st_mode & 0o777 == 0o600
    project = daemon_env.root / "proj"
    project.mkdir()
    assert (
        daemon_env.ctl(
            "config", "set", "--scope", "project", "VOICEMODE_TTS_SPEED", "1.5", cwd=project
        ).returncode
        == 0
    )
    assert (project / ".voicemode.env").stat().st_mode & 0o777 == 0o600


@contextmanager
def tiny_filesystem(where: Path) -> Iterator[Path]:
    where.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small file system needs root")
def test_a_full_disk_in_set_config_names_the_file(daemon_env: DaemonHandle) -> None:
    base = daemon_env.root / "small"
    with tiny_filesystem(base):
        daemon_env.base = base
        daemon_env.env["VOICEMODE_BASE_DIR"] = str(base)
        daemon_env.start()
        filler = base / "filler"
        with open(filler, "wb", buffering=0) as handle, pytest.raises(OSError, match="No space"):
            while True:
                handle.write(b"\0" * 4096)
        result = daemon_env.ctl("config", "set", "VOICEMODE_VOICES", "af_sky," * 2000 + "nova")
        assert result.returncode == 11, result.stderr
        assert f"cannot write {base / 'voicemode.env'}: No space left on device" in result.stderr
        assert "free some disk space" in result.stderr and "this is a bug" not in result.stderr
        assert not [p for p in base.iterdir() if p.name.endswith(".tmp")], "no temporary file left"
        filler.unlink()
        assert daemon_env.ctl("config", "set", "VOICEMODE_VOICES", "nova").returncode == 0
        daemon_env.stop()


class _EchoingEndpoint(BaseHTTPRequestHandler):
    """A TTS server that refuses every request and quotes a credential in its error, as real APIs do."""

    secret = ""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.dumps({"error": {"message": f"upstream refused credential {self.secret}"}}).encode()
        self.send_response(500)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_the_daemon_hands_its_secrets_to_the_log_scrubber(daemon_env: DaemonHandle) -> None:
    # Not shaped like a key, so only the value the daemon registered can hide it.
    secret = "plain-livekit-secret-for-tests-7731"
    _EchoingEndpoint.secret = secret
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EchoingEndpoint)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        daemon_env.base.mkdir(parents=True)
        url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        daemon_env.user_file.write_text(f"LIVEKIT_API_SECRET={secret}\nVOICEMODE_TTS_BASE_URLS={url}\n")
        daemon_env.start()
        with watch_events(daemon_env, {"provider.failover"}) as failed:
            said = daemon_env.ctl("say", "--out", str(daemon_env.root / "x.wav"), "hello")
            assert failed.wait(30), said.stdout + said.stderr
        assert said.returncode != 0
        daemon_env.stop()
    finally:
        server.shutdown()
        server.server_close()
    log = daemon_env.log_text()
    assert '"provider.failover"' in log and "upstream refused credential [redacted]" in log
    assert secret not in log
