"""LiveKit's own multi-node mode: two livekit-server nodes sharing one Redis on loopback, no relay of ours.

LiveKit hosts each room on one node (picked among the live nodes in Redis); a participant connecting
through another node has its signalling carried over Redis to the host, and its media go straight to the
host's UDP ports. So: both nodes list the same rooms and the same people, a person joining through node B
hears the assistant that joined through node A, and losing the node that does not host the room leaves
the people on the host in the room (whoever signalled through the lost node joins again through the other).

Node A is the daemon's own supervised livekit-server, told of the Redis by ``VOICEMODE_LIVEKIT_REDIS``;
node B runs outside the daemon with the daemon's key. The daemon creates the room and mints both tokens
(``voicemodectl room``). The assistant's voice is a Python participant holding the daemon's token
(:func:`assistant_joins`): the one place to change when the daemon joins rooms itself. A daemon pointed at
a remote multi-node deployment by ``LIVEKIT_URL`` needs nothing more: any node's URL serves every room.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from livekit import api

from voicemoded.livekit.config import CONFIG_FILE_NAME
from voicemoded.livekit.credentials import KEYS_FILE_NAME, read_keys
from voicemoded.livekit.session import ASSISTANT
from voicemoded.testing.daemon import DaemonHandle, daemon_handle
from voicemoded.testing.endpoint import SpeechEndpoint
from voicemoded.testing.livekit import (
    LiveKitServer,
    Person,
    absent_reason,
    free_udp_range,
    running_livekit,
    server_binary,
)
from voicemoded.testing.ports import free_port
from voicemoded.testing.redis import ABSENT_REASON, RedisServer, running_redis
from voicemoded.testing.redis import server_binary as redis_binary

ROOT = Path(__file__).resolve().parents[3]
BINARY = server_binary()
needs_servers = pytest.mark.usefixtures("servers_present")

TONE_S = 3.0
"""The daemon's speech: long enough to list the room through both nodes while the assistant speaks."""
WAIT = 10.0


@dataclass(frozen=True, slots=True)
class Node:
    """One livekit-server of the deployment, as a client reaches it."""

    url: str
    api_key: str
    api_secret: str = field(repr=False)
    log: Path
    """Its output, whose start-up line names the id it registers in Redis under."""

    @classmethod
    def of(cls, server: LiveKitServer) -> Node:
        return cls(server.url, server.api_key, server.api_secret, server.log)

    @property
    def http_url(self) -> str:
        return self.url.replace("ws://", "http://", 1)

    def node_id(self) -> str:
        found = re.findall(r'"nodeID": "(ND_\w+)"', self.log.read_text(errors="replace"))
        assert found, f"no start-up line in {self.log}"
        return str(found[-1])


def registered(redis: RedisServer) -> list[str]:
    """The node ids in the shared Redis."""
    ids = redis.command("HKEYS", "nodes")
    assert isinstance(ids, list)
    return sorted(i.decode() for i in ids if isinstance(i, bytes))


def host_of(redis: RedisServer, room: str, nodes: tuple[Node, Node]) -> Node:
    """The node LiveKit placed ``room`` on."""
    host = redis.command("HGET", "room_node_map", room)
    assert isinstance(host, bytes), f"no node hosts {room!r}"
    (found,) = [node for node in nodes if node.node_id() == host.decode()]
    return found


@dataclass(frozen=True, slots=True)
class Cluster:
    """A daemon whose supervised livekit-server is node A, and node B outside it, on one Redis."""

    redis: RedisServer
    daemon: DaemonHandle
    a: Node
    b: Node


@pytest.fixture(scope="module")
def servers_present() -> None:
    """Skip, naming what is missing, where livekit-server or redis-server is truly absent."""
    if BINARY is None:
        pytest.skip(absent_reason())
    if redis_binary() is None:
        pytest.skip(ABSENT_REASON)


