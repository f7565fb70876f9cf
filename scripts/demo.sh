#!/usr/bin/env bash
# The main job, from a fresh machine: install what is needed, start voicemoded, and show its status.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"

voicemodectl daemon start
voicemodectl status
