"""Library logs (aiokafka) come out in the collector's format, and repeats are throttled."""

from __future__ import annotations

import json
import logging

import pytest
import structlog

from collector.logsetup import configure


@pytest.fixture
def isolated_logging():
    root = logging.getLogger()
    handlers, level, config = root.handlers[:], root.level, structlog.get_config()
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.configure(**config)


def test_repeated_library_errors_are_one_json_line(capsys, isolated_logging):
    configure("json", "info")
    log = logging.getLogger("aiokafka")
    for _ in range(500):
        log.error("Unable connect to %r: %s", "127.0.0.1:9092", "refused")
    logging.getLogger("aiokafka.conn").error("another message %s", 1)
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [(entry["logger"], entry["level"]) for entry in lines] == [("aiokafka", "error"), ("aiokafka.conn", "error")]
    assert lines[0]["event"] == "Unable connect to '127.0.0.1:9092': refused"
