"""Both doors, one daemon: the same request gets the same answer and the same error over gRPC and MCP.

The gRPC servicers and the MCP session only translate the application layer; this holds them to it,
request by request: the API client voicemodectl uses on one side, a real MCP session through the
daemon's tunnel on the other. The daemon is the real one (its own composition root, run as a process)
with one service more than the built-in ones, whose program dies before it is ready, so a start that
fails is quick to reach.

Run as a script, this file is that daemon: ``python test_doors_agree.py --socket PATH``.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, cast

import anyio
import pytest

from voicemoded.api.client import Client, ClientError, Kind
from voicemoded.api.v1 import daemon_pb2, services_pb2
from voicemoded.config import Settings
from voicemoded.supervisor.spec import HttpProbe, RestartPolicy, ServiceSpec
from voicemoded.testing.children import child_command, free_port
from voicemoded.testing.daemon import DaemonHandle, daemon_handle

BROKEN = "broken"
"""The extra service: ``crash_at_start`` exits 3 before it listens, and is never restarted."""


def broken_service(port: int) -> Callable[[Settings], list[ServiceSpec]]:
    spec = ServiceSpec(
        name=BROKEN,
        command=child_command("crash_at_start", "--port", port),
        port=port,
        probe=HttpProbe("/health"),
        probe_interval=0.02,
        start_timeout=10.0,
        restart=RestartPolicy.NEVER,
    )
    return lambda settings: [spec]


def host(argv: list[str]) -> int:
    """The real daemon's entry point, with the broken service beside the built-in ones."""
    from voicemoded.__main__ import main

    return main(argv, more_services=[broken_service(free_port())])


# -- the two doors, each answering with (answer, None) or (None, error) in one shape ---------------------


@dataclass(frozen=True)
class Failure:
    code: str
    message: str
    hint: str


Answer = tuple[Any, Failure | None]
MCP_ERROR = re.compile(r"Error \((?P<code>\w+)\): (?P<message>.*?)(?:\nNext step: (?P<hint>.*))?", re.DOTALL)


async def over_grpc(client: Client, call: Callable[[Client], Any], shape: Callable[[Any], Any]) -> Answer:
    try:
        response = await anyio.to_thread.run_sync(call, client)
    except ClientError as exc:
        return None, Failure(exc.code, exc.message, exc.hint)
    return shape(response), None


async def over_mcp(session: Any, tool: str, arguments: dict[str, Any], shape: Callable[[Any], Any]) -> Answer:
    result = await session.call_tool(tool, arguments)
    text = result.content[0].text
    if result.is_error:
        match = MCP_ERROR.fullmatch(text)
        assert match is not None, text
        return None, Failure(match["code"], match["message"], match["hint"] or "")
    return shape(json.loads(text)), None


# -- normalised forms: the fields both doors carry, spelled one way -------------------------------------


def grpc_service(info: services_pb2.ServiceInfo) -> dict[str, Any]:
    return {
        "name": info.name,
        "state": services_pb2.ServiceState.Name(info.state),
        "backend": info.backend,
        "autostart": info.autostart,
        "port": info.port or None,
        "restarts": info.restarts,
        "reason": info.reason,
        "install_hint": "" if info.installed else info.install_hint,
    }


def mcp_service(summary: dict[str, Any]) -> dict[str, Any]:
    keys = ("name", "state", "backend", "autostart", "port", "restarts", "reason")
    return {**{k: summary.get(k) for k in keys}, "install_hint": summary.get("install_hint", "")}


def grpc_config(snapshot: daemon_pb2.ConfigSnapshot) -> dict[str, tuple[str, str]]:
    return {v.key: (v.value, f"{v.file}:{v.line}" if v.file else v.layer) for v in snapshot.values}


