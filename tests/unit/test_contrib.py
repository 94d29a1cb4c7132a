"""The shipped systemd units verify (`systemd-analyze verify`), with ExecStart pointed at this
installation's commands, as a site does when it installs them."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNITS = Path(__file__).resolve().parents[2] / "contrib" / "systemd"
ANALYZE = shutil.which("systemd-analyze")
BIN = Path(sys.executable).parent


def _render(tmp_path: Path, name: str, as_name: str, binary: Path) -> Path:
    text = (UNITS / name).read_text().replace(f"/usr/local/bin/{binary.name}", str(binary))
    out = tmp_path / as_name
    out.write_text(text)
    return out


@pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")
def test_the_systemd_units_verify(tmp_path: Path) -> None:
    assert ANALYZE is not None
    units = [_render(tmp_path, "dms-worker@.service", "dms-worker@a1.service", BIN / "dms-worker"),
             _render(tmp_path, "dms-flower.service", "dms-flower.service", BIN / "celery")]  # fmt: skip
    r = subprocess.run([ANALYZE, "verify", *map(str, units)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and not r.stderr.strip(), r.stderr
    broken = _render(tmp_path, "dms-worker@.service", "dms-worker@b1.service", tmp_path / "no-such" / "dms-worker")
    r = subprocess.run([ANALYZE, "verify", str(broken)], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0, "verify accepts anything: this test could not fail"
