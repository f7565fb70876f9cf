"""File parsing and editing, value parsers, layer combination, and the log scrubber."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest
import structlog

from voicemoded import logsetup
from voicemoded.api.errors import InvalidArgument
from voicemoded.api.paths import Paths
from voicemoded.audio.processing import ProcessingConfig
from voicemoded.config import envfile
from voicemoded.config.layers import Caller, combine, env_layer, file_layer, find_project_file
from voicemoded.config.manager import ConfigManager
from voicemoded.config.schema import SETTINGS, parse_bool, parse_turn_model, parse_urls


def test_parse_keeps_line_numbers_quotes_and_export() -> None:
    entries, bad = envfile.parse_text(
        "# c\n\nA=1\nexport B=\"two words\"\nC='x # y'\nD=plain # trailing\nnot a line\nA=3\n"
    )
    assert [(e.key, e.value, e.line) for e in entries] == [
        ("A", "1", 3),
        ("B", "two words", 4),
        ("C", "x # y", 5),
        ("D", "plain", 6),
        ("A", "3", 8),
    ]
    assert [(b.line, b.text) for b in bad] == [(7, "not a line")]


def test_set_key_replaces_in_place_dedupes_and_appends(tmp_path: Path) -> None:
    path = tmp_path / "f.env"
    path.write_text("# head\nA=1\nB=2\nA=3\n# tail\n")
    assert envfile.set_key(path, "A", "has space") == 3
    assert path.read_text() == '# head\nB=2\nA="has space"\n# tail\n'
    assert envfile.set_key(path, "C", "x") == 6
    assert path.read_text().endswith("# tail\n\nC=x\n")
    envfile.set_key(path, "B", None)
    assert "B=" not in path.read_text()
    entries, _ = envfile.parse_text(path.read_text())
    assert {e.key: e.value for e in entries} == {"A": "has space", "C": "x"}


def test_new_file_is_private_and_no_folder_is_created(tmp_path: Path) -> None:
    path = tmp_path / "voicemode.env"
    envfile.set_key(path, "OPENAI_API_KEY", "sk-x")
    assert path.stat().st_mode & 0o777 == 0o600
    with pytest.raises(FileNotFoundError):
        envfile.set_key(tmp_path / "missing" / "voicemode.env", "A", "1")
    assert not (tmp_path / "missing").exists()


def test_an_edit_makes_a_readable_file_private(tmp_path: Path) -> None:
    path = tmp_path / "voicemode.env"
    path.write_text("# mine\nVOICEMODE_TTS_SPEED=1.1\n")
    path.chmod(0o644)
    envfile.set_key(path, "OPENAI_API_KEY", "sk-x")
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.read_text() == "# mine\nVOICEMODE_TTS_SPEED=1.1\n\nOPENAI_API_KEY=sk-x\n"
    assert [p.name for p in tmp_path.iterdir()] == ["voicemode.env"], "no temporary file left behind"


@pytest.mark.parametrize(("text", "value"), [("yes", True), ("OFF", False), ("1", True), ("false", False)])
def test_bool(text: str, value: bool) -> None:
    assert parse_bool(text) is value


def test_urls_are_validated() -> None:
    assert parse_urls("http://a:1/v1/, https://b/v1") == ("http://a:1/v1", "https://b/v1")
    with pytest.raises(ValueError, match="not an http"):
        parse_urls("localhost:8880")


def test_turn_model_is_auto_off_or_an_onnx_path() -> None:
    assert parse_turn_model(" OFF ") == "off" and parse_turn_model("auto") == "auto"
    assert parse_turn_model("~/m/turn.onnx") == str(Path.home() / "m" / "turn.onnx")
    with pytest.raises(ValueError, match=r"auto, off or the path of a \.onnx file"):
        parse_turn_model("smart")


def test_every_setting_default_parses_back() -> None:
    from voicemoded.config.schema import format_value

    for info in SETTINGS:
        assert info.parse(format_value(info.default)) == info.default, info.env


def test_layers_and_daemon_wide_settings(tmp_path: Path) -> None:
    project = tmp_path / "p"
    (project / "a" / "b").mkdir(parents=True)
    (project / ".voicemode.env").write_text(
        "VOICEMODE_TTS_SPEED=2\nVOICEMODE_WHISPER_PORT=3000\nVOICEMODE_NOPE=1\n"
    )
    assert find_project_file(str(project / "a" / "b")) == project / ".voicemode.env"
    layer = file_layer("project", project / ".voicemode.env")
    assert any("VOICEMODE_NOPE" in w for w in layer.warnings)
    resolved = combine((file_layer("project", project / ".voicemode.env"), env_layer("environment", {})))
    assert resolved.settings.tts_speed == 2.0
    assert resolved.settings.whisper_port == 2022, "ports cannot differ per project"


def test_manager_resolve_rejects_a_bad_caller_value(tmp_path: Path) -> None:
    manager = ConfigManager(Paths(base=tmp_path, socket=tmp_path / "s"), {})
    manager.load()
    with pytest.raises(InvalidArgument, match="VOICEMODE_VAD_AGGRESSIVENESS"):
        manager.resolve(Caller(cwd=str(tmp_path), env={"VOICEMODE_VAD_AGGRESSIVENESS": "x"}))
    ok = manager.resolve(Caller(cwd=str(tmp_path), env={"VOICEMODE_VAD_AGGRESSIVENESS": "0"}))
    assert ok.settings.vad_aggressiveness == 0 and ok.origins["vad_aggressiveness"].layer == "environment"


def test_audio_processing_is_checked_and_written_one_way(tmp_path: Path) -> None:
    manager = ConfigManager(Paths(base=tmp_path, socket=tmp_path / "s"), {})
    manager.load()
    for bad, why in (("loud", "use off, on"), ("aec", "echo cancellation. is not available")):
        with pytest.raises(InvalidArgument, match=f"VOICEMODE_AUDIO_PROCESSING.*{why}"):
            manager.resolve(Caller(cwd=str(tmp_path), env={"VOICEMODE_AUDIO_PROCESSING": bad}))
    ok = manager.resolve(Caller(cwd=str(tmp_path), env={"VOICEMODE_AUDIO_PROCESSING": " HPF, ns "}))
    assert ok.settings.audio_processing == ProcessingConfig.parse("ns,hpf").setting


def test_scrubber_hides_secrets_in_every_field() -> None:
    stream = io.StringIO()
    scrubber = logsetup.configure("info", "json")
    logging.getLogger().handlers[0].stream = stream  # type: ignore[attr-defined]
    scrubber.update(["my-very-secret-value"])
    log = structlog.get_logger("t")
    log.info(
        "x", detail="url?key=my-very-secret-value", api_key="abc123", nested={"k": ["my-very-secret-value"]}
    )
    log.info("y", header="Bearer abcdefghijklmnopqrstuvwxyz", other="sk-abcdefghijklmnop1234")
    try:
        raise RuntimeError("boom my-very-secret-value")
    except RuntimeError:
        log.exception("z")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    text = stream.getvalue()
    assert "my-very-secret-value" not in text and "abc123" not in text
    assert "abcdefghijklmnopqrstuvwxyz" not in text and "sk-abcdefghijklmnop1234" not in text
    assert lines[0]["api_key"] == "[redacted]" and lines[0]["detail"] == "url?key=[redacted]"
    assert "boom [redacted]" in lines[2]["exception"]


def test_the_whisper_model_is_any_model_the_engine_loads() -> None:
    info = next(i for i in SETTINGS if i.env == "VOICEMODE_WHISPER_MODEL")
    assert [info.parse(name) for name in ("tiny.en", "base", "small.en", "medium")] == [
        "tiny.en", "base", "small.en", "medium"
    ]  # fmt: skip
    with pytest.raises(ValueError, match=r"tiny\.en.*small\.en"):
        info.parse("large-v9")
