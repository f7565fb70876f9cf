"""Every voicemodectl command takes ``--json`` before or after it, as the README shows both."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import pytest

from voicemodectl.__main__ import build_parser


def commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """The argv of every runnable command: its words, then a value for each positional it requires."""
    verbs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if verbs:
        for name, child in verbs[0].choices.items():
            yield from commands(child, (*path, name))
        return
    values = []
    for action in parser._actions:
        if action.option_strings or action.nargs in ("?", "*"):
            continue
        choices = list(action.choices) if action.choices else ["x"]
        values.append(str(choices[0]))
    yield (*path, *values)


ALL = sorted(commands(build_parser()))


def test_every_noun_is_walked() -> None:
    assert {argv[0] for argv in ALL} >= {"status", "doctor", "service", "config", "say", "completion"}
    assert ("service", "start", "x") in ALL and ("doctor",) in ALL


@pytest.mark.parametrize("argv", ALL, ids=" ".join)
def test_json_before_or_after_the_command(argv: tuple[str, ...]) -> None:
    parser = build_parser()
    assert parser.parse_args(list(argv)).json is False
    assert parser.parse_args(["--json", *argv]).json is True
    assert parser.parse_args([*argv, "--json"]).json is True
    if len(argv) > 1:  # between the noun and its verb, too
        assert parser.parse_args([argv[0], "--json", *argv[1:]]).json is True


def test_several_service_names_are_kept_in_order() -> None:
    parser = build_parser()
    for verb in ("start", "stop", "restart", "enable", "disable"):
        assert parser.parse_args(["service", verb, "whisper", "piper"]).names == ["whisper", "piper"]
    with pytest.raises(SystemExit):
        parser.parse_args(["service", "start"])  # at least one name
