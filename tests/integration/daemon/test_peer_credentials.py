"""Only the daemon's own user (and the uids it names) gets through, whatever the socket's file mode.

The kernel's record of the connecting process (SO_PEERCRED) decides. As root the tests use a real
second user (``nobody``) against a real daemon whose socket and folders were widened to 0777/0666;
the in-process tests give the gate an owner uid other than ours, so they prove a refusal without root.
"""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from voicemoded import socketgate
from voicemoded.api.client import CHANNEL_OPTIONS, translate
from voicemoded.api.v1 import daemon_pb2
from voicemoded.peercred import PeerCredentials, PeerPolicy, parse_uids, peer_credentials
from voicemoded.server import SocketServer, private_socket
from voicemoded.testing.daemon import DaemonHandle

REPO = Path(__file__).resolve().parents[3]
NOBODY = pwd.getpwnam("nobody")
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="a second real user needs root to switch to")

# What the other user runs: the real client, then a try at grpc's private socket directly. Everything is
# imported first and the process becomes the other user only then, so it needs no read access to this
# checkout or its venv (which may sit in root's 0700 home).
OTHER_USER = """
import json, os, socket, sys
from pathlib import Path
import grpc
from voicemoded.api.client import Client, translate
from voicemoded.api.v1 import daemon_pb2
public, private, uid, gid = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
client = Client(public, client_name="other-user")
daemon = client.daemon  # grpc imports its channel code lazily: built now, it connects at the first call
os.setgroups([])
os.setgid(gid)
os.setuid(uid)
out = {"uid": os.geteuid(), "pid": os.getpid()}
with client:
    try:
        daemon.GetStatus(daemon_pb2.GetStatusRequest(), timeout=10)
        out["status"] = "OK"
    except grpc.RpcError as exc:
        err = translate(exc, public)
        out.update(status=exc.code().name, message=err.message, hint=err.hint)
    try:
        daemon.GetConfig(daemon_pb2.GetConfigRequest(), timeout=10)
        out["config"] = "OK"
    except grpc.RpcError as exc:
        out["config"] = exc.code().name
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(private)
    out["private"] = "connected"
except OSError as exc:
    out["private"] = type(exc).__name__
print(json.dumps(out))
"""


def widen(daemon: DaemonHandle) -> None:
    """What a careless chmod does: every folder on the way and the socket itself open to all."""
    for folder in (daemon.root, daemon.socket.parent):
        os.chmod(folder, 0o777)
    os.chmod(daemon.socket, 0o666)


def run_as_nobody(daemon: DaemonHandle) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-c", OTHER_USER, str(daemon.socket), str(private_socket(daemon.socket)),
         str(NOBODY.pw_uid), str(NOBODY.pw_gid)],
        env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO), "HOME": str(daemon.root)},
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


@as_root
def test_another_user_is_refused_even_with_the_socket_wide_open(daemon: DaemonHandle) -> None:
    widen(daemon)
    seen = run_as_nobody(daemon)
    assert seen["uid"] == NOBODY.pw_uid
    assert seen["status"] == "PERMISSION_DENIED", seen
    assert seen["config"] == "PERMISSION_DENIED", seen
    assert f"uid {NOBODY.pw_uid}" in seen["message"] and f"serves uid {os.geteuid()}" in seen["message"]
    assert "VOICEMODE_ALLOWED_UIDS" in seen["hint"]
    assert seen["private"] == "PermissionError"  # grpc's own socket is out of reach too
    refused = daemon.log_events("socket.peer_refused")
    assert refused and refused[0]["uid"] == NOBODY.pw_uid and refused[0]["pid"] == seen["pid"]
    with daemon.client() as client:  # and we are served as before
        assert client.daemon.GetStatus(daemon_pb2.GetStatusRequest(), timeout=10).pid > 0


