"""DMS, the Data Moving Service: verified, resumable sync of large trees.

`celery -A dms worker` finds the Celery app here as `dms.app`.
"""

from __future__ import annotations

from dms.api import sync, sync_signature
from dms.application import app

__version__ = "0.1.0"
__all__ = ["__version__", "app", "sync", "sync_signature"]
