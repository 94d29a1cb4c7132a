"""dms-submit as a user runs it: a real subprocess, real exit codes, real embedded services."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.services import RedisServer, processes_mentioning
from tests.trees import MIB, assert_same_tree, build_edge_tree, write_unique

CLI = [sys.executable, "-m", "dms.cli"]


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("DMS_")}
    return subprocess.run([*CLI, *args], env={**base, **(env or {})}, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)  # fmt: skip


@pytest.fixture
def home(tmp_path: Path) -> dict[str, str]:
    """A private embedded state directory for one test."""
    return {"DMS_HOME": str(tmp_path / "home")}


def test_missing_source_exits_3(tmp_path: Path, home: dict[str, str]) -> None:
    r = run_cli("sync", str(tmp_path / "nope"), str(tmp_path / "dst"), "--wait", env=home)
    assert r.returncode == 3, r.stderr
    assert "does not exist" in r.stderr and r.stderr.count("\n") == 1


def test_destination_inside_source_exits_3(tmp_path: Path, home: dict[str, str]) -> None:
    (tmp_path / "src").mkdir()
    r = run_cli("sync", str(tmp_path / "src"), str(tmp_path / "src" / "copy"), env=home)
    assert r.returncode == 3 and "inside the source" in r.stderr


def test_unreadable_config_exits_4(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    r = run_cli("--config", str(tmp_path / "missing.yml"), "sync", str(tmp_path / "src"), str(tmp_path / "d"))
    assert r.returncode == 4 and "cannot read the configuration" in r.stderr
    bad = tmp_path / "bad.yml"
    bad.write_text("control:\n  broker_url: 42\n")
    r = run_cli("sync", str(tmp_path / "src"), str(tmp_path / "d"), env={"DMS_CONFIG": str(bad)})
    assert r.returncode == 4 and "control.broker_url" in r.stderr


def test_unreachable_broker_exits_5(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    r = run_cli("--broker", "redis://127.0.0.1:1/0", "sync", str(tmp_path / "src"), str(tmp_path / "d"))
    assert r.returncode == 5 and "cannot reach the DMS Redis" in r.stderr


def test_missing_redis_server_in_embedded_mode_exits_6_with_install_hint(tmp_path: Path, home: dict[str, str]) -> None:
    (tmp_path / "src").mkdir()
    r = run_cli("sync", str(tmp_path / "src"), str(tmp_path / "d"), "--wait", env={**home, "PATH": str(tmp_path)})
    assert r.returncode == 6 and "apt-get install redis-server" in r.stderr


def test_bad_option_values_are_usage_errors(tmp_path: Path) -> None:
    r = run_cli("sync", str(tmp_path), str(tmp_path / "d"), "--chunk-size", "lots")
    assert r.returncode == 2 and "not a size" in r.stderr


def test_unknown_request_exits_7(redis_server: RedisServer) -> None:
    r = run_cli("status", "no-such-request", env=redis_server.env())
    assert r.returncode == 7 and "no such request" in r.stderr


def test_embedded_sync_copies_reports_and_leaves_nothing_running(tmp_path: Path, home: dict[str, str]) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    build_edge_tree(src, chunk_size=MIB, small_files=300)
    r = run_cli("sync", str(src), str(dst), "--wait", "--id", "embedded-1", "--chunk-size", "1MiB", env=home)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCEEDED" in r.stdout and "306 done, 0 failed, 306 total" in r.stdout
    assert_same_tree(src, dst)
    assert processes_mentioning(home["DMS_HOME"]) == []  # no redis-server, no worker left behind
    status = run_cli("status", "embedded-1", "--json", env=home)
    assert status.returncode == 0, status.stderr
    record = json.loads(status.stdout)
    assert record["state"] == "SUCCEEDED" and record["files_done"] == 306
    listing = run_cli("list", env=home)
    assert listing.returncode == 0 and "embedded-1" in listing.stdout
    assert processes_mentioning(home["DMS_HOME"]) == []
    # The worker was killed once the request was settled: the next embedded sync starts clean
    # (whatever Celery had not acked is dropped), and the first request stays SUCCEEDED.
    again = run_cli("sync", str(src), str(tmp_path / "dst2"), "--wait", "--id", "embedded-2", env=home)
    assert again.returncode == 0, again.stdout + again.stderr
    assert_same_tree(src, tmp_path / "dst2")
    first = json.loads(run_cli("status", "embedded-1", "--json", env=home).stdout)
    assert first["state"] == "SUCCEEDED" and not first.get("error")
    assert processes_mentioning(home["DMS_HOME"]) == []


def test_version_is_one_line_as_rsync_prints_it_first(home: dict[str, str]) -> None:
    from importlib.metadata import version

    r = run_cli("--version", env=home)
    assert r.returncode == 0 and r.stdout == f"dms-submit {version('dms')}\n", r.stdout + r.stderr


def test_failed_request_exits_23_and_status_lists_the_file(tmp_path: Path, home: dict[str, str]) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "ok").write_text("fine")
    (src / "secret").write_text("no")
    dst = tmp_path / "dst"
    dst.mkdir()
    (dst / "secret").mkdir()  # a directory where the file must go: publishing it fails
    (dst / "secret" / "keep").write_text("x")
    r = run_cli("sync", str(src), str(dst), "--wait", "--id", "fails-1", env=home)
    assert r.returncode == 23, r.stdout + r.stderr  # rsync's "partial transfer due to error"
    assert "request=fails-1 state=" in r.stderr and "state=FAILED" in r.stderr, r.stderr  # no terminal: lines
    assert json.loads(run_cli("status", "fails-1", "--json", env=home).stdout)["end_reason"] == "files"
    assert "FAILED" in r.stdout and "secret" in r.stdout
    assert (dst / "ok").read_text() == "fine"
    status = run_cli("status", "fails-1", "--files", env=home)
    assert "secret" in status.stdout and "publish failed" in status.stdout


@pytest.mark.slow
def test_one_gib_mixed_tree_embedded(tmp_path: Path, home: dict[str, str]) -> None:
    """The foundation's acceptance case: about 1 GiB of mixed sizes, copied identically."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    for i in range(3):
        (src / "large").mkdir(parents=True, exist_ok=True)
        write_unique(src / "large" / f"part{i}.bin", 256 * MIB + i * 4097, 100 + i)
    for i in range(200):
        (src / "medium" / f"m{i % 10}").mkdir(parents=True, exist_ok=True)
        write_unique(src / "medium" / f"m{i % 10}" / f"file {i}", MIB + i, 1000 + i)
    build_edge_tree(src / "small", chunk_size=MIB, small_files=3000)
    total = sum(p.stat().st_size for p in src.rglob("*") if p.is_file())
    assert total > 0.95 * 1024 * MIB
    r = run_cli("sync", str(src), str(dst), "--wait", "--id", "gib", "--json", env=home, timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    record: dict[str, Any] = json.loads(r.stdout)
    assert record["bytes_done"] == record["bytes_total"] == total
    assert_same_tree(src, dst)
    assert processes_mentioning(home["DMS_HOME"]) == []


def test_embedded_start_ends_interrupted_requests_instead_of_running_them(tmp_path: Path, home: dict[str, str]) -> None:
    from celery import Celery

    from dms.client.embedded import EmbeddedService
    from dms.client.submit import submit
    from dms.model import SyncParams
    from dms.state.requests import RequestStore, connect
    from dms.worker.celery_settings import configure

    old_src, new_src = tmp_path / "old", tmp_path / "new"
    old_src.mkdir()
    new_src.mkdir()
    (old_src / "f").write_text("old")
    (new_src / "g").write_text("new")
    os.environ["DMS_HOME"] = home["DMS_HOME"]
    try:
        with EmbeddedService() as service:  # no worker: the request stays queued, as after a Ctrl-C
            # a private app: the shared one keeps its broker connection pool for the session
            app = Celery("interrupted-test", broker=service.broker_url)
            configure(app)
            app.conf.broker_url = service.broker_url
            store = RequestStore(connect(service.state_url))
            submit(app, store, SyncParams("interrupted-1", str(old_src), str(tmp_path / "old-dst")))
            app.pool.force_close_all()
    finally:
        del os.environ["DMS_HOME"]
    r = run_cli("sync", str(new_src), str(tmp_path / "new-dst"), "--wait", env=home)
    assert r.returncode == 0, r.stdout + r.stderr
    status = run_cli("status", "interrupted-1", "--json", env=home)
    record = json.loads(status.stdout)
    assert record["state"] == "FAILED" and "interrupted" in record["error"] and "resume" in record["error"]
    assert not (tmp_path / "old-dst").exists()  # its queued plan never ran
    r = run_cli("resume", "interrupted-1", "--wait", env=home)  # as the error message says
    assert r.returncode == 0, r.stdout + r.stderr
    assert (tmp_path / "old-dst" / "f").read_text() == "old"


def test_cancel_stops_a_large_transfer_and_leaves_no_staging(
    tmp_path: Path, redis_server: RedisServer, worker: Any, dms_app: Any, store: Any
) -> None:
    import time

    from dms.client.submit import submit, wait
    from dms.model import SyncParams

    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    for i in range(3):  # sparse: cheap to create, and still 3 GiB to move
        with open(src / f"big{i}", "wb") as f:
            f.truncate(1024 * MIB)
    big = SyncParams("cancel-big-" + str(os.getpid()), str(src), str(dst), parallelism=1, chunk_size=256 * MIB,
                     unit_bytes=256 * MIB, fsync=False)  # fmt: skip
    submit(dms_app, store, big)
    small_src = tmp_path / "small"
    small_src.mkdir()
    (small_src / "note").write_text("small and urgent")
    small = SyncParams("cancel-small-" + str(os.getpid()), str(small_src), str(tmp_path / "small-dst"))
    submit(dms_app, store, small)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (store.get(big.request_id) or {}).get("bytes_inflight"):
        time.sleep(0.02)  # until the first slice of a big unit has moved
    r = run_cli("cancel", big.request_id, "--wait", env=redis_server.env(), timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    info = store.get(big.request_id)
    assert info["state"] == "CANCELLED" and info["bytes_done"] < info["bytes_total"]
    assert info["end_reason"] == "cancelled", info
    watched = run_cli("watch", big.request_id, "--plain", env=redis_server.env(), timeout=60)
    assert watched.returncode == 20, watched.stdout + watched.stderr  # rsync's code for an interrupted run
    assert [p for p in dst.rglob("*") if p.is_file()] == []  # neither staging nor published files
    assert wait(store, small.request_id, timeout=60)["state"] == "SUCCEEDED"
    assert (tmp_path / "small-dst" / "note").read_text() == "small and urgent"
    again = run_cli("cancel", big.request_id, env=redis_server.env())
    assert again.returncode == 0 and "already ended: CANCELLED" in again.stdout
    as_json = run_cli("cancel", big.request_id, "--json", env=redis_server.env())
    record = json.loads(as_json.stdout)
    assert as_json.returncode == 0 and record["request_id"] == big.request_id and record["state"] == "CANCELLED"


def test_json_output_covers_errors_too(tmp_path: Path, redis_server: RedisServer, home: dict[str, str]) -> None:
    """With --json, a script parses every outcome: an error is one JSON object on stdout
    (error, kind, exit_code) besides its line on stderr, and the exit code is the same."""
    for command in ("cancel", "resume", "status", "logs", "watch"):
        r = run_cli(command, "no-such-request", "--json", env=redis_server.env(), timeout=60)
        record = json.loads(r.stdout)
        assert r.returncode == 7 and record["exit_code"] == 7 and record["kind"] == "RequestError", (command, r)
        assert "no-such-request" in record["error"] and "no-such-request" in r.stderr, (command, r)
    missing = run_cli("sync", str(tmp_path / "nope"), str(tmp_path / "dst"), "--json", env=home)
    record = json.loads(missing.stdout)
    assert missing.returncode == 3 and record["exit_code"] == 3 and "does not exist" in record["error"], missing
    down = run_cli("list", "--json", env={"DMS_BROKER_URL": "redis://127.0.0.1:1/0"})
    assert down.returncode == 5 and json.loads(down.stdout)["kind"] == "BrokerUnavailable", down


def test_python_api_sync_runs_embedded_when_nothing_is_configured(tmp_path: Path, home: dict[str, str]) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a").write_text("api")
    src, dst = str(tmp_path / "src"), str(tmp_path / "dst")
    code = f"import dms; s = dms.sync({src!r}, {dst!r}); print(s['state'], s['files_done'])"
    base = {k: v for k, v in os.environ.items() if not k.startswith("DMS_")}
    r = subprocess.run([sys.executable, "-c", code], env={**base, **home}, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "SUCCEEDED 1" and (tmp_path / "dst" / "a").read_text() == "api"
    assert processes_mentioning(home["DMS_HOME"]) == []


def test_logs_list_filters_and_retention(tmp_path: Path, redis_server: RedisServer, dms_app: Any, store: Any,
                                         worker: Any) -> None:  # fmt: skip
    from dms.client.submit import submit, wait
    from dms.model import SyncParams

    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "one").write_text("1")
    rid = f"logs-{os.getpid()}"
    submit(dms_app, store, SyncParams(rid, str(tmp_path / "src"), str(tmp_path / "dst")))
    assert wait(store, rid, timeout=60)["state"] == "SUCCEEDED"
    env = redis_server.env()
    r = run_cli("logs", rid, env=env)
    assert r.returncode == 0, r.stderr
    events = [line.split()[3] for line in r.stdout.splitlines()]
    assert events == ["submitted", "planning", "planned", "unit", "finalizing", "ended"]
    assert "state=SUCCEEDED" in r.stdout.splitlines()[-1]
    as_json = [json.loads(line) for line in run_cli("logs", rid, "--json", env=env).stdout.splitlines()]
    assert as_json[2]["event"] == "planned" and as_json[2]["files"] == 1
    assert rid in run_cli("list", "--since", "10m", "--state", "succeeded", env=env).stdout
    assert rid not in run_cli("list", "--state", "FAILED", env=env).stdout
    assert run_cli("list", "--since", "soon", env=env).returncode == 2
    # an ended request keeps its record and log only for the retention period
    assert 0 < store.r.ttl(f"dms:req:{rid}:events") <= 7 * 24 * 3600
    assert run_cli("logs", "no-such-request", env=env).returncode == 7


@pytest.mark.parametrize("light", ["1", "0"], ids=["dms.state.resp", "redis-py+kombu"])
def test_service_sync_and_status_over_either_client(tmp_path: Path, redis_server: RedisServer, worker: Any,
                                                    light: str) -> None:  # fmt: skip
    """`dms-submit` against a running service, with its light client (decision 0018) and with
    redis-py and kombu (DMS_LIGHT_CLIENT=0): the same request, the same answers."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    build_edge_tree(src, chunk_size=MIB, small_files=40)
    env = {**redis_server.env(), "DMS_LIGHT_CLIENT": light}
    rid = f"either-{light}-{os.getpid()}"
    r = run_cli("sync", str(src), str(dst), "--wait", "--json", "--id", rid, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["state"] == "SUCCEEDED" and result["files_done"] > 40
    assert_same_tree(src, dst)
    again = run_cli("sync", str(src), str(dst), "--wait", "--json", env=env, timeout=120)
    assert again.returncode == 0 and json.loads(again.stdout)["files_uptodate"] == result["files_done"]
    status = run_cli("status", rid, "--json", env=env)
    assert status.returncode == 0 and json.loads(status.stdout)["state"] == "SUCCEEDED"
    taken = run_cli("sync", str(src), str(dst), "--id", rid, env=env)
    assert taken.returncode == 7 and "already in use" in taken.stderr


def _embedded_worker_running(home: str) -> bool:
    return any("celery" in line for line in processes_mentioning(home))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGKILL], ids=["TERM", "HUP", "KILL"])
def test_a_signalled_or_killed_embedded_sync_leaves_nothing_running(
    tmp_path: Path, home: dict[str, str], sig: signal.Signals
) -> None:
    """dms-submit ended by a signal, SIGKILL included, leaves no redis-server and no worker of
    its own running (they die with it), and the next embedded sync runs."""
    src = tmp_path / "src"
    for d in range(20):
        (src / f"d{d}").mkdir(parents=True)
        for f in range(100):
            write_unique(src / f"d{d}" / f"f{f}", 64 * 1024, d * 100 + f)
    base = {k: v for k, v in os.environ.items() if not k.startswith("DMS_")}
    proc = subprocess.Popen([*CLI, "sync", str(src), str(tmp_path / "dst"), "--wait"], env={**base, **home},
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    deadline = time.monotonic() + 60
    while not _embedded_worker_running(home["DMS_HOME"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the sync ended before it could be signalled: give it a larger tree"
    os.kill(proc.pid, sig)
    proc.communicate(timeout=60)
    if sig != signal.SIGKILL:
        assert proc.returncode == 128 + sig, proc.returncode

    deadline = time.monotonic() + 20
    while processes_mentioning(home["DMS_HOME"]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_mentioning(home["DMS_HOME"]) == []  # redis-server and worker (their cwd is its state dir)
    r = run_cli("sync", str(src), str(tmp_path / "again"), "--wait", env=home)
    assert r.returncode == 0, r.stdout + r.stderr
    assert_same_tree(src, tmp_path / "again")


def test_the_next_embedded_run_reaps_what_a_killed_one_left_and_nothing_else(
    tmp_path: Path, home: dict[str, str]
) -> None:
    """Processes recorded by a run that could not stop them (here: stand-ins that ignore
    their parent's death) are killed by the next run; a recorded pid whose start time does
    not match (the pid was reused by another process) is left alone."""
    from dms.client.processes import start_time

    state = Path(home["DMS_HOME"]) / "embedded"
    state.mkdir(parents=True)
    left = subprocess.Popen(["sleep", "300"], start_new_session=True)
    other = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        (state / "processes").write_text(
            f"{left.pid} {start_time(left.pid)}\n{other.pid} {start_time(other.pid) + 1}\n"
        )
        (tmp_path / "src").mkdir()
        r = run_cli("sync", str(tmp_path / "src"), str(tmp_path / "dst"), "--wait", env=home)
        assert r.returncode == 0, r.stdout + r.stderr
        assert left.wait(timeout=10) == -signal.SIGTERM
        assert other.poll() is None
    finally:
        for p in (left, other):
            p.kill()
            p.wait()


def test_the_embedded_redis_does_not_carry_a_finished_plan_into_the_next_start(
    tmp_path: Path, home: dict[str, str]
) -> None:
    """The plan of an ended request (shards, units, digests: about 1 MB for 2,000 files) was in
    the append-only file until a rewrite, and every later start replayed it; the record stays."""
    src = tmp_path / "src"
    for d in range(20):
        (src / f"d{d}").mkdir(parents=True)
        for f in range(100):
            (src / f"d{d}" / f"f{f}").write_bytes(os.urandom(512))
    r = run_cli("sync", str(src), str(tmp_path / "dst"), "--wait", "--id", "aof-1", env=home)
    assert r.returncode == 0, r.stdout + r.stderr
    aof = Path(home["DMS_HOME"]) / "embedded" / "appendonlydir"
    assert sum(p.stat().st_size for p in aof.iterdir()) < 64 * 1024
    status = run_cli("status", "aof-1", "--json", env=home)
    assert json.loads(status.stdout)["state"] == "SUCCEEDED"


def test_ctrl_c_while_waiting_says_what_became_of_the_request(tmp_path: Path) -> None:
    """Service mode, a Redis no worker consumes from: `sync --wait` waits; Ctrl-C (SIGINT) ends
    the command with 130 and one line naming the request and how to follow or stop it, not
    a bare "Aborted!"; the request itself is left as it was."""
    (tmp_path / "redis").mkdir()
    server = RedisServer(tmp_path / "redis").start()
    try:
        env = server.env()
        src = tmp_path / "src"
        src.mkdir()
        (src / "f").write_text("x")
        rid = f"ctrl-c-{os.getpid()}"
        base = {k: v for k, v in os.environ.items() if not k.startswith("DMS_")}
        proc = subprocess.Popen([*CLI, "sync", str(src), str(tmp_path / "dst"), "--wait", "--id", rid],
                                env={**base, **env}, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)  # fmt: skip
        deadline = time.monotonic() + 60
        while run_cli("status", rid, env=env).returncode != 0:  # submitted: now it waits
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.1)
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 130, err
        lines = err.strip().splitlines()  # the progress lines (no terminal), then the one error line
        assert lines[-1] == (f"Error: interrupted: request {rid} keeps running; follow it with "
                             f"`dms-submit watch {rid}`, stop it with `dms-submit cancel {rid}`"), err  # fmt: skip
        assert all(f"request={rid} state=PENDING" in line for line in lines[:-1]), err
        assert json.loads(run_cli("status", rid, "--json", env=env).stdout)["state"] == "PENDING"
    finally:
        server.stop()


def test_waiting_on_a_request_no_worker_takes_says_so_and_keeps_waiting(tmp_path: Path) -> None:
    """`sync --wait` against a broker no worker consumes: after DMS_UNTAKEN_SECONDS one
    warning names the queue and how to serve it; the command keeps waiting (a worker may be
    on its way), and the request stays queued, PENDING."""
    from dms.state.requests import RequestStore, connect

    server = RedisServer(tmp_path / "redis")  # its own: no test's worker consumes its queues
    server.directory.mkdir()
    server.start()
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "f").write_text("x")
    base = {k: v for k, v in os.environ.items() if not k.startswith("DMS_")}
    env = {**base, **server.env(), "DMS_UNTAKEN_SECONDS": "1"}
    proc = subprocess.Popen([*CLI, "sync", str(tmp_path / "src"), str(tmp_path / "dst"), "--id", "nobody-home",
                             "--wait"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + 30
        seen = ""
        while "warning" not in seen and time.monotonic() < deadline:
            if select.select([proc.stderr], [], [], 1.0)[0]:  # never blocks past the deadline
                seen += proc.stderr.readline()
        assert "no worker has taken request nobody-home" in seen and "dms.control" in seen, seen
        time.sleep(1)
        assert proc.poll() is None  # still waiting
        assert RequestStore(connect(server.state_url)).get("nobody-home")["state"] == "PENDING"
    finally:
        proc.kill()
        proc.wait()
        server.stop()


def test_check_lists_differences_like_rsync_nci_and_changes_nothing(tmp_path: Path, home: dict[str, str]) -> None:
    """`check SRC DST` (rclone check, rsync -n -c --delete -i): exit 0 when the trees match;
    else the differences as rsync -anci --delete lists them, exit 1; nothing changes."""
    from tests.trees import meta_snapshot

    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "d").mkdir(parents=True)
    for name in ("same", "d/other", "d/gone"):
        (src / name).write_bytes(name.encode() * 1000)
    assert run_cli("sync", str(src), str(dst), env=home).returncode == 0
    same = run_cli("check", str(src), str(dst), env=home)
    assert same.returncode == 0 and same.stdout == "" and "no difference" in same.stderr, same
    other = dst / "d" / "other"
    stamp = other.stat()
    other.write_bytes(b"X" * stamp.st_size)  # same size and mtime, other content: only -c sees it
    os.utime(other, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    (dst / "d" / "gone").unlink()
    (dst / "extra").write_bytes(b"only here")
    before = meta_snapshot(dst)
    differ = run_cli("check", str(src), str(dst), env=home)
    assert differ.returncode == 1 and "3 difference(s)" in differ.stderr, differ
    ours = set(differ.stdout.splitlines())
    rsync = subprocess.run(["rsync", "-anci", "--delete", f"{src}/", f"{dst}/"], capture_output=True, text=True)
    theirs = {line for line in rsync.stdout.splitlines() if line[:1] in "><ch*" and line[1:2] in "fdLDS"}
    assert ours == theirs == {">fc........ d/other", ">f+++++++++ d/gone", "*deleting   extra"}, (ours, theirs)
    assert meta_snapshot(dst) == before
    as_json = run_cli("check", str(src), str(dst), "--json", env=home)
    assert as_json.returncode == 1 and set(json.loads(as_json.stdout)["differences"]) == ours
    missing = run_cli("check", str(tmp_path / "nope"), str(dst), env=home)
    assert missing.returncode == 3, missing
