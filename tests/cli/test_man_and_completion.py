"""Man pages built from the click commands (scripts/make-man.py), and shell completion."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _make_man() -> object:
    spec = importlib.util.spec_from_file_location("make_man", REPO / "scripts" / "make-man.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_command_has_a_man_page_that_renders(tmp_path: Path) -> None:
    from dms.cli import cli

    pages = {p.name for p in _make_man().make(tmp_path)}  # type: ignore[attr-defined]
    wanted = {"dms-submit.1", "dms-worker.1"} | {f"dms-submit-{name}.1" for name in cli.commands}
    assert wanted <= pages and len(cli.commands) >= 7, (sorted(wanted - pages), sorted(pages))
    sync_page = (tmp_path / "dms-submit-sync.1").read_text()
    assert sync_page.startswith(".TH") and "delete" in sync_page and "max\\-delete" in sync_page
    assert "check" in (tmp_path / "dms-worker.1").read_text()
    groff = shutil.which("groff")
    if groff:  # renders without a warning
        r = subprocess.run([groff, "-man", "-Tutf8", "-ww", "-P-bcou", str(tmp_path / "dms-submit-sync.1")],
                           capture_output=True, text=True, timeout=60)  # fmt: skip
        assert r.returncode == 0 and "SYNOPSIS" in r.stdout and not r.stderr.strip(), r.stderr


def _complete(program: str, words: str, cword: int) -> list[str]:
    var = f"_{program.upper().replace('-', '_')}_COMPLETE"
    env = {**os.environ, var: "bash_complete", "COMP_WORDS": words, "COMP_CWORD": str(cword)}
    r = subprocess.run([str(Path(sys.executable).parent / program)], env=env, capture_output=True, text=True,
                       timeout=60)  # fmt: skip
    assert r.returncode == 0, r.stderr
    return [line.split(",", 1)[1] for line in r.stdout.splitlines() if "," in line]


def test_shell_completion_completes_commands_and_options() -> None:
    assert _complete("dms-submit", "dms-submit sy", 1) == ["sync"]
    assert "--max-delete" in _complete("dms-submit", "dms-submit sync --max", 2)
    assert _complete("dms-worker", "dms-worker --ch", 1) == ["--check"]
    for shell in ("bash", "zsh", "fish"):  # the scripts docs/operations.md tells users to source
        env = {**os.environ, "_DMS_SUBMIT_COMPLETE": f"{shell}_source"}
        r = subprocess.run([sys.executable, "-m", "dms.cli"], env=env, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and "_DMS_SUBMIT_COMPLETE" in r.stdout, (shell, r.stderr)
