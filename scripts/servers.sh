#!/usr/bin/env bash
# llama.cpp's OpenAI-compatible server, for the tests that check lmaudit against it. pip compiles llama.cpp
# (5-8 minutes on 2 cores); if that fails the two llama.cpp tests skip and say how to install it.
set -uo pipefail
cd "$(dirname "$0")/.."
if .venv/bin/python -c "import llama_cpp.server" 2>/dev/null; then
  exit 0
fi
CMAKE_BUILD_PARALLEL_LEVEL=2 .venv/bin/python -m pip --disable-pip-version-check -q install \
  -r requirements-servers.txt 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2) \
  || echo "warning: llama-cpp-python did not build; its tests will skip" >&2