def mcp_config(answer: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {key: (value, answer["from"][key]) for key, value in answer["values"].items()}


def grpc_statistics(stats: Any) -> dict[str, Any]:
    timings = {s.name: s.count for s in stats.summaries}
    return {"turns": stats.turns, "errors": stats.errors, "timings": timings, "recent": len(stats.recent)}


def mcp_statistics(answer: dict[str, Any]) -> dict[str, Any]:
    timings = {name: t["n"] for name, t in answer["timings"].items()}
    return {
        "turns": answer["turns"],
        "errors": answer["errors"],
        "timings": timings,
        "recent": len(answer["recent"]),
    }


# -- the table ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    name: str
    grpc: Callable[[Client], Any]
    grpc_shape: Callable[[Any], Any]
    tool: str
    arguments: dict[str, Any]
    mcp_shape: Callable[[Any], Any]
    fails: str = ""
    """The error code both doors must give ("" when both must succeed)."""


def _listed(response: services_pb2.ListServicesResponse) -> list[dict[str, Any]]:
    return [grpc_service(s) for s in response.services]


CASES = [
    Case("service status of all", lambda c: c.list_services(), _listed,
         "service", {"action": "status"}, lambda a: [mcp_service(s) for s in a["services"]]),
    Case("service status of one", lambda c: c.get_service("piper"), grpc_service,
         "service", {"action": "status", "name": "piper"}, mcp_service),
    Case("unknown service", lambda c: c.get_service("nope"), grpc_service,
         "service", {"action": "status", "name": "nope"}, mcp_service, fails="NOT_FOUND"),
    Case("start-and-wait of a service that fails", lambda c: c.start_service(BROKEN, timeout=60), grpc_service,
         "service", {"action": "start", "name": BROKEN}, mcp_service, fails="UNAVAILABLE"),
    Case("restart-and-wait of a service that fails", lambda c: c.restart_service(BROKEN, timeout=60),
         grpc_service, "service", {"action": "restart", "name": BROKEN}, mcp_service, fails="UNAVAILABLE"),
    Case("providers with a bad kind", lambda c: c.list_providers(cast(Kind, "loud")), str,
         "providers", {"action": "list", "kind": "loud"}, str, fails="INVALID_ARGUMENT"),
    Case("config get of one key", lambda c: c.get_config(["VOICEMODE_VOICES"]), grpc_config,
         "config", {"key": "VOICEMODE_VOICES"}, mcp_config),
    Case("config set of an unknown key", lambda c: c.set_config("VOICEMODE_NO_SUCH_KEY", "1"), str,
         "config", {"action": "set", "key": "VOICEMODE_NO_SUCH_KEY", "value": "1"}, str, fails="NOT_FOUND"),
    Case("statistics", lambda c: c.statistics(recent=5), grpc_statistics,
         "statistics", {"recent": 5}, mcp_statistics),
]  # fmt: skip


def start(handle: DaemonHandle) -> None:
    """This file as the daemon, with a user file naming two voices (a value that comes from a file)."""
    handle.user_file.parent.mkdir(parents=True, exist_ok=True)
    handle.user_file.write_text("VOICEMODE_VOICES=af_sky,nova\n")
    handle.log_path = handle.root / "daemon.log"
    with open(handle.log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, __file__, "--socket", str(handle.socket), "--log-format", "json"],
            # This module imports grpc before main() can turn its fork handlers off, so the variable is
            # set here, where grpc reads it: with them on, a spawned child may crash before it execs.
            env={**handle.env, "GRPC_ENABLE_FORK_SUPPORT": "false"},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    handle.process = process
    with handle.client() as client:
        client.wait_until_ready(30.0, alive=lambda: process.poll() is None)


@pytest.fixture(scope="module")
def doors_daemon() -> Iterator[DaemonHandle]:
    for handle in daemon_handle():
        start(handle)
        yield handle


async def test_both_doors_give_the_same_answer_and_the_same_error(doors_daemon: DaemonHandle) -> None:
    from tests.integration.mcp.conftest import mcp_session

    seen: dict[str, tuple[Answer, Answer]] = {}
    with doors_daemon.client() as client:
        async with mcp_session(doors_daemon) as session:
            await session.initialize()
            for case in CASES:
                grpc = await over_grpc(client, case.grpc, case.grpc_shape)
                mcp = await over_mcp(session, case.tool, case.arguments, case.mcp_shape)
                seen[case.name] = (grpc, mcp)
    for case in CASES:
        grpc, mcp = seen[case.name]
        assert grpc == mcp, f"{case.name}: gRPC {grpc} but MCP {mcp}"
        answer, error = grpc
        if case.fails:
            assert error is not None and error.code == case.fails, f"{case.name}: {grpc}"
        else:
            assert error is None and answer, f"{case.name}: {grpc}"
    # What the failing start says is the attempt's own outcome, and where to look next.
    failure = seen["start-and-wait of a service that fails"][0][1]
    assert failure is not None
    assert failure.message == f"{BROKEN} did not start: exit code 3 before becoming ready", failure
    assert f"service logs {BROKEN}" in failure.hint
    assert seen["config get of one key"][0][0]["VOICEMODE_VOICES"][0] == "af_sky,nova"


if __name__ == "__main__":
    sys.exit(host(sys.argv[1:]))
