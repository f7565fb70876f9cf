"""The Piper server offers every catalog voice downloaded into its models folder, next to Joe.

No other Piper voice exists on this machine, so the "downloaded" voices here are Joe's own model and
config placed in the hub folders of other catalog voices, exactly where `voicemodectl models install`
puts them. One of them claims another sample rate in its config, so that the server's resampling of a
voice whose rate is not Joe's is exercised by ear.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.engines.conftest import speak, transcribe
from voicemoded.engines import models
from voicemoded.providers import ProviderSettings, Speech, SpeechInfo
from voicemoded.testing.engines import EngineProcess, running_engine
from voicemoded.testing.words import word_error_rate

pytestmark = [pytest.mark.engines, pytest.mark.slow]

TEXT = "Please open the settings file and check the port number."


def place(models_dir: Path, voice: str, *, rate: int | None = None) -> None:
    """Joe's files as ``voice``'s download (with ``rate`` written into its config when given)."""
    joe_model, joe_config = models.piper_voice_paths(None)
    folder = models.hub_folder(models_dir, voice)
    folder.mkdir(parents=True)
    model_name, config_name = models.piper_voice_files(voice)
    (folder / model_name).symlink_to(joe_model)
    config = json.loads(joe_config.read_text())
    if rate is not None:
        config["audio"]["sample_rate"] = rate
    (folder / config_name).write_text(json.dumps(config))


@pytest.fixture(scope="module")
def piper_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    models_dir = tmp_path_factory.mktemp("piper-models")
    place(models_dir, "en_GB-alan-medium")
    place(models_dir, "de_DE-thorsten-medium", rate=16_000)
    return models_dir


@pytest.fixture(scope="module")
def piper_voices(piper_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    yield from running_engine("piper", tmp_path_factory.mktemp("piper"), "--models-dir", str(piper_dir))


def listed(engine: EngineProcess) -> dict[str, dict[str, object]]:
    document = httpx.get(f"{engine.url}/v1/audio/voices", timeout=10).json()
    return {v["id"]: v for v in document["data"]}


def test_downloaded_voices_are_listed_with_language_and_gender(piper_voices: EngineProcess) -> None:
    voices = listed(piper_voices)
    assert list(voices) == ["en_US-joe-medium", "en_GB-alan-medium", "de_DE-thorsten-medium"]
    assert (voices["en_GB-alan-medium"]["language"], voices["en_GB-alan-medium"]["gender"]) == (
        "en-gb",
        "male",
    )
    assert voices["de_DE-thorsten-medium"]["language"] == "de-de"


def test_a_downloaded_voice_speaks_and_says_it_did(
    piper_voices: EngineProcess, whisper: EngineProcess
) -> None:
    response = speak(piper_voices, TEXT, voice="en_GB-alan-medium")
    assert response.status_code == 200, response.text
    assert response.headers["x-voice"] == "en_GB-alan-medium"
    heard = transcribe(whisper, response.content, "speech.pcm", "audio/pcm", sample_rate="24000")
    assert word_error_rate(TEXT, str(heard.json()["text"])) <= 0.2, heard.text  # Piper varies each reading
    by_name = speak(piper_voices, TEXT, voice="alan")  # the speaker's name, as for Joe
    assert by_name.status_code == 200 and by_name.headers["x-voice"] == "en_GB-alan-medium"


def test_a_voice_of_another_rate_is_played_at_its_own_rate(piper_voices: EngineProcess) -> None:
    """The same model told it makes 16 kHz is resampled from 16 kHz: 22050/16000 = 1.38 times as long.
    Piper varies each reading's length (by up to ~9 % here), so three of each are summed."""

    def length(voice: str | None) -> int:
        responses = [speak(piper_voices, TEXT, **({"voice": voice} if voice else {})) for _ in range(3)]
        assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
        return sum(len(r.content) for r in responses)

    ratio = length("de_DE-thorsten-medium") / length(None)
    assert abs(ratio - 22_050 / 16_000) < 0.15, ratio


def test_a_voice_downloaded_while_the_server_runs_is_offered_and_one_not_there_is_refused(
    piper_voices: EngineProcess, piper_dir: Path
) -> None:
    missing = speak(piper_voices, TEXT, voice="fr_FR-siwis-medium")
    assert missing.status_code == 400
    assert "en_GB-alan-medium" in missing.json()["error"]["message"]
    place(piper_dir, "fr_FR-siwis-medium")
    assert "fr_FR-siwis-medium" in listed(piper_voices)
    spoken = speak(piper_voices, "Bonjour.", voice="fr_FR-siwis-medium")
    assert spoken.status_code == 200 and spoken.headers["x-voice"] == "fr_FR-siwis-medium"


async def test_a_turn_in_german_with_no_voice_named_gets_the_german_voice(
    piper_voices: EngineProcess,
) -> None:
    async with Speech(ProviderSettings()) as speech:
        speech.set_local_endpoints("tts", {"piper": f"{piper_voices.url}/v1"})
        items = [item async for item in speech.synthesize("Guten Abend.", language="de")]
        english = [item async for item in speech.synthesize("Good evening.")]
    info, default = items[0], english[0]
    assert isinstance(info, SpeechInfo) and isinstance(default, SpeechInfo)
    assert (info.voice, info.warnings) == ("de_DE-thorsten-medium", ())
    assert default.voice == "en_US-joe-medium", "English stays with the default voice"


def test_a_damaged_download_is_an_error_naming_the_voice_and_the_rest_still_speak(
    piper_voices: EngineProcess, piper_dir: Path
) -> None:
    folder = models.hub_folder(piper_dir, "es_ES-davefx-medium")
    folder.mkdir(parents=True)
    model_name, config_name = models.piper_voice_files("es_ES-davefx-medium")
    (folder / model_name).write_bytes(b"not a model")
    (folder / config_name).write_text("{}")
    broken = speak(piper_voices, "Hola.", voice="es_ES-davefx-medium")
    assert broken.status_code == 500
    message = broken.json()["error"]["message"]
    assert (
        "es_ES-davefx-medium could not be loaded" in message
        and "models install es_ES-davefx-medium" in message
    )
    assert speak(piper_voices, TEXT, voice="en_GB-alan-medium").status_code == 200
