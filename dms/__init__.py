"""DMS, the Data Moving Service: verified, resumable sync of large trees.

`celery -A dms worker` finds the Celery app here as `dms.app`.

The attributes are loaded on first use (PEP 562): `dms-submit` imports dms.cli, which
is below this package, and should not pay for Celery's app machinery it never uses
(a cold start of the CLI is part of every sync it runs; docs/performance.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dms.api import sync, sync_signature
    from dms.worker.app import app

__version__ = "0.1.0"
__all__ = ["__version__", "app", "sync", "sync_signature"]


def __getattr__(name: str) -> Any:
    if name == "app":
        from dms.worker.app import app

        return app
    if name in ("sync", "sync_signature"):
        from dms import api

        return getattr(api, name)
    raise AttributeError(f"module 'dms' has no attribute {name!r}")
