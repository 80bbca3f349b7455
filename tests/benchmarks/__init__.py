"""Benchmarks of issue 6, run by ``make bench`` (``python -m tests.benchmarks``); a tiny smoke run
of each is part of ``make test`` (``test_smoke.py``)."""