@pytest.fixture(scope="module")
def cluster(servers_present: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    first, last = free_udp_range()
    endpoint = SpeechEndpoint(tone_seconds=TONE_S)
    with running_redis(tmp_path_factory.mktemp("redis")) as redis, contextlib.closing(endpoint):
        for daemon in daemon_handle():
            daemon.start(
                {
                    **endpoint.env(),
                    "VOICEMODE_LIVEKIT_SERVER_PATH": str(BINARY),
                    "VOICEMODE_LIVEKIT_PORT": str(free_port()),
                    "VOICEMODE_LIVEKIT_RTC_PORTS": f"{first}-{last}",
                    "VOICEMODE_LIVEKIT_REDIS": redis.address,
                }
            )
            started = ctl_json(daemon, "service", "start", "livekit")
            assert started["state"] == "RUNNING", started
            folder = daemon.base / "livekit"
            key, secret = read_keys(folder / KEYS_FILE_NAME)
            a = Node(started["url"], key, secret, daemon.base / "logs" / "livekit.log")
            # Started in the daemon's livekit folder, node B holds the daemon's key.
            with running_livekit(folder, redis=redis.address) as b:
                yield Cluster(redis, daemon, a, Node.of(b))


def ctl_json(handle: DaemonHandle, *args: str) -> Any:
    done = handle.ctl(*args, "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


async def through(node: Node, call: Callable[[api.LiveKitAPI], Awaitable[Any]]) -> Any:
    """One server-API call made through ``node``."""
    client = api.LiveKitAPI(node.http_url, node.api_key, node.api_secret)
    try:
        return await call(client)
    finally:
        await client.aclose()


async def room_names(server: Node) -> list[str]:
    listed = await through(server, lambda c: c.room.list_rooms(api.ListRoomsRequest()))
    return sorted(room.name for room in listed.rooms)


async def identities(server: Node, room: str) -> list[str]:
    listed = await through(server, lambda c: c.room.list_participants(api.ListParticipantsRequest(room=room)))
    return sorted(p.identity for p in listed.participants)


def lists(server: Node, room: str, want: list[str]) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return await identities(server, room) == want

    return check


async def until(check: Callable[[], bool | Awaitable[bool]], what: str, timeout: float = WAIT) -> None:
    """Until ``check`` holds (the servers' views and the media lag a join by a moment)."""
    deadline = time.monotonic() + timeout
    while not await _value(check()):
        assert time.monotonic() < deadline, f"not within {timeout:g} s: {what}"
        await asyncio.sleep(0.1)


# -- participants -----------------------------------------------------------------------------------


def token_for(daemon: DaemonHandle, room: str, identity: str) -> tuple[str, str]:
    """A join token the daemon mints (``voicemodectl room token``), and the URL it names (node A)."""
    minted = ctl_json(daemon, "room", "token", room, "--identity", identity)
    return str(minted["url"]), str(minted["token"])


async def assistant_speaks(daemon: DaemonHandle, room: str) -> tuple[int, str]:
    """One ``speak --transport livekit`` turn of the daemon in ``room``: its exit code and output."""
    done = await asyncio.to_thread(
        daemon.ctl, "speak", "hello across the nodes", "--transport", "livekit", "--room", room, "--json"
    )
    return done.returncode, done.stdout + done.stderr


# -- tests ------------------------------------------------------------------------------------------


@needs_servers
async def test_both_nodes_register_in_one_redis_and_see_the_same_rooms(cluster: Cluster) -> None:
    config = json.loads((cluster.daemon.base / "livekit" / CONFIG_FILE_NAME).read_text())
    assert config["redis"] == {"address": cluster.redis.address}
    assert registered(cluster.redis) == sorted([cluster.a.node_id(), cluster.b.node_id()])

    created = ctl_json(cluster.daemon, "room", "create", "shared")
    assert created["name"] == "shared"
    assert "shared" in await room_names(cluster.b)  # created through A, listed through B
    assert host_of(cluster.redis, "shared", (cluster.a, cluster.b)) in (cluster.a, cluster.b)

    await through(cluster.b, lambda c: c.room.delete_room(api.DeleteRoomRequest(room="shared")))
    assert "shared" not in [r["name"] for r in ctl_json(cluster.daemon, "room", "list")["rooms"]]
    assert "shared" not in await room_names(cluster.a)


@needs_servers
async def test_a_person_through_node_b_hears_the_assistant_through_node_a(cluster: Cluster) -> None:
    daemon = cluster.daemon
    ctl_json(daemon, "room", "create", "across")
    daemons_url, person_token = token_for(daemon, "across", "person")
    assert daemons_url == cluster.a.url
    async with Person(cluster.b.url, person_token) as person:
        turn = asyncio.create_task(assistant_speaks(daemon, "across"))
        await until(lambda: person.heard_from(ASSISTANT), "the person hears the assistant")
        both = sorted([ASSISTANT, "person"])
        for node in (cluster.a, cluster.b):
            await until(lists(node, "across", both), f"both listed through {node.url}")
        listed = ctl_json(daemon, "room", "participants", "across")["participants"]
        assert sorted(p["identity"] for p in listed) == both
        code, output = await asyncio.wait_for(turn, WAIT * 2)
        assert code == 0, output
        assert person.connected
        await person.message_heard()
    assert TONE_S - 0.2 < person.voiced_seconds() < TONE_S + 0.2, person.voiced_seconds()
    ctl_json(daemon, "room", "delete", "across")


@contextlib.contextmanager
def two_nodes(folder: Path) -> Iterator[tuple[RedisServer, LiveKitServer, LiveKitServer]]:
    """A Redis and two nodes on it outside any daemon, one key for both (started in one folder)."""
    with (
        running_redis(folder / "redis") as redis,
        running_livekit(folder / "livekit", redis=redis.address) as a,
        running_livekit(folder / "livekit", redis=redis.address) as b,
    ):
        yield redis, a, b


@needs_servers
async def test_losing_the_node_that_does_not_host_the_room_leaves_its_people_in_it(tmp_path: Path) -> None:
    with two_nodes(tmp_path) as (redis, a, b):
        await through(Node.of(a), lambda c: c.room.create_room(api.CreateRoomRequest(name="resilient")))
        host = host_of(redis, "resilient", (Node.of(a), Node.of(b)))
        lost = b if host == Node.of(a) else a

        def token(identity: str) -> str:
            grants = api.VideoGrants(room_join=True, room="resilient")
            access = api.AccessToken(host.api_key, host.api_secret)
            return access.with_identity(identity).with_grants(grants).to_jwt()

        async with Person(host.url, token("stays")) as stays:
            async with Person(lost.url, token("moves")) as moves, moves.sounding():
                await until(lambda: stays.heard_from("moves"), "audio relayed across nodes")
                os.killpg(lost.process.pid, signal.SIGKILL)  # gone at once, nothing handed over
                lost.process.wait(5)
            # Whoever signalled through the lost node joins again through the host, and is heard.
            async with Person(host.url, token("moved")) as moved, moved.sounding():
                await until(lambda: stays.heard_from("moved"), "audio after the loss")
            assert stays.connected
            assert "resilient" in await room_names(host)
            assert "stays" in await identities(host, "resilient")
            # The lost node's participant lingers on the host until its media time out (~20 s);
            # deleting the room ends it for everyone, and lets the host stop without waiting.
            await through(host, lambda c: c.room.delete_room(api.DeleteRoomRequest(room="resilient")))


async def _value(result: bool | Awaitable[bool]) -> bool:
    return result if isinstance(result, bool) else await result


@pytest.mark.parametrize(("installed", "asked"), [(False, True), (True, False)])
def test_setup_installs_redis_server_only_where_it_is_missing(
    tmp_path: Path, installed: bool, asked: bool
) -> None:
    """scripts/setup.sh's apt list, run with a stand-in ``dpkg`` that knows every package but maybe Redis."""
    text = (ROOT / "scripts" / "setup.sh").read_text()
    step = text[text.index("need_apt=()") : text.index("if [ ${#need_apt[@]} -gt 0 ]")]
    dpkg = tmp_path / "dpkg"
    dpkg.write_text(f'#!/bin/sh\n[ "$2" != redis-server ] || [ {"1" if installed else ""} ]\n')
    dpkg.chmod(0o755)
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", f'PYTHON=python3\n{step}\nprintf "%s\\n" "${{need_apt[@]}}"'],
        env={"PATH": f"{tmp_path}:/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert ("redis-server" in done.stdout.split()) is asked
