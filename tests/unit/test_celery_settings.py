"""The DMS app's Celery settings: no stray `celeryconfig.py` changes them, a site file tunes only
what it may (dms.worker.celery_settings). Each case imports the app in a fresh interpreter,
as a worker or a script does, from a working directory of the test's choosing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PROBE = (
    "import json; from dms.worker.app import app; c = app.conf; "
    "print(json.dumps({k: c[k] for k in ('task_acks_late', 'worker_prefetch_multiplier', 'broker_url', "
    "'task_time_limit', 'visibility_timeout', 'task_serializer')}))"
)
BROKER = "redis://127.0.0.1:1/0"
HOSTILE = """
task_acks_late = False
worker_prefetch_multiplier = 16
task_serializer = "pickle"
broker_url = "redis://somewhere-else:6379/3"
task_time_limit = 77
"""


def _probe(cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("DMS_")}
    base["PYTHONPATH"] = str(REPO)
    return subprocess.run([sys.executable, "-c", PROBE], cwd=cwd, env={**base, "DMS_BROKER_URL": BROKER, **env},
                          capture_output=True, text=True, timeout=60)  # fmt: skip


def test_a_celeryconfig_in_the_working_directory_changes_nothing(tmp_path: Path) -> None:
    (tmp_path / "celeryconfig.py").write_text(HOSTILE)
    r = _probe(tmp_path)
    assert r.returncode == 0, r.stderr
    conf = json.loads(r.stdout)
    assert conf["task_acks_late"] is True and conf["worker_prefetch_multiplier"] == 1, conf
    assert conf["task_serializer"] == "json" and conf["broker_url"] == BROKER, conf
    assert conf["task_time_limit"] == 3600, conf  # not even its tunables: it was never loaded


def test_a_site_file_tunes_what_it_may_and_is_told_what_it_may_not(tmp_path: Path) -> None:
    site = tmp_path / "site-celery.py"
    site.write_text(HOSTILE.replace("77", "1234"))
    r = _probe(REPO, DMS_CELERY_CONFIG=str(site))
    assert r.returncode == 0, r.stderr
    conf = json.loads(r.stdout)
    assert conf["task_time_limit"] == 1234, conf
    assert conf["task_acks_late"] is True and conf["worker_prefetch_multiplier"] == 1, conf
    assert conf["task_serializer"] == "json" and conf["broker_url"] == BROKER, conf
    for key in ("task_acks_late", "worker_prefetch_multiplier", "task_serializer", "broker_url"):
        assert f"Celery setting {key} of {site} is ignored" in r.stderr, r.stderr


def test_a_time_limit_past_the_visibility_timeout_is_refused(tmp_path: Path) -> None:
    site = tmp_path / "site-celery.py"
    site.write_text("task_time_limit = 9000\n")
    r = _probe(REPO, DMS_CELERY_CONFIG=str(site))
    assert r.returncode != 0 and "must stay below the visibility timeout" in r.stderr, r.stderr
    missing = _probe(REPO, DMS_CELERY_CONFIG=str(tmp_path / "nothing.py"))
    assert missing.returncode != 0 and "no such file" in missing.stderr, missing.stderr


def test_the_shipped_site_file_sets_no_guaranteed_setting() -> None:
    from dms.worker.celery_settings import GUARANTEED, site_settings_path

    names = {line.split("=")[0].strip() for line in site_settings_path().read_text().splitlines()
             if "=" in line and not line.startswith((" ", "#"))}  # fmt: skip
    assert names and not names & set(GUARANTEED), names & set(GUARANTEED)


ROUTES = """
import json
from dms.worker.app import app
cases = [({}, {"source_cluster": "A", "destination_cluster": "B"}), ({}, {"direction": "hpc1_TO_hpc2"}),
         ({}, {"control_queue": "site.ctl"}), ({}, {}), ({}, {"direction": "nonsense", "source_cluster": ""}),
         ({"queue": "mine"}, {"source_cluster": "A"})]
print(json.dumps([app.amqp.router.route(o, "dms.sync", (), k)["queue"].name for o, k in cases]))
"""


def test_the_app_routes_a_sync_to_where_its_plan_runs(tmp_path: Path) -> None:
    """What Flower's HTTP API and a bare send_task("dms.sync", ...) get from the app's router:
    the source cluster's queue, else the request's control queue, else dms.control; a queue
    given at publish time wins. In a fresh interpreter, as the cases above: the router builds
    the app's producer side, which must not happen in the test process before its fixtures
    point the app at the test's Redis."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("DMS_")}
    base["PYTHONPATH"] = str(REPO)
    r = subprocess.run([sys.executable, "-c", ROUTES], cwd=tmp_path, env={**base, "DMS_BROKER_URL": BROKER},
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == ["dms.cluster.A", "dms.cluster.hpc1", "site.ctl", "dms.control", "dms.control",
                                    "mine"]  # fmt: skip
