"""One validation of a request's paths, at every way into DMS: dms-submit, dms.sync(),
dms.sync_signature() and the dms.sync task (what Flower's HTTP API publishes).

Every refused pair is refused before anything is created: the snapshot of the whole
scratch directory (and of the current directory) is the same before and after.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dms.errors import PathError
from tests.conftest import unique_id
from tests.services import RedisServer
from tests.trees import meta_snapshot

CLI = [sys.executable, "-m", "dms.cli"]

#: (label, source, destination) relative to a scratch directory holding src/ (with a file
#: src/f and a directory src/sub), a regular file plain.txt and an empty directory empty/.
REFUSED = [
    ("empty destination", "src", ""),
    ("empty source", "", "dst"),
    ("destination is the source", "src", "src"),
    ("destination inside the source", "src", "src/sub/copy"),
    ("source inside the destination", "src/sub", "src"),
    ("destination under a regular file", "src", "plain.txt/below"),
    ("destination is a regular file", "src", "plain.txt"),
    ("destination in /proc", "src", "/proc/dms-test"),
    ("destination in /sys", "src", "/sys/dms-test"),
    ("destination in /dev", "src", "/dev/dms-test"),
    ("source in /proc", "/proc/self", "dst"),
    ("source is a file", "src/f", "dst"),
    ("source does not exist", "missing", "dst"),
    ("NUL in a path", "src", "dst\0x"),
    ("destination is a dangling symlink", "src", "dangling"),
]


def scratch(tmp_path: Path) -> Path:
    root = tmp_path / "scratch"
    (root / "src" / "sub").mkdir(parents=True)
    (root / "src" / "f").write_text("data")
    (root / "plain.txt").write_text("a file, not a directory")
    (root / "empty").mkdir()
    (root / "cwd").mkdir()
    (root / "cwd" / "precious").write_text("must survive")
    (root / "dangling").symlink_to(root / "nowhere")
    return root


def absolute(root: Path, path: str) -> str:
    return path if path in ("",) or path.startswith("/") else str(root / path)


@pytest.mark.parametrize(("label", "source", "destination"), REFUSED, ids=[c[0] for c in REFUSED])
def test_cli_refuses_with_exit_3_one_line_and_creates_nothing(
    tmp_path: Path, label: str, source: str, destination: str
) -> None:
    root = scratch(tmp_path)
    before = meta_snapshot(root)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DMS_")}
    env["DMS_HOME"] = str(tmp_path / "home")
    args = [*CLI, "sync", absolute(root, source), absolute(root, destination), "--delete", "--wait"]
    if "\0" in destination:  # argv cannot hold a NUL: the API and task cases cover it
        pytest.skip("a command line cannot carry a NUL byte")
    r = subprocess.run(args, cwd=root / "cwd", env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 3, (label, r.returncode, r.stderr)
    assert r.stderr.startswith("Error: ") and r.stderr.count("\n") == 1, r.stderr
    assert "Traceback" not in r.stderr
    assert meta_snapshot(root) == before, f"{label}: something changed"
    assert not (tmp_path / "home").exists(), "the embedded services were started for a refused request"


@pytest.mark.parametrize(("label", "source", "destination"), REFUSED, ids=[c[0] for c in REFUSED])
def test_python_api_and_signature_refuse_before_anything_exists(
    tmp_path: Path, label: str, source: str, destination: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dms

    root = scratch(tmp_path)
    monkeypatch.chdir(root / "cwd")
    monkeypatch.setenv("DMS_HOME", str(tmp_path / "home"))
    before = meta_snapshot(root)
    calls: list[Callable[[], Any]] = [
        lambda: dms.sync(absolute(root, source), absolute(root, destination), delete=True),
        lambda: dms.sync_signature(absolute(root, source), absolute(root, destination), delete=True),
    ]
    for call in calls:
        with pytest.raises(PathError):
            call()
    assert meta_snapshot(root) == before, f"{label}: something changed"
    assert not (tmp_path / "home").exists(), "the embedded services were started for a refused request"


def test_the_sync_task_refuses_before_the_request_exists(
    tmp_path: Path, dms_app: Any, store: Any, worker: Any, redis_server: RedisServer
) -> None:
    """dms.sync as Flower publishes it: the worker refuses the paths; nothing is created."""
    root = scratch(tmp_path)
    before = meta_snapshot(root)
    for label, source, destination in REFUSED:
        rid = unique_id("paths")
        result = dms_app.send_task(
            "dms.sync",
            args=(absolute(root, source), absolute(root, destination)),
            kwargs={"request_id": rid, "delete": True},
            queue="dms.control",
        )
        with pytest.raises(Exception) as caught:  # the task's own exception, rebuilt by Celery
            result.get(timeout=60)
        assert "PathError" in type(caught.value).__name__ or "PathError" in repr(caught.value), (label, caught.value)
        assert store.get(rid) is None, f"{label}: a request was recorded"
    assert meta_snapshot(root) == before


def test_empty_destination_with_delete_keeps_the_current_directory(tmp_path: Path) -> None:
    """The data-loss report: `dms-submit sync SRC "" --delete` deleted the current directory's files."""
    root = scratch(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DMS_")}
    env["DMS_HOME"] = str(tmp_path / "home")
    r = subprocess.run([*CLI, "sync", str(root / "src"), "", "--delete"], cwd=root / "cwd", env=env,
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode == 3, r.stderr
    assert (root / "cwd" / "precious").read_text() == "must survive"


def test_dry_run_creates_no_destination(tmp_path: Path, dms_app: Any, store: Any, worker: Any) -> None:
    from dms.client.submit import submit, wait
    from dms.request import make_params

    root = scratch(tmp_path)
    dst = root / "new" / "deeper"
    params = make_params(str(root / "src"), str(dst), request_id=unique_id("dry"), dry_run=True)
    submit(dms_app, store, params)
    assert wait(store, params.request_id, timeout=60)["state"] == "SUCCEEDED"
    assert not (root / "new").exists()


def test_bad_broker_url_is_a_configuration_error(tmp_path: Path) -> None:
    root = scratch(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DMS_")}
    r = subprocess.run([*CLI, "--broker", "notaurl", "sync", str(root / "src"), str(root / "dst")], env=env,
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    assert r.returncode == 4 and r.stderr.count("\n") == 1, r.stderr
    assert not (root / "dst").exists()
