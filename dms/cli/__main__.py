"""`python -m dms.cli` is `dms-submit`."""

from dms.cli import run

run()
