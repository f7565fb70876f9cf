"""Regenerate the example units in this folder from the renderer `voicemodectl daemon install` uses.

The checked-in files are what a distribution package would ship (voicemoded in /usr/bin); on a
pip/uv/venv install, `voicemodectl daemon install` renders the same units for that install instead.
Run `python packaging/render.py` after changing voicemodectl/service_manager.py; a test fails on drift.
"""

from __future__ import annotations

import sys
from pathlib import Path

from voicemodectl.service_manager import Install, render_launchd, render_systemd

HERE = Path(__file__).resolve().parent
DISTRO = Install(
    command=("/usr/bin/voicemoded",), user="voicemode", group="voicemode", uid=1000,
    path="/usr/local/bin:/usr/bin:/bin",
)  # fmt: skip
MAC = Install(
    command=("/usr/local/bin/voicemoded",), user="you", group="staff", uid=501,
    path="/usr/local/bin:/opt/homebrew/bin:/usr/bin:/bin",
)  # fmt: skip


def examples() -> dict[Path, bytes]:
    return {
        HERE / "systemd" / "user" / "voicemoded.service": render_systemd(DISTRO, system=False).encode(),
        HERE / "systemd" / "system" / "voicemoded.service": render_systemd(DISTRO, system=True).encode(),
        HERE / "launchd" / "com.voicemode.voicemoded.plist": render_launchd(MAC, Path("/Users/you")),
    }


def main() -> int:
    for path, content in examples().items():
        path.write_bytes(content)
        print(f"wrote {path.relative_to(HERE.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
