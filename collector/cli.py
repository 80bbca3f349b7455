"""``hadoop-collector``: run | once | check | schemas | tail."""

from __future__ import annotations

import argparse
import asyncio
import gc
import signal
import sys
from collections.abc import Sequence

import orjson
import structlog

from . import __version__, schemas
from .config import Config, ConfigError, load
from .events import CLUSTER_SNAPSHOT, FINISHED, HDFS_SNAPSHOT, QUEUE_SNAPSHOT, STATE_CHANGED, VANISHED
from .health import HealthServer, Readiness, assess
from .http import HttpPeer, PeerError
from .logsetup import configure
from .metrics import METRICS
from .parsing import ParseError
from .rm_client import ResourceManager
from .service import ClusterWorker, make_workers, run_service, wall_ms
from .sinks import KafkaSink, SinkError, StdoutSink, client_settings, describe
from .state_store import CheckpointError
from .topic_check import check_topics

log = structlog.get_logger("collector")

#: Beyond ``shutdown_timeout`` (the wait for Kafka): time for a poll in flight and for closing.
SHUTDOWN_SLACK_S = 15.0


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-c", "--config", help="YAML configuration file (default: $HEC_CONFIG)")
    common.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a configuration key, e.g. --set kafka.bootstrap_servers=host:9092",
    )
    common.add_argument("--log-format", choices=["auto", "json", "console"])
    common.add_argument("--log-level", choices=["debug", "info", "warning", "error"])

    parser = argparse.ArgumentParser(prog="hadoop-collector", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", parents=[common], help="run the service (events to Kafka)")
    run.add_argument("--fresh", action="store_true", help="ignore the checkpoint (state.directory) and start anew")
    once = sub.add_parser("once", parents=[common], help="one poll cycle per cluster, events to stdout")
    once.add_argument("--sink", choices=["stdout", "kafka"], default="stdout")
    sub.add_parser("check", parents=[common], help="validate the configuration and test connectivity")
    rep = sub.add_parser("report", parents=[common], help="the cluster's statistics now, as tables or JSON")
    rep.add_argument("--cluster", help="only this cluster (default: all)")
    rep.add_argument("--format", choices=["table", "json"], default="table")
    rep.add_argument("--since", default="24h", help="window for application statistics (default 24h)")
    sch = sub.add_parser("schemas", help="list the event schemas, or print one")
    sch.add_argument("name", nargs="?", help="schema file name, e.g. yarn.application.state_changed.v1")
    tail = sub.add_parser("tail", parents=[common], help="follow the event topics and print events")
    tail.add_argument("--from-beginning", action="store_true")
    tail.add_argument("--raw", action="store_true", help="print the JSON as received")
    return parser


def _load(args: argparse.Namespace) -> Config:
    import os

    overrides = list(args.set)
    if args.log_format:
        overrides.append(f"log.format={args.log_format}")
    if args.log_level:
        overrides.append(f"log.level={args.log_level}")
    cfg = load(args.config or os.environ.get("HEC_CONFIG"), overrides=overrides)
    configure(cfg.log.format, cfg.log.level)
    return cfg


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "schemas":
        return _schemas(args.name)
    try:
        cfg = _load(args)
    except ConfigError as exc:
        print(f"hadoop-collector: {exc}", file=sys.stderr)
        return 2
    command = {"run": _run, "once": _once, "check": _check, "tail": _tail, "report": _report}[args.command]
    try:
        return asyncio.run(command(cfg, args))
    except KeyboardInterrupt:
        return 130


def _schemas(name: str | None) -> int:
    if name is None:
        for schema_name in schemas.names():
            print(schema_name)
        return 0
    try:
        sys.stdout.write(schemas.text(name))
    except KeyError as exc:
        print(f"hadoop-collector: {exc.args[0]}", file=sys.stderr)
        return 2
    return 0


async def _run(cfg: Config, args: argparse.Namespace) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, _on_signal, stop, sig)
    sink = KafkaSink(cfg.kafka) if cfg.sink == "kafka" else StdoutSink()
    try:
        workers = make_workers(cfg, sink, fresh=args.fresh)
    except CheckpointError as exc:
        print(f"hadoop-collector: {exc}", file=sys.stderr)
        return 2
    if cfg.sink == "kafka" and not await _topics_usable(cfg):
        return 2
    health: HealthServer | None = None
    if cfg.health.enabled:

        def readiness() -> Readiness:
            return assess(workers, sink, wall_ms(), cfg.health.stale_after_s)

        health = HealthServer(cfg.health.host, cfg.health.port, METRICS, readiness)
        try:
            await health.start()
        except OSError as exc:
            print(f"hadoop-collector: health: cannot listen on {cfg.health.host}:{cfg.health.port} "
                  f"({exc.strerror or exc}); set health.port (0 picks a free one) or health.enabled=false",
                  file=sys.stderr)
            return 2
    try:
        return await _serve(cfg, sink, stop, workers)
    finally:
        if health is not None:
            await health.stop()


