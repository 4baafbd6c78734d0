#!/usr/bin/env bash
# Build llama.cpp's own `llama-server` (continuous batching, --parallel slots) from the llama.cpp sources
# vendored in the llama-cpp-python sdist. Used by `benchmarks/rollouts.py --llama-server PATH`.
# Usage: bash scripts/build_llama_server.sh [OUT_DIR]   (default: ./build/llama-server; about 5 minutes on 2 cores)
# The flags match the README install command: no AVX-512 / AMX kernels (the native build crashes on some Xeons).
set -euo pipefail
out="$(realpath -m "${1:-build/llama-server}")"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
pip download -q --no-deps --no-binary :all: "llama-cpp-python==0.3.36" -d .
tar xzf llama_cpp_python-0.3.36.tar.gz
cd llama_cpp_python-0.3.36/vendor/llama.cpp
cmake -B build -DGGML_NATIVE=OFF -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF \
      -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_CURL=OFF \
      -DBUILD_SHARED_LIBS=OFF -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build --target llama-server -j"$(nproc)" >/dev/null
mkdir -p "$out"
cp build/bin/llama-server "$out/"
echo "built $out/llama-server"
