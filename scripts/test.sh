#!/usr/bin/env bash
# Quick start, command 2: install everything the tests need, then run the whole suite:
# C++ unit tests (plain, and ASan+UBSan), lint and types, and pytest (real redis-server,
# real Celery workers). CI runs exactly this (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
echo "DMS: system packages (redis-server, a C++20 compiler, ...)"
bash scripts/install-system-deps.sh test
[[ -x .venv/bin/python ]] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
echo "DMS: building and installing DMS (its native core is C++20 and Cython: a few minutes on a"
echo "     small machine, with no output meanwhile)"
start=$SECONDS
.venv/bin/python -m pip install -q -e ".[test]"
echo "DMS: installed in $((SECONDS - start)) s"

echo "== C++ unit tests"
cmake -S dms/native/tests -B build/native -DCMAKE_BUILD_TYPE= >/dev/null
cmake --build build/native -j"$(nproc)" >/dev/null
ctest --test-dir build/native --output-on-failure
echo "== C++ unit tests under AddressSanitizer + UndefinedBehaviorSanitizer"
cmake -S dms/native/tests -B build/native-asan -DDMS_SANITIZE=ON >/dev/null
cmake --build build/native-asan -j"$(nproc)" >/dev/null
ctest --test-dir build/native-asan --output-on-failure

echo "== libFuzzer on the data receiver (30 s, ASan + UBSan; the corpus is replayed by ctest above)"
bash scripts/fuzz.sh 30

echo "== ruff and mypy"
.venv/bin/ruff check dms tests benchmarks scripts celeryconfig.py setup.py
.venv/bin/ruff format --check dms tests benchmarks scripts celeryconfig.py setup.py
.venv/bin/mypy

echo "== pytest"
.venv/bin/python -m pytest "$@"
