#!/usr/bin/env bash
# The main job, from a fresh machine: install what is needed, then hold one spoken turn with the
# embedded offline engines. With no sound card, virtual devices stand in and a scripted person answers.
# Arguments go to the demo (see `scripts/demo.sh --help`), e.g. --answer my-answer.wav or --real.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/python -m voicemoded.testing.demo "$@"
