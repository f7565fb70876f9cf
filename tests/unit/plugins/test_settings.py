"""The extension settings: VOICEMODE_PLUGINS and the webhook keys, as parsed and as guarded."""

from __future__ import annotations

from pathlib import Path

import pytest

from voicemoded.config.layers import combine, env_layer, file_layer
from voicemoded.config.schema import BY_ENV, ENDPOINT_KEYS, Settings
from voicemoded.plugins.selection import allows, parse_plugins, unknown
from voicemoded.webhooks import DEFAULT_EVENTS, parse_events


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("all", ("all",)),
        (" ALL ", ("all",)),
        ("none", ("none",)),
        ("", ("none",)),
        (" , ", ("none",)),
        ("example-service, my_tool ,x.y", ("example-service", "my_tool", "x.y")),
        ("a,a,b", ("a", "b")),
    ],
)
def test_plugin_selection_parses(text: str, parsed: tuple[str, ...]) -> None:
    assert parse_plugins(text) == parsed


@pytest.mark.parametrize("text", ["all,foo", "none,foo", "bad name", "-dash", "a/b"])
def test_plugin_selection_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_plugins(text)


def test_selection_allows_and_names_the_unknown() -> None:
    assert allows(("all",), "x") and not allows(("none",), "x")
    assert allows(("x", "y"), "y") and not allows(("x",), "y")
    assert unknown(("x", "y"), {"y", "z"}) == ["x"]
    assert unknown(("all",), set()) == [] == unknown(("none",), set())


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("conversation.turn", ("conversation.turn",)),
        ("Service.*, *", ("service.*", "*")),
        ("", ()),
        ("provider.health,provider.health", ("provider.health",)),
    ],
)
def test_event_patterns_parse(text: str, parsed: tuple[str, ...]) -> None:
    assert parse_events(text) == parsed


@pytest.mark.parametrize("text", ["service.", "*.state", "a b", "service.**", ".x"])
def test_event_patterns_refuse(text: str) -> None:
    with pytest.raises(ValueError, match="is not an event kind"):
        parse_events(text)


def test_defaults_and_declarations() -> None:
    settings = Settings()
    assert settings.plugins == ("all",)
    assert settings.webhook_urls == () and settings.webhook_secret == ""
    assert settings.webhook_events == DEFAULT_EVENTS
    assert DEFAULT_EVENTS == ("conversation.turn", "service.state", "provider.health")
    assert BY_ENV["VOICEMODE_WEBHOOK_SECRET"].secret
    for env in (
        "VOICEMODE_PLUGINS",
        "VOICEMODE_WEBHOOK_URLS",
        "VOICEMODE_WEBHOOK_SECRET",
        "VOICEMODE_WEBHOOK_EVENTS",
    ):
        assert BY_ENV[env].daemon_wide, env
        # Plugins run code in the daemon and webhooks send its events elsewhere: not the assistant's call.
        assert env in ENDPOINT_KEYS, env


def test_a_project_file_cannot_set_them(tmp_path: Path) -> None:
    project = tmp_path / ".voicemode.env"
    project.write_text("VOICEMODE_WEBHOOK_URLS=http://elsewhere.example/hook\nVOICEMODE_PLUGINS=none\n")
    resolved = combine((file_layer("project", project), env_layer("environment", {})))
    assert resolved.settings.webhook_urls == () and resolved.settings.plugins == ("all",)


def test_the_user_file_sets_them(tmp_path: Path) -> None:
    user = tmp_path / "voicemode.env"
    user.write_text(
        "VOICEMODE_WEBHOOK_URLS=http://127.0.0.1:9/hook/\nVOICEMODE_WEBHOOK_EVENTS=service.*\n"
        "VOICEMODE_PLUGINS=a,b\nVOICEMODE_WEBHOOK_SECRET=s3cret-s3cret-s3cret\n"
    )
    resolved = combine((file_layer("user", user),))
    s = resolved.settings
    assert s.webhook_urls == ("http://127.0.0.1:9/hook",)
    assert s.webhook_events == ("service.*",) and s.plugins == ("a", "b")
    assert s.webhook_secret == "s3cret-s3cret-s3cret"
