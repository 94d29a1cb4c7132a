#!/usr/bin/env bash
# Quick start, command 1: install DMS into .venv and run a real sync of a sample tree.
# Embedded mode: a private redis-server and worker are started for the sync and stopped after.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "DMS: system packages (redis-server, a C++20 compiler, ...)"
bash scripts/install-system-deps.sh runtime
[[ -x .venv/bin/python ]] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
echo "DMS: building and installing DMS (its native core is C++20 and Cython: a few minutes on a"
echo "     small machine, with no output meanwhile)"
start=$SECONDS
.venv/bin/python -m pip install -q .
echo "DMS: installed in $((SECONDS - start)) s"

demo=${DMS_DEMO_DIR:-$(mktemp -d /tmp/dms-demo-XXXXXX)}
rm -rf "$demo/dst"
.venv/bin/python scripts/make_sample_tree.py "$demo/src"
echo "DMS: syncing $demo/src -> $demo/dst"
.venv/bin/dms-submit sync "$demo/src" "$demo/dst" --wait
diff -r "$demo/src" "$demo/dst" && echo "DMS: the copy is identical. Try: .venv/bin/dms-submit list"
