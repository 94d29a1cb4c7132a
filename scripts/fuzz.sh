#!/usr/bin/env bash
# Fuzz the data receiver's protocol logic with libFuzzer + ASan + UBSan for a fixed time.
#   scripts/fuzz.sh [SECONDS=30]
# Starts from the committed corpus (dms/native/tests/fuzz_corpus, also replayed by ctest) in a
# scratch copy, so CI never rewrites the repository. Fails if the fuzzer finds a crash, a leak,
# undefined behaviour or a timeout; the reproducer is kept in build/fuzz/.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-30}
cxx=$(command -v clang++-14 || command -v clang++ || true)
if [[ -z $cxx ]]; then
    echo "fuzz.sh: clang++ is not installed (apt-get install clang-14); skipping the fuzzing run" >&2
    exit 0
fi
out=build/fuzz
mkdir -p "$out"
rm -rf "$out/corpus" && cp -r dms/native/tests/fuzz_corpus "$out/corpus"
"$cxx" -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -Idms/native/include -Idms/native/third_party/xxhash \
    dms/native/tests/fuzz_receiver.cpp $(ls dms/native/src/*.cpp | grep -v py_errors) \
    -lcrypto -lpthread -o "$out/fuzz_receiver"
rm -rf /tmp/dms-fuzz-root
"$out/fuzz_receiver" "$out/corpus" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="$out/" -print_final_stats=1 2>&1 | tail -n 15
# nothing may be written next to the root
extra=$(find /tmp/dms-fuzz-root -mindepth 1 -maxdepth 1 ! -name inside | head -5)
rm -rf /tmp/dms-fuzz-root
if [[ -n $extra ]]; then
    echo "fuzz.sh: the receiver wrote outside its root: $extra" >&2
    exit 1
fi