async def _topics_usable(cfg: Config) -> bool:
    """False (with one line per topic on stderr) when a topic is missing or not ours to write.
    A broker that does not answer is not a reason to refuse: the service waits for it."""
    from aiokafka.errors import KafkaError

    try:
        checks = await check_topics(cfg.kafka, cfg.clusters)
    except KafkaError as exc:
        METRICS.kafka_error("metadata", exc)
        log.warning("kafka.topics_unchecked", reason=describe(exc))
        return True
    bad = [check for check in checks if check.fatal]
    for check in bad:
        print(f"hadoop-collector: {check.line()}", file=sys.stderr)
    return not bad


async def _serve(cfg: Config, sink: KafkaSink | StdoutSink, stop: asyncio.Event, workers: list[ClusterWorker]) -> int:
    # What start-up made (modules, config, a loaded checkpoint) lives as long as the process:
    # out of the collector's way, a full collection visits only what cycles make (tens of ms
    # less event-loop stall each time one runs).
    gc.collect()
    gc.freeze()
    service = asyncio.create_task(run_service(cfg, sink, stop, workers))
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait([service, stopper], return_when=asyncio.FIRST_COMPLETED)
    stopper.cancel()
    # Stop requested (or the service ended by itself): the workers deliver what is queued
    # (bounded by shutdown_timeout); beyond that and some slack, give up on them.
    grace = float(cfg.shutdown_timeout) + SHUTDOWN_SLACK_S
    try:
        workers = await asyncio.wait_for(asyncio.shield(service), timeout=grace)
    except TimeoutError:
        log.error("collector.shutdown_timeout", grace_s=grace)
        service.cancel()
        return 1
    undelivered = [w.cfg.name for w in workers if w.undelivered]
    if undelivered:
        # Not lost (the checkpoint has only what Kafka acknowledged; a restart derives the
        # rest again) but not on Kafka yet: say so in the exit status.
        log.error("collector.stopped_with_undelivered_events", clusters=undelivered)
        return 1
    return 0


def _on_signal(stop: asyncio.Event, sig: signal.Signals) -> None:
    if stop.is_set():
        raise SystemExit(130)  # a second signal: stop now
    log.info("collector.stopping", signal=sig.name)
    stop.set()


async def _once(cfg: Config, args: argparse.Namespace) -> int:
    sink = KafkaSink(cfg.kafka) if args.sink == "kafka" else StdoutSink()
    try:
        await sink.start()
    except SinkError as exc:
        print(f"hadoop-collector: {exc}", file=sys.stderr)
        return 1
    status = 0
    try:
        for cluster in cfg.clusters:
            worker = ClusterWorker(cluster, sink, cfg.validate_events)
            try:
                await worker.cycle()
                # One try at each ended application's history; no waiting for late ones.
                await worker.enrich_cycle(wait=True)
                if worker.pending:
                    print(
                        f"hadoop-collector: cluster {cluster.name}: {len(worker.pending)} ended "
                        "application(s) not yet in their history server; `run` waits for them",
                        file=sys.stderr,
                    )
            except (PeerError, ParseError, SinkError) as exc:
                print(f"hadoop-collector: cluster {cluster.name}: {exc}", file=sys.stderr)
                status = 1
            finally:
                await worker.close()
    finally:
        await sink.close()
    return status


async def _check(cfg: Config, args: argparse.Namespace) -> int:
    ok = True
    print(f"configuration: ok ({len(cfg.clusters)} cluster(s))")
    for cluster in cfg.clusters:
        peer = HttpPeer(
            timeout=float(cluster.poll.timeout),
            user_name=cluster.auth.user_name,
            verify_tls=cluster.auth.verify_tls,
        )
        try:
            for url in cluster.resourcemanager.urls:  # type: ignore[union-attr]
                rm = ResourceManager([url], peer, cluster=cluster.name)
                try:
                    info, _ = await rm.cluster_info()
                    print(
                        f"cluster {cluster.name}: RM {url}: {info.state}, haState {info.haState}, "
                        f"version {info.resourceManagerVersion}"
                    )
                except (PeerError, ParseError) as exc:
                    print(f"cluster {cluster.name}: RM {url}: FAILED: {exc}")
                    ok = False
        finally:
            await peer.close()
    if cfg.sink == "kafka":
        ok = await _check_kafka(cfg) and ok
    return 0 if ok else 1


