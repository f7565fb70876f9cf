#!/usr/bin/env bash
# Installs everything voicemode needs on a Debian/Ubuntu machine: system packages through apt (PortAudio,
# PulseAudio for virtual devices when there is no sound card, systemd-analyze to check the units, Redis for
# LiveKit's multi-node mode, Chromium for the web door's browser tests) and the Python packages in ./.venv.
# Safe to run again: it skips what is already there. Used by scripts/demo.sh and scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
EXTRAS=${VOICEMODE_EXTRAS:-engines,kokoro,japanese,whisper-base,web,dev}

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

need_apt=()
for pkg in portaudio19-dev pulseaudio pulseaudio-utils libasound2-plugins systemd espeak-ng redis-server \
    chromium chromium-driver; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
"$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1 || need_apt+=(python3-venv)
command -v gcc >/dev/null 2>&1 || need_apt+=(gcc)
[ -f "$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')/Python.h" ] || need_apt+=(python3-dev)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing system packages: ${need_apt[*]}"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
  echo "setup: voicemode needs Python 3.11 or newer (found $("$PYTHON" --version)); set PYTHON=python3.12 or similar" >&2
  exit 1
}

stamp=.venv/.voicemode-installed
# The end-of-turn model (smart-turn v3) ships inside pipecat-ai; only that package's files are wanted,
# not the framework's dependencies, so it is installed on its own with --no-deps.
TURN_MODEL_PACKAGE=pipecat-ai==1.14.0
want="$(cat pyproject.toml | sha256sum | cut -c1-16) $EXTRAS $TURN_MODEL_PACKAGE"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing Python packages into .venv (extras: $EXTRAS)"
  .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
  .venv/bin/python -m pip install -q --disable-pip-version-check -e ".[$EXTRAS]"
  .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps "$TURN_MODEL_PACKAGE"
  echo "$want" > "$stamp"
fi

# The MCP door is also checked with other clients than the Python SDK: the MCP Inspector's CLI and Claude
# Code's `claude mcp list`. Both come from npm and run offline; they live in a cache outside the clone.
NODE_TOOLS=${VOICEMODE_NODE_TOOLS:-$HOME/.cache/voicemode-node-tools}
NODE_PACKAGES="@modelcontextprotocol/inspector-cli@1.0.3 @anthropic-ai/claude-code@2.1.328"
if command -v npm >/dev/null 2>&1; then
  if [ "$(cat "$NODE_TOOLS/.voicemode-installed" 2>/dev/null)" != "$NODE_PACKAGES" ]; then
    echo "setup: installing the MCP test clients from npm into $NODE_TOOLS"
    mkdir -p "$NODE_TOOLS"
    # shellcheck disable=SC2086
    npm install -s --no-audit --no-fund --prefix "$NODE_TOOLS" $NODE_PACKAGES >/dev/null
    echo "$NODE_PACKAGES" > "$NODE_TOOLS/.voicemode-installed"
  fi
fi

# The web door's page: TypeScript in web/, bundled from its lockfile into voicemode_web/static/ (which the
# package ships, so running the door needs no Node). Rebuilt only when a source or the lockfile changed.
if [ -f web/package-lock.json ]; then
  if ! command -v npm >/dev/null 2>&1; then
    echo "setup: npm is missing, so the web page is not built (install nodejs and npm, then run this again)" >&2
  else
    web_want=$(cat web/package-lock.json web/package.json web/tsconfig.json $(find web/src -type f | sort) | sha256sum | cut -c1-16)
    if [ "$(cat voicemode_web/static/.built 2>/dev/null)" != "$web_want" ]; then
      echo "setup: building the web page (npm ci, then the bundler)"
      (cd web && npm ci -s --no-audit --no-fund >/dev/null && npm run -s build)
      echo "$web_want" > voicemode_web/static/.built
    fi
  fi
fi

# LiveKit rooms need a livekit-server: LiveKit's own Go program, built once at the pinned release with
# `go install` into a cache outside the clone. Skipped when one is already built or on PATH; without Go the
# rest of voicemode works and the room tests say why they skip. VOICEMODE_GO names another Go toolchain.
LIVEKIT_VERSION=$(.venv/bin/python -c 'from voicemoded.livekit.binary import PINNED_VERSION; print(PINNED_VERSION)')
LIVEKIT_PACKAGE=$(.venv/bin/python -c 'from voicemoded.livekit.binary import GO_PACKAGE; print(GO_PACKAGE)')
livekit_dir="${VOICEMODE_LIVEKIT_CACHE:-$HOME/.cache/voicemode-livekit}/$LIVEKIT_VERSION"
GO=${VOICEMODE_GO:-$(command -v go || echo /usr/local/go/bin/go)}  # else where the go.dev archive puts it
if [ -x "$livekit_dir/livekit-server" ] || command -v livekit-server >/dev/null 2>&1; then
  :
elif [ -x "$livekit_dir/server" ]; then
  mv "$livekit_dir/server" "$livekit_dir/livekit-server"  # the name `go install` gave it
elif [ -x "$GO" ]; then
  echo "setup: building livekit-server $LIVEKIT_VERSION with Go into $livekit_dir (once; a few minutes)"
  mkdir -p "$livekit_dir"
  build=$(mktemp -d "$livekit_dir/.build-XXXXXX")
  if GOBIN="$build" "$GO" install "$LIVEKIT_PACKAGE@$LIVEKIT_VERSION"; then
    mv "$build/server" "$livekit_dir/livekit-server"
  else
    echo "setup: building livekit-server failed (see above); LiveKit rooms stay unavailable" >&2
  fi
  rm -rf "$build"
else
  echo "setup: LiveKit rooms need Go >= 1.26 (to build livekit-server) or a livekit-server on PATH; skipped"
fi
