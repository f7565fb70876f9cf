"""The web door's guard: loopback Host names, its own Origin only, and the token for every change."""

from __future__ import annotations

import pytest

from voicemode_web.security import Policy, host_name, is_loopback

TOKEN = "t0ken-" + "x" * 37
LOCAL = {"host": "127.0.0.1:8790"}


def code(policy: Policy, method: str, path: str, headers: dict[str, str]) -> str | None:
    refused = policy.refusal(method, path, headers)
    return None if refused is None else refused.code


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("127.0.0.1:8790", "127.0.0.1"),
        ("localhost", "localhost"),
        ("[::1]:8790", "::1"),
        ("a.example:1", "a.example"),
    ],
)
def test_host_name_takes_off_the_port(header: str, name: str) -> None:
    assert host_name(header) == name


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "127.5.0.1", "::1", "[::1]", "LOCALHOST"])
def test_loopback_names(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize(
    "host", ["", "attacker.example", "0.0.0.0", "192.168.1.2", "localhost.example", "[::1"]
)
def test_other_names_are_not_loopback(host: str) -> None:
    assert not is_loopback(host)


def test_on_loopback_reading_needs_no_token_and_changing_does() -> None:
    policy = Policy(TOKEN)
    assert code(policy, "GET", "/api/overview", LOCAL) is None
    assert code(policy, "POST", "/api/services/web/start", LOCAL) == "token_missing"
    assert code(policy, "POST", "/api/talk", {**LOCAL, "authorization": f"Bearer {TOKEN}"}) is None
    assert code(policy, "POST", "/api/talk", {**LOCAL, "authorization": f"bearer  {TOKEN} "}) is None
    assert code(policy, "POST", "/api/talk", {**LOCAL, "authorization": f"Basic {TOKEN}"}) == "token_wrong"
    assert code(policy, "POST", "/api/talk", {**LOCAL, "authorization": f"Bearer {TOKEN}x"}) == "token_wrong"
    assert code(policy, "GET", "/api/overview", {**LOCAL, "authorization": "Bearer old"}) == "token_wrong"


def test_dns_rebinding_and_other_pages_are_refused() -> None:
    policy = Policy(TOKEN)
    auth = {"authorization": f"Bearer {TOKEN}"}
    assert code(policy, "POST", "/api/talk", {"host": "attacker.example:8790", **auth}) == "host_not_allowed"
    assert code(policy, "GET", "/healthz", {"host": "attacker.example"}) == "host_not_allowed"
    foreign = {**LOCAL, **auth, "origin": "http://attacker.example"}
    assert code(policy, "POST", "/api/talk", foreign) == "cross_origin"
    assert code(policy, "POST", "/api/talk", {**LOCAL, **auth, "origin": "null"}) == "cross_origin"
    assert (
        code(policy, "POST", "/api/talk", {**LOCAL, **auth, "origin": "http://127.0.0.1:9"}) == "cross_origin"
    )
    assert code(policy, "POST", "/api/talk", {**LOCAL, **auth, "origin": "http://127.0.0.1:8790"}) is None
    assert code(policy, "GET", "/", {**LOCAL, "sec-fetch-site": "cross-site"}) == "cross_origin"


def test_beyond_loopback_every_api_call_needs_the_token_but_the_page_and_probe_do_not() -> None:
    policy = Policy(TOKEN, loopback_only=False)
    lan = {"host": "192.168.1.20:8790"}
    assert code(policy, "GET", "/api/overview", lan) == "token_missing"
    assert code(policy, "GET", "/api/overview", {**lan, "authorization": f"Bearer {TOKEN}"}) is None
    assert code(policy, "GET", "/", lan) is None
    assert code(policy, "GET", "/healthz", lan) is None