@as_root
def test_allowed_uids_let_a_named_user_in(daemon_env: DaemonHandle) -> None:
    daemon_env.start({"VOICEMODE_ALLOWED_UIDS": "nobody"})
    widen(daemon_env)
    seen = run_as_nobody(daemon_env)
    assert seen["status"] == "OK" and seen["config"] == "OK", seen
    assert not daemon_env.log_events("socket.peer_refused")


def test_a_bad_allowed_uids_list_is_a_config_error_and_lets_nobody_else_in(daemon_env: DaemonHandle) -> None:
    """A typo in the list fails closed: the daemon serves its own user only and says which entry is wrong."""
    daemon_env.start({"VOICEMODE_ALLOWED_UIDS": "1000,no-such-user-here"})
    with daemon_env.client() as client:
        status = client.daemon.GetStatus(daemon_pb2.GetStatusRequest(), timeout=10)
    (error,) = [e for e in status.config_errors if e.key == "VOICEMODE_ALLOWED_UIDS"]
    assert "no-such-user-here" in error.reason, error


def test_parse_uids_takes_numbers_and_names() -> None:
    assert parse_uids("") == ()
    assert parse_uids(f" 1001, nobody ,1001,{NOBODY.pw_uid}") == (1001, NOBODY.pw_uid)
    with pytest.raises(ValueError, match="out of range"):
        parse_uids(str(2**32))


# --- in-process: a real SocketServer and grpc client, with an owner uid that is not ours ------------


async def serve(tmp: Path, extra: Callable[[], Collection[int]], owner: int) -> SocketServer:
    servicer = health.aio.HealthServicer()

    def register(server: grpc.aio.Server) -> None:
        health_pb2_grpc.add_HealthServicer_to_server(servicer, server)

    server = SocketServer(tmp / "run" / "s.sock", register, policy=PeerPolicy(owner, extra))
    await server.__aenter__()
    return server


CLIENT_OPTIONS = (*CHANNEL_OPTIONS, ("grpc.use_local_subchannel_pool", 1))
"""As voicemoded's own client. The private subchannel pool makes each channel its own connection, as
each voicemodectl process has (grpc would otherwise share one)."""
NO_RETRIES = (*CLIENT_OPTIONS, ("grpc.enable_retries", 0))
"""A client without even grpc's transparent retries: what the gate itself must get right."""


async def check(sock: Path) -> grpc.aio.AioRpcError | None:
    async with grpc.aio.insecure_channel(f"unix:{sock}", options=CLIENT_OPTIONS) as channel:
        try:
            await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
        except grpc.aio.AioRpcError as exc:
            return exc
    return None


@pytest.fixture
def short_tmp() -> Any:
    import shutil
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="vm-peer-"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


def test_allowed_uids_excluding_ours_refuse_us_and_a_change_applies_next_connection(short_tmp: Path) -> None:
    me = os.geteuid()
    extra: list[int] = []

    async def scenario() -> None:
        server = await serve(short_tmp, lambda: extra, owner=me + 1)
        try:
            refused = await check(server.socket)
            assert refused is not None and refused.code() == grpc.StatusCode.PERMISSION_DENIED
            error = translate(refused, server.socket)
            assert f"comes from uid {me}" in error.message and "VOICEMODE_ALLOWED_UIDS" in error.hint
            assert error.fields["uid"] == str(me) and error.fields["pid"] == str(os.getpid())
            extra.append(me)
            assert await check(server.socket) is None
        finally:
            await server.__aexit__(None, None, None)

    asyncio.run(scenario())


