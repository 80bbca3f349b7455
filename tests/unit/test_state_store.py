"""The checkpoint: round trip, atomic file, clear refusals, and a restart that resumes
without re-emitting what Kafka already acknowledged (scripted RM, real HTTP)."""

from __future__ import annotations

import time

import pytest

from collector.config import ClusterConfig, ResourceManagerConfig
from collector.service import ClusterWorker
from collector.state_store import CheckpointError, FileStore
from tests.memory_sink import MemorySink
from tests.scripted_rm import ScriptedRM

from .test_rm_faults import summary


def worker(rm_url, sink, store, fresh=False):
    cfg = ClusterConfig(name="c1", resourcemanager=ResourceManagerConfig(urls=[rm_url]))
    return ClusterWorker(cfg, sink, store=store, fresh=fresh)


async def test_restart_resumes_without_re_emitting(serve, tmp_path):
    rm = await serve(ScriptedRM())
    rm.put("application_1_0001", "RUNNING")
    now = int(time.time() * 1000)
    rm.put("application_1_0002", "FINISHED", finishedTime=now - 1000)  # TEZ-like: no history needed
    rm.apps["application_1_0002"]["applicationType"] = "TEZ"
    store = FileStore(tmp_path, "c1")
    first_sink = MemorySink()
    first = worker(rm.url, first_sink, store)
    await first.cycle()
    await first.enrich_cycle(wait=True)
    await first.close()
    assert store.path.exists()
    # the collector restarts; meanwhile 0001 ended
    rm.put("application_1_0001", "FINISHED", finishedTime=now + 500)
    sink = MemorySink()
    second = worker(rm.url, sink, store)
    await second.cycle()
    await second.cycle()
    assert summary(sink.events) == [("0001", "state_changed", "RUNNING", "FINISHED")]
    assert sink.events[0].envelope["data"]["seq"] == 2  # continues, no second seq 1
    await second.close()


def test_corrupt_or_foreign_checkpoints_are_refused_clearly(tmp_path):
    store = FileStore(tmp_path, "c1")
    store.path.write_text("{not json")
    with pytest.raises(CheckpointError, match="not a readable checkpoint.*--fresh"):
        store.load()
    store.path.write_text('{"format": "hadoop-event-collector/checkpoint", "version": 99}')
    with pytest.raises(CheckpointError, match="version 99.*upgrade the collector"):
        store.load()
    from collector.tracker import TrackerState

    FileStore(tmp_path, "other").save(TrackerState(watermark=5), {})
    (tmp_path / "other.checkpoint.json").rename(store.path)
    with pytest.raises(CheckpointError, match="belongs to cluster 'other'"):
        store.load()
    assert FileStore(tmp_path / "none", "c1").load() is None  # a first start


async def test_fresh_ignores_a_damaged_checkpoint(serve, tmp_path):
    rm = await serve(ScriptedRM())
    store = FileStore(tmp_path, "c1")
    store.path.write_text("garbage")
    with pytest.raises(CheckpointError):
        worker(rm.url, MemorySink(), store)
    w = worker(rm.url, MemorySink(), store, fresh=True)
    await w.cycle()  # and the first save replaces it
    assert store.load() is not None
    await w.close()


