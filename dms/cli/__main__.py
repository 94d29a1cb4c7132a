"""`python -m dms.cli` is `dms-submit`."""

from dms.cli import main

main()
