"""Shell completion generated from the argparse tree, exercised in a real bash."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def script(shell: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "voicemodectl", "completion", shell],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def complete(tmp_path: Path, *words: str) -> list[str]:
    (tmp_path / "completion.bash").write_text(script("bash"))
    probe = (
        f"source {tmp_path / 'completion.bash'}\n"
        f"COMP_WORDS=(voicemodectl {' '.join(repr(w) for w in words)})\n"
        "COMP_CWORD=$((${#COMP_WORDS[@]} - 1))\n"
        '_voicemodectl; printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    done = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and not done.stderr, done.stderr
    return done.stdout.split()


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_bash_completes_nouns_verbs_and_options(tmp_path: Path) -> None:
    assert complete(tmp_path, "doc") == ["doctor"]
    assert complete(tmp_path, "daemon", "") >= ["start", "stop", "restart", "install", "uninstall", "enable"]
    assert complete(tmp_path, "--json", "daemon", "install", "--s") == ["--system"]
    assert complete(tmp_path, "--socket", "/tmp/x.sock", "servi") == ["service"]
    assert "--no-probe" in complete(tmp_path, "doctor", "--")


def test_zsh_and_fish_scripts_name_every_noun() -> None:
    zsh, fish = script("zsh"), script("fish")
    assert zsh.startswith("#compdef voicemodectl") and "bashcompinit" in zsh
    for noun in ("daemon", "doctor", "service", "config", "converse"):
        assert f"-a {noun} " in fish
    assert "__fish_seen_subcommand_from daemon; and __fish_seen_subcommand_from install' -l system" in fish
    for shell, text in (("zsh", zsh), ("fish", fish)):
        if shutil.which(shell):
            done = subprocess.run([shell, "-n"], input=text, capture_output=True, text=True, timeout=30)
            assert done.returncode == 0, done.stderr
