"""The engines' access policy as a pure function: which Host, Origin and token each request may carry."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voicemoded.engines.access import AccessPolicy, host_name, is_loopback_address, is_loopback_origin

FAST = settings(max_examples=200, deadline=None)
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "127.3.2.1", "[::1]", "::1", "[::ffff:127.0.0.1]")
NAMES = st.from_regex(r"[a-z0-9][a-z0-9.-]{0,30}", fullmatch=True)
PORTS = st.one_of(st.just(""), st.integers(1, 65535).map(lambda p: f":{p}"))


@pytest.mark.parametrize("host", LOOPBACK_HOSTS)
def test_loopback_names_with_any_port_are_served(host: str) -> None:
    for suffix in ("", ":2022", ":1"):
        value = host + suffix if host.startswith("[") or ":" not in host else host
        assert AccessPolicy().refusal("/v1/models", {"host": value}) is None, value


@pytest.mark.parametrize("bind", ["0.0.0.0", "::", "192.168.1.5", "voice-box.lan", ""])
def test_a_bind_address_beyond_loopback_is_recognised(bind: str) -> None:
    assert not is_loopback_address(bind)


@FAST
@given(name=NAMES, port=PORTS)
def test_any_other_host_name_is_refused_without_a_token(name: str, port: str) -> None:
    refusal = AccessPolicy().refusal("/v1/models", {"host": name + port})
    if is_loopback_address(name):
        assert refusal is None
    else:
        assert refusal is not None and refusal.status == 421 and refusal.code == "host_not_allowed"
        assert host_name(name + port) == name


@FAST
@given(
    name=NAMES, port=PORTS, given_token=st.text(max_size=50), path=st.sampled_from(["/health", "/v1/models"])
)
def test_with_a_token_the_token_decides_and_the_host_does_not(
    name: str, port: str, given_token: str, path: str
) -> None:
    policy = AccessPolicy(token="s3cret-token")
    refusal = policy.refusal(path, {"host": name + port, "authorization": f"Bearer {given_token}"})
    if path == "/health" or given_token.strip() == "s3cret-token":
        assert refusal is None
    else:
        assert refusal is not None and refusal.status == 401 and refusal.code == "token_required"
        assert "s3cret" not in refusal.message


@FAST
@given(
    origin=st.one_of(
        st.just("null"), NAMES.map(lambda n: f"http://{n}"), NAMES.map(lambda n: f"https://{n}:8443")
    )
)
def test_an_origin_beyond_loopback_is_refused_whatever_else_the_request_has(origin: str) -> None:
    for policy in (AccessPolicy(), AccessPolicy(token="t")):
        headers = {"host": "127.0.0.1", "origin": origin, "authorization": "Bearer t"}
        refusal = policy.refusal("/v1/models", headers)
        if is_loopback_origin(origin):
            assert refusal is None
        else:
            assert refusal is not None and refusal.status == 403 and refusal.code == "cross_origin"
