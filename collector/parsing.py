"""What every parser of a peer's answer shares: one typed error with a one-line message."""

from __future__ import annotations


class ParseError(ValueError):
    """A peer's answer could not be turned into records; ``str()`` is one clear line."""


def first_line(exc: Exception, limit: int = 300) -> str:
    """msgspec's messages can span lines; logs and errors get the first one."""
    text = str(exc).strip()
    return text.splitlines()[0][:limit] if text else type(exc).__name__
