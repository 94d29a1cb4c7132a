"""Shared click parameter types."""

from __future__ import annotations

import re
from typing import Any

import click

from dms.sizes import parse_rate, parse_size

__all__ = ["DURATION", "RATE", "SIZE"]


class SizeType(click.ParamType):  # type: ignore[type-arg]
    name = "size"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        try:
            size = parse_size(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)
        if size < 1:
            self.fail("must be at least 1 byte", param, ctx)
        return size


SIZE = SizeType()


class RateType(click.ParamType):  # type: ignore[type-arg]
    """rsync's --bwlimit: a bare number is KiB/s; 50M, 1.5G; 0 is no limit. Checked here (a
    usage error), passed on as written: make_params reads it the same way."""

    name = "rate"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        try:
            parse_rate(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)
        return str(value)


RATE = RateType()


_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class DurationType(click.ParamType):  # type: ignore[type-arg]
    """30s, 90m, 12h, 7d -> seconds."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd])\s*", str(value))
        if not match:
            self.fail(f"not a duration: {value!r} (examples: 30s, 90m, 12h, 7d)", param, ctx)
        return float(match.group(1)) * _DURATION_UNITS[match.group(2)]


DURATION = DurationType()
