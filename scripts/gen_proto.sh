#!/usr/bin/env bash
# Regenerate caffelite/proto/caffelite_pb2.py from proto/caffelite.proto.
# Use protoc from grpcio-tools 1.68 (protobuf 5.28 gencode): that module imports under every
# protobuf from 5.28.1 to 7.x, the range pyproject.toml allows. Newer grpcio-tools emit gencode
# that refuses older runtimes.
#   python -m venv /tmp/protoc && /tmp/protoc/bin/pip install grpcio-tools==1.68.1
#   PYTHON=/tmp/protoc/bin/python scripts/gen_proto.sh
set -euo pipefail
cd "$(dirname "$0")/.."
"${PYTHON:-python}" -m grpc_tools.protoc -Iproto --python_out=caffelite/proto proto/caffelite.proto
echo "wrote caffelite/proto/caffelite_pb2.py"
