"""What a client process loads: dms-submit starts for every request, so its imports are
part of every request's time (decisions 0017 and 0018)."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("redis", "kombu", "celery", "yaml", "dms.state.nodes", "dms.route.placement")


def test_the_client_side_of_a_submit_loads_no_redis_py_kombu_celery_or_registry() -> None:
    """The CLI, the submit path and the roots check of a cross-cluster request (dms.fs.roots,
    apart from dms.route.placement for this) leave redis-py, kombu, Celery and the NIC registry
    unloaded; PyYAML comes in only when a workers.yml is read."""
    code = (
        "import sys, dms.cli, dms.cli.sync, dms.client.submit, dms.fs.roots, dms.state.resp, dms.state.messages\n"
        f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "", f"loaded: {done.stdout.strip()}"