async def _check_kafka(cfg: Config) -> bool:
    from aiokafka.errors import KafkaError

    try:
        checks = await check_topics(cfg.kafka, cfg.clusters)
    except KafkaError as exc:
        print(f"kafka {','.join(cfg.kafka.bootstrap_servers)}: FAILED: {describe(exc)}")
        return False
    print(f"kafka {','.join(cfg.kafka.bootstrap_servers)}: ok")
    for check in checks:
        print(check.line())
    return not any(check.fatal for check in checks)


async def _tail(cfg: Config, args: argparse.Namespace) -> int:
    from aiokafka import AIOKafkaConsumer
    from aiokafka.errors import KafkaError

    topics = sorted({t for c in cfg.clusters for t in c.topics_in_use()})
    consumer = AIOKafkaConsumer(
        *topics,
        **client_settings(cfg.kafka),
        auto_offset_reset="earliest" if args.from_beginning else "latest",
        enable_auto_commit=False,
    )
    try:
        await consumer.start()
    except KafkaError as exc:
        await consumer.stop()
        print(f"hadoop-collector: cannot read from Kafka at {','.join(cfg.kafka.bootstrap_servers)}: "
              f"{describe(exc)}", file=sys.stderr)
        return 1
    try:
        async for msg in consumer:
            if args.raw:
                print(msg.value.decode(), flush=True)
            else:
                print(format_event(msg.value), flush=True)
    finally:
        await consumer.stop()
    return 0


async def _report(cfg: Config, args: argparse.Namespace) -> int:
    from rich.console import Console

    from . import report
    from .config import parse_duration
    from .service import wall_ms

    try:
        since_s = parse_duration(args.since)
    except ValueError as exc:
        print(f"hadoop-collector: --since: {exc}", file=sys.stderr)
        return 2
    clusters = [c for c in cfg.clusters if args.cluster in (None, c.name)]
    if not clusters:
        print(f"hadoop-collector: no cluster named {args.cluster!r} in the configuration", file=sys.stderr)
        return 2
    reports, status = [], 0
    for cluster in clusters:
        worker = ClusterWorker(cluster, StdoutSink(), cfg.validate_events)
        now = wall_ms()
        try:
            reports.append(await report.collect(worker, now - int(since_s * 1000), now))
        except (PeerError, ParseError) as exc:
            print(f"hadoop-collector: cluster {cluster.name}: {exc}", file=sys.stderr)
            status = 1
        finally:
            await worker.close()
    if args.format == "json":
        sys.stdout.write(orjson.dumps(reports, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        console = Console()
        for one in reports:
            report.render(one, console)
    return status


def format_event(value: bytes) -> str:
    """One readable line per event for ``tail``."""
    try:
        ev = orjson.loads(value)
        data = ev.get("data", {})
    except (orjson.JSONDecodeError, AttributeError):
        return f"(not an event) {value[:200]!r}"
    head = f"{ev.get('time')} {ev.get('type')} {ev.get('subject')}"
    kind = ev.get("type")
    if kind == STATE_CHANGED:
        app = data.get("application") or {}
        prev = data.get("previous_state") or "(first seen)"
        return f"{head} {prev} -> {data.get('state')} final={data.get('final_status')} name={app.get('name')!r}"
    if kind == VANISHED:
        return f"{head} vanished (last seen {data.get('last_state')})"
    if kind == FINISHED:
        info = data.get("enrichment") or {}
        figures = info.get("mapreduce") or info.get("spark") or {}
        line = f"{head} {data.get('state')}/{data.get('final_status')} enrichment={info.get('status')}"
        if figures:
            line += f" input_bytes={figures.get('input_bytes')}"
        if info.get("after_end_ms") is not None:
            line += f" after_end={info['after_end_ms'] / 1000:.1f}s"
        if info.get("reason"):
            line += f" reason={info['reason']!r}"
        return line
    if kind == QUEUE_SNAPSHOT:
        q = data.get("queue") or {}
        return f"{head} used {q.get('used_capacity')}% of {q.get('capacity')}% apps={q.get('applications')}"
    if kind == HDFS_SNAPSHOT:
        u = data.get("usage") or {}
        return (f"{head} files={u.get('files')} length={u.get('length_bytes')} "
                f"space_quota={u.get('space_quota_bytes')}")
    if kind == CLUSTER_SNAPSHOT:
        m = data.get("metrics") or {}
        return (f"{head} apps running={m.get('apps_running')} memory {m.get('memory_allocated_mb')}"
                f"/{m.get('memory_total_mb')} MB nodes={m.get('nodes_active')}")
    return f"{head} {orjson.dumps(data).decode()[:200]}"
