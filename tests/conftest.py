from __future__ import annotations

from pathlib import Path

import pytest

CASES = Path(__file__).parent / "cases"


@pytest.fixture
def case():
    """Bytes of a recorded real-world response shape under tests/cases/."""

    def read(name: str) -> bytes:
        return (CASES / name).read_bytes()

    return read
