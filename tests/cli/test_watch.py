"""Live progress: the terminal display driven in a real pty, and the plain and JSON forms."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from dms.model import SyncParams
from tests.services import RedisServer


def watched_request(tmp_path: Path, held_request: Any) -> SyncParams:
    """A planned request of 60 files whose transfers wait until the test starts a data worker."""
    src = tmp_path / "src"
    src.mkdir()
    for i in range(60):
        (src / f"f{i}").write_bytes(os.urandom(200_000))
    params, _ = held_request(src, tmp_path / "dst", "watch", parallelism=1, unit_max_files=5)
    return params  # type: ignore[no-any-return]


def read_until_exit(fd: int, proc: subprocess.Popen[bytes], timeout: float = 120) -> str:
    chunks = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                data = os.read(fd, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    return b"".join(chunks).decode(errors="replace")


def test_watch_on_a_terminal_redraws_a_live_block(
    tmp_path: Path, start_worker: Any, held_request: Any, redis_server: RedisServer
) -> None:
    params = watched_request(tmp_path, held_request)
    master, slave = pty.openpty()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("DMS_")}, **redis_server.env(), "TERM": "xterm"}
    proc = subprocess.Popen([sys.executable, "-m", "dms.cli", "watch", params.request_id], stdin=slave, stdout=slave,
                            stderr=slave, env=env, close_fds=True)  # fmt: skip
    os.close(slave)
    time.sleep(1.0)  # let it draw the waiting state before any transfer starts
    start_worker(params.data_queue)
    screen = read_until_exit(master, proc)
    proc.wait(timeout=30)
    os.close(master)
    assert proc.returncode == 0, screen
    assert "TRANSFERRING" in screen and "SUCCEEDED" in screen
    assert "\x1b[3F" in screen  # the block is redrawn in place, not appended
    assert "ETA" in screen and "files 60/60 done, 0 failed" in screen and "100.0%" in screen


def test_watch_without_a_terminal_prints_plain_lines_and_json(
    tmp_path: Path, start_worker: Any, held_request: Any, redis_server: RedisServer
) -> None:
    params = watched_request(tmp_path, held_request)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("DMS_")}, **redis_server.env()}
    cmd = [sys.executable, "-m", "dms.cli", "watch", params.request_id, "--interval", "0.2"]
    plain = subprocess.Popen(cmd, stdout=subprocess.PIPE, env=env, text=True)
    as_json = subprocess.Popen([*cmd, "--json"], stdout=subprocess.PIPE, env=env, text=True)
    time.sleep(1.0)
    start_worker(params.data_queue)
    plain_out, _ = plain.communicate(timeout=120)
    json_out, _ = as_json.communicate(timeout=120)
    assert plain.returncode == 0 and as_json.returncode == 0
    lines = plain_out.strip().splitlines()
    assert "\x1b" not in plain_out and len(lines) >= 2
    assert f"request={params.request_id} state=TRANSFERRING" in lines[0] and "state=SUCCEEDED" in lines[-1]
    assert "files=60/60 failed=0" in lines[-1]
    snapshots = [json.loads(line) for line in json_out.strip().splitlines()]
    assert snapshots[0]["state"] == "TRANSFERRING" and snapshots[-1]["state"] == "SUCCEEDED"
    assert snapshots[-1]["bytes_done"] == snapshots[-1]["bytes_total"] == 60 * 200_000
    assert snapshots[-1]["fraction"] == 1.0
    done = [s["bytes_done"] for s in snapshots]
    assert done == sorted(done)  # progress never goes backwards