def test_refused_peers_are_bounded_and_leave_nothing_behind(
    short_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(socketgate, "REFUSAL_DEADLINE", 0.3)
    me = os.geteuid()

    async def raw(path: Path, payload: bytes) -> bytes:
        reader, writer = await asyncio.open_unix_connection(str(path))
        writer.write(payload)
        try:
            return await asyncio.wait_for(reader.read(), timeout=5)  # read() ends when the gate closes
        except ConnectionResetError:
            return b""
        finally:
            writer.close()

    async def scenario() -> None:
        server = await serve(short_tmp, tuple, owner=me + 1)
        try:
            silent = await raw(server.socket, b"")  # says nothing: closed at the deadline
            assert silent.startswith(b"\x00\x00\x00\x04")  # our SETTINGS, nothing more
            assert (
                await raw(server.socket, b"GET / HTTP/1.1\r\n\r\n" * 4)
                == b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
            )
            flood = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00" * (socketgate.REFUSAL_MAX_BYTES + 1)
            await raw(server.socket, flood)
            await asyncio.gather(*(check(server.socket) for _ in range(50)))
            deadline = time.monotonic() + 5  # each closes once its client hangs up or its time is up
            while server.gate is not None and server.gate.connections and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            assert server.gate is not None and not server.gate.connections
        finally:
            await server.__aexit__(None, None, None)

    asyncio.run(scenario())


def refusals(tmp: Path, count: int, options: Sequence[tuple[str, Any]]) -> dict[str, int]:
    """``count`` calls in a row on one channel to a gate that refuses us, by status."""

    def calls(sock: Path) -> dict[str, int]:
        codes: dict[str, int] = {}
        with grpc.insecure_channel(f"unix:{sock}", options=options) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            for _ in range(count):
                try:
                    stub.Check(health_pb2.HealthCheckRequest(), timeout=10)
                    name = "OK"
                except grpc.RpcError as exc:
                    name = exc.code().name
                codes[name] = codes.get(name, 0) + 1
        return codes

    async def scenario() -> dict[str, int]:
        server = await serve(tmp, tuple, owner=os.geteuid() + 1)
        try:
            return await asyncio.to_thread(calls, server.socket)
        finally:
            await server.__aexit__(None, None, None)

    return asyncio.run(scenario())


def test_a_refused_connection_answers_every_call_in_it(
    short_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Calls in a row on one refused connection are each told why, even by a client without retries:
    a gate that closed after its first answer had the next call meet the closing connection, and that
    call failed as UNAVAILABLE, which reads as "the daemon is not running"."""
    monkeypatch.setattr(socketgate, "REFUSAL_DEADLINE", 60.0)  # one connection, however slow the machine
    assert refusals(short_tmp, 400, NO_RETRIES) == {"PERMISSION_DENIED": 400}


def test_voicemodes_client_is_told_why_on_every_call_as_refused_connections_end(
    short_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One channel calling without pause while its refused connections reach their end (GOAWAY, the
    grace, the close), again and again: every call is refused in words. A call grpc had queued on a
    connection as it was told to go away never reached the gate, and is made again on the next one."""
    monkeypatch.setattr(socketgate, "REFUSAL_DEADLINE", 0.05)
    monkeypatch.setattr(socketgate, "REFUSAL_GRACE", 0.05)
    assert refusals(short_tmp, 800, CLIENT_OPTIONS) == {"PERMISSION_DENIED": 800}


def test_grpc_listens_only_in_a_private_folder_and_a_planted_one_is_replaced(short_tmp: Path) -> None:
    public = short_tmp / "run" / "s.sock"
    public.parent.mkdir(mode=0o700)
    decoy = short_tmp / "decoy"
    decoy.mkdir(mode=0o777)
    private_socket(public).parent.symlink_to(decoy)  # planted where grpc's folder goes

    async def scenario() -> None:
        server = await serve(short_tmp, tuple, owner=os.geteuid())
        try:
            folder = server.private.parent
            assert not folder.is_symlink() and folder.stat().st_mode & 0o777 == 0o700
            assert public.stat().st_mode & 0o777 == 0o600
            assert list(decoy.iterdir()) == []
            assert await check(public) is None
        finally:
            await server.__aexit__(None, None, None)
        assert not server.private.parent.exists() and not public.exists()

    asyncio.run(scenario())


def test_peer_credentials_name_this_process() -> None:
    left, right = socket.socketpair(socket.AF_UNIX)
    with left, right:
        assert peer_credentials(left) == PeerCredentials(os.getpid(), os.geteuid(), os.getegid())
