"""Specs are frozen and validated, with an error that names the service and every problem."""

from __future__ import annotations

import dataclasses

import pytest

from voicemoded.api.errors import InvalidArgument
from voicemoded.supervisor.spec import BackoffSettings, HttpProbe, LogSettings, ServiceSpec


def test_a_valid_spec_is_frozen_and_its_env_cannot_be_changed() -> None:
    spec = ServiceSpec(
        name="whisper",
        command=["python", "-m", "x"],  # type: ignore[arg-type]
        env={"A": "1"},
        port=2022,
        probe=HttpProbe(),
    )
    assert spec.command == ("python", "-m", "x")
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.port = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        spec.env["A"] = "2"  # type: ignore[index]
    assert spec == ServiceSpec(
        name="whisper", command=("python", "-m", "x"), env={"A": "1"}, port=2022, probe=HttpProbe()
    )


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(InvalidArgument) as err:
        ServiceSpec(
            name="Bad Name",
            command=(),
            port=70000,
            start_timeout=0,
            backoff=BackoffSettings(initial=5, maximum=1),
            logs=LogSettings(max_bytes=10),
        )
    message = err.value.message
    for words in ("name", "command", "port 70000", "start_timeout", "backoff", "logs"):
        assert words in message
    assert err.value.hint


def test_a_probe_needs_a_port() -> None:
    with pytest.raises(InvalidArgument, match="probe needs a port"):
        ServiceSpec(name="x", command=("true",), probe=HttpProbe())


def test_a_child_inherits_the_environment_without_what_its_spec_drops() -> None:
    from voicemoded.supervisor.spawn import child_environment

    inherited = {"PATH": "/bin", "LIVEKIT_KEYS": "devkey: secret", "LIVEKIT_CONFIG": "x", "NODE_IP": "1.2.3.4"}
    out = child_environment(inherited, {"PYTHONUNBUFFERED": "1"}, ("LIVEKIT_*", "NODE_IP"))
    assert out == {"PATH": "/bin", "PYTHONUNBUFFERED": "1"}
    assert child_environment(inherited, {"NODE_IP": "127.0.0.1"}, ("NODE_IP",))["NODE_IP"] == "127.0.0.1"
    assert child_environment(inherited, {}) == inherited
