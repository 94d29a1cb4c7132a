"""Write a small sample tree for the quick start: nested dirs, a multi-chunk file, many small files."""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path


def main(root: Path) -> None:
    if root.exists():
        return
    rng = random.Random(42)
    (root / "empty").mkdir(parents=True)
    (root / "big.bin").write_bytes(os.urandom(150 * 1024 * 1024))
    for i in range(2000):
        d = root / "small" / f"dir {i % 25:02d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"file-{i}.txt").write_bytes(rng.randbytes(rng.randrange(0, 32768)))
    (root / "naïve café.txt").write_text("non-ASCII names are fine\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
