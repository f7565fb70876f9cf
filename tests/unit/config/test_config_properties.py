"""Properties of configuration files over generated input: any bytes are read without a surprise, no
error or warning quotes a secret, and what ``config set`` writes reads back as written."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from voicemoded.api.paths import Paths
from voicemoded.config import envfile
from voicemoded.config.layers import file_layer
from voicemoded.config.manager import ConfigManager

SHORT = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_KEY_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
secrets = st.text(_KEY_CHARS, min_size=20, max_size=48).map(lambda s: "sk-" + s)
names = st.sampled_from(["OPENAI_API_KEY", "LIVEKIT_API_SECRET", "GH_TOKEN", "db_password", "api-key"])
separators = st.sampled_from([": ", ":", " ", " = ", "=", " := ", "\t", " -> "])
noise = st.text(st.characters(codec="utf-8", exclude_characters="\n"), max_size=40)


@st.composite
def secret_lines(draw: st.DrawFn) -> tuple[str, str]:
    secret = draw(secrets)
    form = draw(st.integers(0, 2))
    if form == 0:  # a key named like a credential, with the wrong separator
        line = f"{draw(names)}{draw(separators)}{secret}"
    elif form == 1:  # a credential-shaped value anywhere in a broken line
        line = f"{draw(noise)} {secret} {draw(noise)}"
    else:  # the key's value written after some other word
        line = f"{draw(noise).strip() or 'x'} {draw(names)}={secret}"
    return line, secret


files = st.lists(st.one_of(secret_lines(), noise.map(lambda t: (t, ""))), max_size=12)


def _all_text(path: Path) -> str:
    layer = file_layer("user", path)
    return "\n".join([*(str(e) for e in layer.errors), *layer.warnings])


@SHORT
@given(data=st.binary(max_size=2048))
def test_any_bytes_read_as_values_or_typed_errors(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "voicemode.env"
        path.write_bytes(data)
        try:
            envfile.read(path)
        except envfile.UnreadableFile as exc:
            assert exc.reason
        layer = file_layer("user", path)  # never raises: an unreadable file is an error in the layer
        for error in layer.errors:
            assert error.file == str(path) and error.line >= 0 and error.reason


@SHORT
@given(lines=files)
def test_no_error_or_warning_quotes_a_secret(lines: list[tuple[str, str]]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "voicemode.env"
        path.write_text("\n".join(line for line, _ in lines) + "\n", encoding="utf-8")
        shown = _all_text(path)
        # What is not a secret may be quoted, and it may happen to contain a secret's characters.
        plain = "\n".join(line for line, _ in lines)
        for _, secret in lines:
            plain = plain.replace(secret, "\n") if secret else plain
        for _, secret in lines:
            if secret:
                assert secret not in shown
                if secret[3:19] not in plain:
                    assert secret[3:19] not in shown, "not even a recognisable part of it"


printable = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cc", "Zl", "Zp", "Cs")), max_size=60
).filter(lambda t: envfile.control_character(t) is None)


@SHORT
@given(
    before=st.lists(st.sampled_from(["# note", "", "VOICEMODE_TTS_SPEED=1.5", "export A=b"]), max_size=4),
    value=printable,
    key=st.sampled_from(["VOICEMODE_STT_MODEL", "VOICEMODE_STT_LANGUAGE", "OPENAI_API_KEY"]),
)
def test_set_then_unset_round_trips_and_keeps_the_other_lines(
    before: list[str], value: str, key: str
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder)
        config = ConfigManager(Paths(base=base, socket=base / "s"), {})
        original = "".join(f"{line}\n" for line in before)
        config.user_file.write_text(original)
        config.load()
        info = config.info(key)
        config.set(key, value)
        assert getattr(config.settings, info.name) == value.strip()
        assert config.errors == ()
        assert config.user_file.stat().st_mode & 0o777 == 0o600
        config.unset(key)
        assert getattr(config.settings, info.name) == info.default
        kept = [line for line in config.user_file.read_text().split("\n") if line.strip()]
        assert kept == [line for line in before if line.strip()]
