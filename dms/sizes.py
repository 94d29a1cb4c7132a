"""Human byte sizes ("64MiB", "1G", "4096") <-> integers, as rsync and dd users write them."""

from __future__ import annotations

import re

__all__ = ["format_size", "parse_rate", "parse_size"]

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kb": 1000,
    "kib": 1024,
    "m": 1024**2,
    "mb": 1000**2,
    "mib": 1024**2,
    "g": 1024**3,
    "gb": 1000**3,
    "gib": 1024**3,
    "t": 1024**4,
    "tb": 1000**4,
    "tib": 1024**4,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_size(text: str | int) -> int:
    """Parse a size; bare K/M/G/T are binary (1K = 1024), as in rsync and dd."""
    if isinstance(text, int):
        return text
    match = _SIZE.match(text)
    if not match or match.group(2).lower() not in _UNITS:
        raise ValueError(f"not a size: {text!r} (examples: 4096, 64MiB, 1G)")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def parse_rate(text: str | int) -> int:
    """Parse a bandwidth limit as rsync's --bwlimit reads it, into bytes per second: a bare
    number is KiB/s ("100", or 100 from Python), a suffix gives the unit ("50M" is 50 MiB/s,
    "1.5GB" 1.5 GB/s); 0 is no limit."""
    match = _SIZE.match(text) if isinstance(text, str) else None
    if isinstance(text, int) and not isinstance(text, bool) and text >= 0:
        return text * 1024
    if not match or match.group(2).lower() not in _UNITS:
        raise ValueError(f"not a rate: {text!r} (examples: 100 (KiB/s), 50M, 1.5G, 0 for no limit)")
    unit = _UNITS[match.group(2).lower()] if match.group(2) else 1024
    return int(float(match.group(1)) * unit)


def format_size(n: float) -> str:
    """Binary units with one decimal: 1536 -> '1.5 KiB'."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")
