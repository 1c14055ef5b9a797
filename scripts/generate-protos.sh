#!/usr/bin/env bash
# Regenerate the Python code of the project's own protos: protos/**/*.proto -> egress_xds/**/*_pb2.py, *_pb2.pyi
# and *_pb2_grpc.py (the proto path mirrors the package path, so generated imports are package imports).
#
#   ./scripts/generate-protos.sh              regenerate in place (commit the result)
#   ./scripts/generate-protos.sh OUTPUT_DIR   write the files under OUTPUT_DIR instead (what the staleness test does)
#
# The output embeds the protobuf and gRPC versions of the generator (and checks them at import time), so the
# script insists on the grpcio-tools version pinned in pyproject.toml's `test` extra. `PYTHON` selects the
# interpreter (default: python3). tests/admin/test_generated_code.py fails when the committed files are stale.
set -euo pipefail
cd "$(dirname "$0")/.."

GRPCIO_TOOLS_VERSION="1.85.1"
PYTHON="${PYTHON:-python3}"
out="${1:-.}"

installed="$("$PYTHON" -c 'import importlib.metadata as m; print(m.version("grpcio-tools"))' 2>/dev/null || true)"
if [ "$installed" != "$GRPCIO_TOOLS_VERSION" ]; then
    echo "error: needs grpcio-tools==$GRPCIO_TOOLS_VERSION (found: ${installed:-none}); pip install -e '.[test]'" >&2
    exit 1
fi

mkdir -p "$out"
find protos -name '*.proto' -print0 | sort -z | xargs -0 "$PYTHON" -m grpc_tools.protoc \
    --proto_path=protos --python_out="$out" --pyi_out="$out" --grpc_python_out="$out"
