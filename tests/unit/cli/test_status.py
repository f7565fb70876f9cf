"""How ``voicemodectl status`` shows plugins and webhooks (the daemon's answer is held elsewhere)."""

from __future__ import annotations

from voicemodectl.status import plugins_table, webhook_line
from voicemoded.api.v1 import daemon_pb2


def test_a_failed_plugin_shows_where_it_comes_from_and_why() -> None:
    table = plugins_table(
        [
            daemon_pb2.PluginInfo(
                name="acme-tts", group="voicemode.providers", distribution="acme-voice", version="2.0",
                state=daemon_pb2.PluginInfo.FAILED, error="ImportError: no module named acme_sdk",
            ),
            daemon_pb2.PluginInfo(name="local", group="voicemode.tools", state=daemon_pb2.PluginInfo.DISABLED),
        ]
    )  # fmt: skip
    header, failed, disabled = table.splitlines()
    assert header.split() == ["NAME", "GROUP", "DISTRIBUTION", "PROVIDES", "STATE", "ERROR"]
    assert failed.split(None, 6) == [
        "acme-tts", "voicemode.providers", "acme-voice", "2.0", "-", "failed",
        "ImportError: no module named acme_sdk",
    ]  # fmt: skip
    assert disabled.split() == ["local", "voicemode.tools", "-", "-", "disabled"]


def test_a_webhook_line_has_its_counts_its_last_delivery_and_its_last_error() -> None:
    hook = daemon_pb2.WebhookInfo(
        url="https://****@hooks.example/in", events=["conversation.turn"], delivered=7, failed=1,
        retries=3, last_error="HTTP 503", last_status_code=503, signed=True,
    )  # fmt: skip
    hook.last_delivered_at.FromSeconds(1_000)
    line = webhook_line(hook, now=1_090.0)
    assert line.startswith("https://****@hooks.example/in  (conversation.turn): 7 delivered, 1 failed")
    assert "3 retries" in line and "signed" in line and "unsigned" not in line
    assert line.endswith("; last delivered 1m30s ago; last error: HTTP 503")
    fresh = webhook_line(daemon_pb2.WebhookInfo(url="http://127.0.0.1:9/", events=["*"]), now=0.0)
    assert (
        fresh == "http://127.0.0.1:9/  (*): 0 delivered, 0 failed, 0 dropped, 0 retries, 0 queued, unsigned"
    )
