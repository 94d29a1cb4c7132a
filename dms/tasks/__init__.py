"""DMS's Celery tasks: dms.plan -> dms.transfer (many) -> dms.finalize."""
