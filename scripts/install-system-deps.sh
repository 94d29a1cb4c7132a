#!/usr/bin/env bash
# Install the Debian/Ubuntu packages DMS needs; skips apt entirely when all are present.
#   install-system-deps.sh runtime   what `pip install .` and a sync need (libssl-dev: HMAC of the data plane)
#   install-system-deps.sh test      plus what the test suite needs (cmake, make, rsync, iproute2, chromium,
#                                    clang-14 + libclang-rt-14-dev for the libFuzzer run)
set -euo pipefail
profile=${1:-runtime}

packages=(g++ redis-server libssl-dev)
python3 -m venv --help >/dev/null 2>&1 || packages+=(python3-venv)
python3 - <<'PY' 2>/dev/null || packages+=(python3-dev)
import os, sys, sysconfig
sys.exit(0 if os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")) else 1)
PY
if [[ $profile == test ]]; then
    packages+=(cmake make rsync iproute2 procps util-linux chromium clang-14 libclang-rt-14-dev)
fi

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

if ! command -v apt-get >/dev/null; then
    echo "DMS: please install these packages with your package manager: ${missing[*]}" >&2
    exit 1
fi
sudo=""
[[ $(id -u) -eq 0 ]] || sudo="sudo"
echo "DMS: installing ${missing[*]}" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
