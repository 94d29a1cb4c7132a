"""Write the man pages of dms-submit (and each subcommand) and dms-worker into a directory.

    python scripts/make-man.py [DIR]     # default: man/ ; then `man -l man/dms-submit.1`

Generated from the click commands themselves by click-man, so a page never says other
than `--help` does. The subcommands of dms-submit are registered when dms.cli.main()
imports them, so they are imported here first.
"""

from __future__ import annotations

import sys
from importlib.metadata import version
from pathlib import Path

from click_man.core import write_man_pages

from dms.cli import cancel, cli, listing, logs, resume, status, sync, watch  # noqa: F401  (registers them)
from dms.worker.main import main as worker_main


def make(target: Path) -> list[Path]:
    target.mkdir(parents=True, exist_ok=True)
    for name, command in (("dms-submit", cli), ("dms-worker", worker_main)):
        write_man_pages(name, command, version=version("dms"), target_dir=str(target))
    return sorted(target.glob("*.1"))


if __name__ == "__main__":
    for page in make(Path(sys.argv[1] if len(sys.argv) > 1 else "man")):
        print(page)
