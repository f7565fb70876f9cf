"""The webhook's pure parts: the body, the signature scheme, event selection and URL masking."""

from __future__ import annotations

import hashlib
import hmac
import json

from voicemoded.api.v1 import daemon_pb2
from voicemoded.events import Event
from voicemoded.webhooks import WebhookStatus, body, mask_url, selected, sign, verify

SECRET = "correct horse battery staple"


def test_the_body_carries_the_event() -> None:
    event = Event("service.state", "supervisor", "piper: stopped -> running", "info", {"name": "piper"}, 0.5)
    document = json.loads(body(event, "abc"))
    assert document == {
        "id": "abc",
        "kind": "service.state",
        "subsystem": "supervisor",
        "level": "info",
        "time": "1970-01-01T00:00:00.500Z",
        "message": "piper: stopped -> running",
        "fields": {"name": "piper"},
    }


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    payload = b'{"kind":"x"}'
    expected = hmac.new(SECRET.encode(), b"1700000000." + payload, hashlib.sha256).hexdigest()
    assert sign(SECRET, 1_700_000_000, payload) == f"sha256={expected}"


def test_verify_checks_signature_body_and_age() -> None:
    payload = b'{"kind":"x"}'
    headers = {
        "X-Voicemode-Timestamp": "1700000000",
        "X-Voicemode-Signature": sign(SECRET, 1_700_000_000, payload),
    }
    assert verify(SECRET, headers, payload, now=1_700_000_100)
    lower = {k.lower(): v for k, v in headers.items()}
    assert verify(SECRET, lower, payload, now=1_700_000_100)
    assert not verify(SECRET, headers, payload + b" ", now=1_700_000_100), "a changed body"
    assert not verify("another secret", headers, payload, now=1_700_000_100)
    assert not verify(SECRET, headers, payload, now=1_700_000_000 + 301), "a replay after five minutes"
    moved = {**headers, "X-Voicemode-Timestamp": "1700000001"}
    assert not verify(SECRET, moved, payload, now=1_700_000_100), "the timestamp is signed too"
    assert not verify(SECRET, {"X-Voicemode-Timestamp": "soon"}, payload)
    assert not verify(SECRET, {}, payload)


def test_selection_by_kind_subsystem_prefix_and_star() -> None:
    turn = Event("conversation.turn", "conversation")
    state = Event("service.state", "supervisor")
    assert selected(("conversation.turn",), turn) and not selected(("conversation.turn",), state)
    assert selected(("service.*",), state) and not selected(("service.*",), Event("services", "x"))
    assert selected(("*",), state)
    assert not selected(("*",), Event("webhook.failing", "webhooks")), "its own events never go out"


def test_masking_hides_user_info_and_query_values() -> None:
    assert (
        mask_url("https://user:pw@hooks.example:8443/a/b?token=abc&x=")
        == "https://****@hooks.example:8443/a/b?token=****&x=****"
    )
    assert mask_url("http://127.0.0.1:9000/hook") == "http://127.0.0.1:9000/hook"
    assert mask_url("http://[::1]:80/h?k=v#frag") == "http://[::1]:80/h?k=****"


def test_status_wire_form() -> None:
    status = WebhookStatus("http://h/x", ("service.*",), 3, 1, 2, 4, "HTTP 500", 500, 7, 12.5, True)
    wire = status.to_proto()
    assert (wire.url, list(wire.events), wire.delivered, wire.failed, wire.dropped, wire.retries) == (
        "http://h/x", ["service.*"], 3, 1, 2, 4,
    )  # fmt: skip
    assert (wire.last_error, wire.last_status_code, wire.queue_length, wire.signed) == (
        "HTTP 500",
        500,
        7,
        True,
    )
    assert wire.last_delivered_at.ToNanoseconds() == 12_500_000_000
    assert (
        not WebhookStatus("u", (), 0, 0, 0, 0, "", 0, 0, 0.0, False).to_proto().HasField("last_delivered_at")
    )
    again = daemon_pb2.Status.FromString(daemon_pb2.Status(webhooks=[wire]).SerializeToString())
    assert again.webhooks[0] == wire
    assert status.as_dict()["events"] == ["service.*"] and status.as_dict()["delivered"] == 3
