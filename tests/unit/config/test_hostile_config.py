"""Configuration input nobody should write but someone will: line breaks in values, folders that are not
there, keys quoted in errors, files that are pipes, links or not text, risky values that parse."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from voicemoded.api.errors import FailedPrecondition, InvalidArgument, NotFound
from voicemoded.config import envfile
from voicemoded.config.layers import Caller, file_layer, find_project_file
from voicemoded.config.manager import ConfigManager
from voicemoded.config.redaction import mask_line

KEY = "sk-proj-Abc123Def456Ghi789Jkl0"


def manager(base: Path, env: dict[str, str] | None = None) -> ConfigManager:
    from voicemoded.api.paths import Paths

    config = ConfigManager(Paths(base=base, socket=base / "s"), env or {})
    config.load()
    return config


@pytest.mark.parametrize("char", ["\n", "\r", "\t", "\x00", "\x1b", "\x7f", "\x85", "\u2028", "\u2029"])
def test_control_characters_are_refused_in_values_and_keys(tmp_path: Path, char: str) -> None:
    config = manager(tmp_path)
    config.set("VOICEMODE_VOICES", "af_sky")
    before = config.user_file.read_text()
    with pytest.raises(InvalidArgument) as caught:
        config.set("VOICEMODE_VOICES", f"x{char}VOICEMODE_STT_BASE_URLS=http://127.0.0.1:9/v1")
    assert caught.value.fields["field"] == "value"
    assert f"U+{ord(char):04X} at position 1" in caught.value.message
    for bad_key in (f"VOICEMODE_VOICES{char}", f"{char}VOICEMODE_VOICES"):
        with pytest.raises(InvalidArgument) as caught:
            config.unset(bad_key)
        assert caught.value.fields["field"] == "key"
    assert config.user_file.read_text() == before
    assert config.settings.stt_base_urls == ()


def test_the_file_writer_refuses_them_too(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="U\\+000A"):
        envfile.set_key(tmp_path / "f.env", "A", "1\nB=2")
    assert not (tmp_path / "f.env").exists()


def test_project_scope_needs_an_existing_absolute_folder_and_creates_none(tmp_path: Path) -> None:
    config = manager(tmp_path / "base")
    missing = tmp_path / "not" / "here"
    cases = {"": "is empty", "relative/dir": "must be an absolute path", str(missing): "does not exist"}
    (tmp_path / "a-file").write_text("")
    cases[str(tmp_path / "a-file")] = "is not a folder"
    for cwd, why in cases.items():
        with pytest.raises(InvalidArgument, match=why) as caught:
            config.set("VOICEMODE_TTS_SPEED", "1.5", "project", Caller(cwd=cwd))
        assert caught.value.fields["field"] == "caller.cwd"
    assert not (tmp_path / "not").exists() and not Path("relative").exists()
    project = tmp_path / "proj"
    project.mkdir()
    path, line = config.set("VOICEMODE_TTS_SPEED", "1.5", "project", Caller(cwd=str(project)))
    assert (path, line) == (project / ".voicemode.env", 1)
    assert path.stat().st_mode & 0o777 == 0o600


def test_a_relative_caller_folder_is_refused_when_reading(tmp_path: Path) -> None:
    config = manager(tmp_path)
    with pytest.raises(InvalidArgument, match=r"caller\.cwd must be an absolute path"):
        config.resolve(Caller(cwd="some/where"))


@pytest.mark.skipif(os.geteuid() != 0, reason="changing a folder's owner needs root")
def test_someone_elses_folder_gets_no_project_file_and_theirs_is_not_read(tmp_path: Path) -> None:
    config = manager(tmp_path / "base")
    shared = tmp_path / "shared"
    (shared / "mine").mkdir(parents=True)
    (shared / ".voicemode.env").write_text("VOICEMODE_STT_BASE_URLS=http://attacker.example/v1\n")
    os.chown(shared / ".voicemode.env", 65534, 65534)
    assert find_project_file(str(shared / "mine")) is None, "another user's file must not apply"
    os.chown(shared / "mine", 65534, 65534)
    with pytest.raises(FailedPrecondition, match="belongs to uid 65534"):
        config.set("VOICEMODE_TTS_SPEED", "1.5", "project", Caller(cwd=str(shared / "mine")))
    assert not (shared / "mine" / ".voicemode.env").exists()


@pytest.mark.parametrize(
    "line",
    [
        f"OPENAI_API_KEY: {KEY}",
        f"OPENAI_API_KEY {KEY}",
        "LIVEKIT_API_SECRET: short1",
        "password hunter2",
        f"export MY_TOKEN {KEY}",
        f"something {KEY} else",
        f"note: OPENAI_API_KEY={KEY}",
    ],
)
def test_a_rejected_line_is_quoted_without_its_secret(tmp_path: Path, line: str) -> None:
    secret = line.rsplit(" ", 1)[-1] if "hunter2" in line or "short1" in line else KEY
    masked = mask_line(line)
    assert secret not in masked and "****" in masked
    config = manager(tmp_path)
    config.user_file.write_text(f"VOICEMODE_TTS_SPEED=1.5\n{line}\n")
    result = config.load()
    [error] = result.errors
    assert error.line == 2 and "not KEY=value" in error.reason
    assert secret not in str(error) and secret[-6:] not in str(error)


def test_a_harmless_rejected_line_is_still_quoted(tmp_path: Path) -> None:
    layer = file_layer("user", _write(tmp_path / "f.env", "VOICEMODE_TTS_SPEED 1.5\n"))
    assert [e.reason for e in layer.errors] == ["not KEY=value: 'VOICEMODE_TTS_SPEED 1.5'"]


def _write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def test_files_that_cannot_be_configuration_are_one_clear_error_each(tmp_path: Path) -> None:
    config = manager(tmp_path)
    config.user_file.write_text("VOICEMODE_TTS_SPEED=1.5\n")
    assert config.load().changed == ("tts_speed",)

    def swap(make: object) -> str:
        config.user_file.unlink() if not config.user_file.is_dir() else config.user_file.rmdir()
        make()  # type: ignore[operator]
        [error] = config.load().errors
        assert config.settings.tts_speed == 1.5, "the last good configuration stays"
        assert error.file == str(config.user_file)
        return f"{error.line}: {error.reason}"

    assert swap(lambda: config.user_file.write_bytes(b"# ok\nVOICEMODE_VOICES=caf\xe9\n")).startswith(
        "2: line 2 is not valid UTF-8 (byte 0xe9)"
    )
    assert "it is a folder" in swap(lambda: config.user_file.mkdir())
    assert "larger than 1024 KiB" in swap(lambda: config.user_file.write_text("#" * (envfile.MAX_BYTES + 1)))
    assert "it is a device" in swap(lambda: config.user_file.symlink_to("/dev/zero"))


def test_a_named_pipe_is_never_opened(tmp_path: Path) -> None:
    config = manager(tmp_path)
    os.mkfifo(config.user_file)
    done: list[object] = []
    reader = threading.Thread(target=lambda: done.append(config.load()), daemon=True)
    reader.start()
    reader.join(5)
    assert done, "reading the configuration blocked on a named pipe"
    [error] = done[0].errors  # type: ignore[attr-defined]
    assert "it is a named pipe; it must be a regular text file" in error.reason


def test_a_linked_file_is_read_but_its_lines_are_not_quoted_nor_written_through(tmp_path: Path) -> None:
    target = _write(tmp_path / "id_key", f"-----BEGIN KEY-----\n{'Q' * 40}\nVOICEMODE_TTS_SPEED=1.5\n")
    config = manager(tmp_path / "base")
    config.user_file.parent.mkdir()
    config.user_file.symlink_to(target)
    errors = config.load().errors
    assert [e.line for e in errors] == [1, 2]
    assert all("not quoted: the file is a symbolic link" in e.reason for e in errors)
    assert all("BEGIN" not in e.reason and "QQQQ" not in e.reason for e in errors)
    with pytest.raises(FailedPrecondition, match="symbolic link; edit the file it points to"):
        config.set("VOICEMODE_TTS_SPEED", "2")
    assert config.user_file.is_symlink() and "QQQQ" in target.read_text()


def test_risky_values_warn_and_unsafe_service_names_are_refused(tmp_path: Path) -> None:
    config = manager(tmp_path, {"VOICEMODE_SERVICE_HOST": "0.0.0.0", "VOICEMODE_CHIME_ENABLD": "true"})
    config.user_file.write_text("VOICEMODE_AUTOSTART_SERVICES=../../x\nVOICEMODE_TTS_SPEEDD=1\n")
    [error] = config.load().errors
    assert error.key == "VOICEMODE_AUTOSTART_SERVICES" and "unknown service '../../x'" in error.reason
    assert config.settings.autostart_services == ("whisper", "piper")
    warnings = "\n".join(config.warnings)
    assert "VOICEMODE_SERVICE_HOST=0.0.0.0 lets other machines reach" in warnings
    assert "VOICEMODE_CHIME_ENABLD" in warnings and "did you mean VOICEMODE_CHIME_ENABLED?" in warnings
    config.user_file.write_text("VOICEMODE_AUTOSTART_SERVICES=Kokoro, piper\nVOICEMODE_TTS_SPEEDD=1\n")
    assert config.load().errors == ()
    assert config.settings.autostart_services == ("kokoro", "piper")
    assert "VOICEMODE_TTS_SPEEDD" in "\n".join(config.warnings)
    with pytest.raises(InvalidArgument, match="unknown service"):
        config.set("VOICEMODE_AUTOSTART_SERVICES", "whisper,/bin/sh")
    assert not manager(tmp_path / "2", {"VOICEMODE_SERVICE_HOST": "::1"}).warnings


def test_service_names_are_the_supervisors(tmp_path: Path) -> None:
    from voicemoded.api.paths import Paths
    from voicemoded.config.schema import SERVICE_NAMES, Settings
    from voicemoded.supervisor.builtin import builtin_specs
    from voicemoded.wiring import builtin_settings

    assert Paths(base=tmp_path, socket=tmp_path / "s")
    names = {spec.name for spec in builtin_specs(builtin_settings(Settings()))}
    assert names == set(SERVICE_NAMES)


def test_only_the_user_file_lets_the_mcp_door_change_endpoints(tmp_path: Path) -> None:
    key = "VOICEMODE_MCP_CAN_CHANGE_ENDPOINTS"
    config = manager(tmp_path, {key: "true"})
    assert not config.user_file_allows_endpoint_changes(), "the daemon's environment does not grant it"
    project = tmp_path / "p"
    project.mkdir()
    (project / ".voicemode.env").write_text(f"{key}=true\n")
    config.resolve(Caller(cwd=str(project), env={key: "true"}))
    assert not config.user_file_allows_endpoint_changes()
    config.user_file.write_text(f"{key}=true\n")
    config.load()
    assert config.user_file_allows_endpoint_changes()
    config.user_file.write_text(f"{key}=false\n")
    config.load()
    assert not config.user_file_allows_endpoint_changes()


def test_a_project_file_rewritten_within_the_same_tick_is_read_again(tmp_path: Path) -> None:
    config = manager(tmp_path / "base")
    project = tmp_path / "p"
    project.mkdir()
    path = project / ".voicemode.env"
    path.write_text("VOICEMODE_TTS_SPEED=1.5\n")
    stamp = path.stat().st_mtime_ns
    assert config.resolve(Caller(cwd=str(project))).settings.tts_speed == 1.5
    with open(path, "r+") as handle:  # same size, same inode, same modification time
        handle.write("VOICEMODE_TTS_SPEED=2.5\n")
    os.utime(path, ns=(stamp, stamp))
    assert config.resolve(Caller(cwd=str(project))).settings.tts_speed == 2.5


def test_unknown_key_errors_quote_a_bounded_key(tmp_path: Path) -> None:
    config = manager(tmp_path)
    with pytest.raises(NotFound) as caught:
        config.set("VOICEMODE_" + "X" * 10_000, "1")
    assert len(caught.value.message) < 200


def test_a_folder_that_may_not_be_written_is_a_clear_error_naming_the_file() -> None:
    """A real EACCES: the edit runs in a child without the right to write the folder (as another user
    when these tests run as root, whom modes do not stop)."""
    import json
    import shutil
    import subprocess
    import sys
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="vm-eacces-", dir="/tmp"))
    base = root / "base"
    base.mkdir()
    (base / "voicemode.env").write_text("VOICEMODE_TTS_SPEED=1.5\n")
    root.chmod(0o755)
    (base / "voicemode.env").chmod(0o644)
    as_other = os.geteuid() == 0
    base.chmod(0o755 if as_other else 0o500)
    script = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from voicemoded.config.manager import ConfigManager\n"
        "from voicemoded.api.paths import Paths\n"
        "import os\n"
        "if sys.argv[2] == 'other':  # imports done first: the other user needs no access to this checkout\n"
        "    os.setgroups([]); os.setgid(65534); os.setuid(65534)\n"
        "base = Path(sys.argv[1])\n"
        "config = ConfigManager(Paths(base=base, socket=base / 's'), {})\n"
        "config.load()\n"
        "try:\n"
        "    config.set('VOICEMODE_TTS_SPEED', '2')\n"
        "except Exception as exc:\n"
        "    print(json.dumps([type(exc).__name__, str(getattr(exc, 'code', '')), exc.args[0],"
        " getattr(exc, 'hint', '')]))\n"
    )
    repo = str(Path(__file__).resolve().parents[3])
    try:
        done = subprocess.run(
            [sys.executable, "-c", script, str(base), "other" if as_other else "self"],
            env={**os.environ, "PYTHONPATH": repo},
            cwd=root,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        kind, code, message, hint = json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        base.chmod(0o700)
        shutil.rmtree(root, ignore_errors=True)
    assert (kind, code) == ("PermissionDenied", "PERMISSION_DENIED")
    assert message == f"cannot write {base / 'voicemode.env'}: Permission denied"
    assert f"make {base} and voicemode.env yours and writable" in hint
