"""Inputs that once broke a parser (found by the property tests in test_properties_*.py), kept
as plain examples: each must give typed records, or the parser's typed error, and nothing else."""

from __future__ import annotations

import pytest

from collector.parsing import LONG_MAX, LONG_MIN, as_int


@pytest.mark.parametrize("text", ["²", "--5", "9" * 5000, "1e400", str(LONG_MAX + 1), str(LONG_MIN - 1), "1e30"])
def test_as_int_is_none_for_junk_and_for_numbers_wider_than_a_long(text):
    assert as_int(text) is None


def test_as_int_keeps_what_is_a_long():
    assert [as_int(v) for v in (" 12 ", "-7", str(LONG_MAX), LONG_MIN, "1e3", 2.0)] == [12, -7, LONG_MAX, LONG_MIN,
                                                                                       1000, 2]
    assert as_int(LONG_MAX + 1) is None and as_int(True) is None