def test_run_refuses_a_corrupt_checkpoint_with_one_line(tmp_path):
    import subprocess
    import sys

    (tmp_path / "c1.checkpoint.json").write_text("garbage")
    config = tmp_path / "c.yaml"
    config.write_text(f"clusters: [{{name: c1, resourcemanager: {{urls: http://127.0.0.1:9}}}}]\n"
                      f"state: {{directory: {tmp_path}}}\n")
    proc = subprocess.run([sys.executable, "-m", "collector", "run", "-c", str(config)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("hadoop-collector: ") and "--fresh" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_a_version_1_checkpoint_is_still_read(tmp_path):
    import orjson

    from collector.state_store import decode, encode
    from collector.tracker import TrackerState

    data = orjson.loads(encode("c1", TrackerState(watermark=5), {}))
    data["version"] = 1
    del data["state"]["backlog"]  # version 1 had none
    saved = decode("c1", orjson.dumps(data), "old.json")
    assert saved.state.watermark == 5 and saved.backlog == []
    data["version"] = 3
    with pytest.raises(CheckpointError, match="version 3"):
        decode("c1", orjson.dumps(data), "new.json")


async def test_a_checkpointed_finished_event_is_sent_again_as_it_was(serve, tmp_path):
    # Kafka goes down just as the finished event is queued: the checkpoint keeps it, and the
    # next start sends exactly those bytes and logs its enrichment outcome once delivered.
    import structlog

    from .test_backlog import SwitchableSink

    rm = await serve(ScriptedRM())
    rm.put("application_1_0002", "FINISHED", finishedTime=int(time.time() * 1000) - 1000)
    rm.apps["application_1_0002"]["applicationType"] = "TEZ"  # no history server needed
    store = FileStore(tmp_path, "c1")
    sink = SwitchableSink()
    first = worker(rm.url, sink, store)
    await first.cycle()
    sink.down = True
    with pytest.raises(Exception, match="broker down"):
        await first.enrich_cycle(wait=True)
    (queued,) = first.outbox.unacked(10)
    await first.close()
    sink.down = False
    second = worker(rm.url, sink, store)
    with structlog.testing.capture_logs() as logs:
        assert await second.deliver() == 1
    assert sink.events[-1].type == "yarn.application.finished"
    assert sink.events[-1].encode() == queued.event.encode()
    (published,) = [e for e in logs if e["event"] == "enrichment.published"]
    assert published["status"] == queued.event.envelope["data"]["enrichment"]["status"] is not None
    await second.close()


async def test_a_restart_before_any_end_keeps_the_first_starts_floor(serve, tmp_path):
    # found by review: with no end acknowledged yet the watermark is unset, and a restart took a
    # new floor (now - backfill), so an app that ended while the collector was down was missed
    rm = await serve(ScriptedRM())
    rm.put("application_1_0001", "RUNNING")
    store = FileStore(tmp_path, "c1")
    first = worker(rm.url, MemorySink(), store)
    await first.cycle()
    await first.close()
    saved = store.load()
    assert saved.state.watermark is None and saved.state.floor is not None
    now = int(time.time() * 1000)
    saved.state.floor = now - 130 * 60_000  # as if the first start was over 2 h ago
    store.save(saved.state, saved.pending, saved.backlog)
    # while it was down, an app it never saw ran and ended, 1 h ago (beyond the 10 min backfill)
    rm.put("application_1_0002", "FINISHED", startedTime=now - 65 * 60_000, finishedTime=now - 60 * 60_000)
    sink = MemorySink()
    second = worker(rm.url, sink, store)
    await second.cycle()
    await second.close()
    assert ("0002", "state_changed", None, "FINISHED") in summary(sink.events)


def test_a_queued_event_without_an_id_is_a_damaged_checkpoint(tmp_path):
    import orjson

    from collector.tracker import TrackerState

    store = FileStore(tmp_path, "c1")
    store.save(TrackerState(watermark=5), {})
    data = orjson.loads(store.path.read_bytes())
    data["state"]["backlog"] = [{"type": "collector.heartbeat", "key": "c1", "event": {"no": "id"},
                                 "observed_at_ms": 1}]
    store.path.write_bytes(orjson.dumps(data))
    with pytest.raises(CheckpointError, match="damaged.*without an id.*--fresh"):
        store.load()


def test_a_deeply_nested_checkpoint_is_refused_clearly(tmp_path):
    store = FileStore(tmp_path, "c1")
    store.path.write_bytes(b'{"format":"hadoop-event-collector/checkpoint","version":2,"cluster":"c1","x":'
                           + b"[" * 100_000 + b"]" * 100_000 + b"}")
    with pytest.raises(CheckpointError, match="not a readable checkpoint.*--fresh"):
        store.load()
