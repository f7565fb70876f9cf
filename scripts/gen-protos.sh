#!/usr/bin/env bash
# Regenerates voicemoded/api/v1/*_pb2.py, *_pb2_grpc.py and *.pyi from proto/voicemode/v1/*.proto, and the
# API's descriptor set proto/voicemode.v1.txtpb, after refusing a breaking change (scripts/proto_compat.py).
# `scripts/gen-protos.sh --check` regenerates into a temp folder and fails when the checked-in files differ,
# when proto/ breaks the committed descriptor set, or when that set is out of date.
# `scripts/gen-protos.sh --accept-breaking` records a breaking change on purpose (see proto/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] && PY=${PYTHON:-.venv/bin/python}

out=voicemoded/api/v1
check=0
compat=(--write)
case "${1:-}" in
  --check) check=1; compat=(--check) ;;
  --accept-breaking) compat=(--write --accept-breaking) ;;
  "") ;;
  *) echo "usage: scripts/gen-protos.sh [--check | --accept-breaking]" >&2; exit 2 ;;
esac

# The compatibility check comes first: a breaking change regenerates nothing.
"$PY" scripts/proto_compat.py "${compat[@]}"

if [ "$check" = 1 ]; then
  out=$(mktemp -d)
  trap 'rm -rf "$out"' EXIT
fi
mkdir -p "$out"

# The mypy plugin reports each file it writes on stderr; keep the output for failures only.
if ! log=$(PATH="$(dirname "$PY"):$PATH" "$PY" -m grpc_tools.protoc -I proto \
  --python_out="$out" --grpc_python_out="$out" --mypy_out="$out" --mypy_grpc_out="$out" \
  proto/voicemode/v1/*.proto 2>&1); then
  echo "$log" >&2
  exit 1
fi

# protoc mirrors the proto package (voicemode/v1/...); the stubs live in voicemoded.api.v1.
if [ -d "$out/voicemode/v1" ]; then
  mv "$out"/voicemode/v1/* "$out"/
  rm -rf "$out/voicemode"
fi
sed -i -e 's/^from voicemode\.v1 import/from voicemoded.api.v1 import/' \
       -e 's/^import voicemode\.v1\.\([a-z_]*\)_pb2$/import voicemoded.api.v1.\1_pb2/' \
       -e 's/\bvoicemode\.v1\.\([a-z_]*\)_pb2\b/voicemoded.api.v1.\1_pb2/g' "$out"/*.py "$out"/*.pyi
touch "$out/__init__.py"

if [ "$check" = 1 ]; then
  if ! diff -r -q -x __pycache__ "$out" voicemoded/api/v1; then
    echo "generated API code is out of date: run scripts/gen-protos.sh and commit the result" >&2
    exit 1
  fi
  echo "generated API code and descriptor set are up to date"
fi
