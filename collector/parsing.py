"""What every parser of a peer's answer shares: one typed error with a one-line message."""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

import msgspec

#: A Java long: the widest integer a Hadoop daemon sends. Anything wider is garbage, and no
#: event could carry it (the encoder refuses integers past 64 bits).
LONG_MIN, LONG_MAX = -(2**63), 2**63 - 1
Long = Annotated[int, msgspec.Meta(ge=LONG_MIN, le=LONG_MAX)]


class ParseError(ValueError):
    """A peer's answer could not be turned into records; ``str()`` is one clear line."""


def first_line(exc: Exception, limit: int = 300) -> str:
    """msgspec's messages can span lines; logs and errors get the first one."""
    text = str(exc).strip()
    return text.splitlines()[0][:limit] if text else type(exc).__name__


def as_number(value: Any) -> float | None:
    """A float from a number or a numeric string; None for absent, "NaN", inf, or junk."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) or math.isinf(number) else number


def as_int(value: Any) -> int | None:
    """An integer, exactly (no float round trip for integers and integer strings); None for
    absent, junk, or wider than a Java long."""
    if isinstance(value, str) and _INTEGER.fullmatch(value.strip()) and len(value) < 40:
        value = int(value)
    if not (isinstance(value, int) and not isinstance(value, bool)):
        number = as_number(value)
        value = None if number is None else int(number)
    return value if value is not None and LONG_MIN <= value <= LONG_MAX else None


_INTEGER = re.compile(r"-?[0-9]+")


def as_count(value: int | None) -> int | None:
    """A count or size for the events: negative (Hadoop's "none", or junk) or wider than a long
    (a sum gone past it) is unknown, never a number."""
    return value if value is not None and 0 <= value <= LONG_MAX else None


def as_text(value: Any) -> str | None:
    """A string field that a peer may send as a number or leave out."""
    return None if value is None or isinstance(value, (dict, list)) else str(value)
