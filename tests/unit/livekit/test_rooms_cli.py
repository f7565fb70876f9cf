"""``voicemodectl room``: its verbs, and the time to live as a person types it."""

from __future__ import annotations

import argparse

import pytest

from voicemodectl.__main__ import build_parser, main
from voicemodectl.room import duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("3600", 3600), ("90s", 90), ("30m", 1800), ("1h", 3600), ("1h30m", 5400), ("2h5m10s", 7510), ("0", 0)],
)
def test_a_ttl_is_read_in_hours_minutes_or_seconds(text: str, seconds: float) -> None:
    assert duration(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "1d", "-5", "1.5h", "soon", "30m1h"])
def test_anything_else_is_a_usage_error_with_an_example(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=r"e\.g\. 3600, 90s, 30m, 1h"):
        duration(text)


def test_every_verb_is_there_and_takes_json_after_it() -> None:
    parser = build_parser()
    args = parser.parse_args(
        ["room", "token", "lobby", "--identity", "ada", "--name", "Ada", "--ttl", "10m", "--json"]
    )
    assert (args.name, args.identity, args.display_name) == ("lobby", "ada", "Ada")
    assert (args.ttl, args.json) == (600, True)
    args = parser.parse_args(["room", "create", "lobby", "--empty-timeout", "60", "--max-participants", "3"])
    assert (args.name, args.empty_timeout, args.max_participants, args.json) == ("lobby", 60, 3, False)
    for verb in (["list"], ["delete", "x"], ["participants", "x"]):
        assert parser.parse_args(["room", *verb, "--json"]).json


def test_a_bad_ttl_stops_at_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["room", "token", "lobby", "--identity", "ada", "--ttl", "forever"])
    assert caught.value.code == 2
    assert "'forever' is not a duration" in capsys.readouterr().err
