"""The delivery guarantee, as a check of an applications topic against the ResourceManager's
truth. Pure (records in, problems out), so the fault tests share it and unit tests prove it
catches what it claims to catch (tests/unit/test_stream_check.py).

What a topic must show, after any crash or outage (README: at-least-once, deterministic ids):

- per application one key (``<cluster>/<app id>``), hence one partition; ``seq`` never goes
  back in partition order;
- the same id published twice is the same bytes: the checkpoint is written ahead with the
  events about to be sent, so a restart sends exactly those again (``identical_duplicates``).
  Without write-ahead (``identical_duplicates=False``) a restart derives the event again from a
  later poll: collector/events.py builds the id from the observation's identity and the rest
  from the RM's record of that poll, so only the observation time and the RM's live figures
  may differ;
- one id per (application, seq): a seq is never reused for another observation;
- after removing duplicates by id: seq 1, 2, 3, ... without a gap, starting with the first
  sighting, each event's ``previous_state`` the state before it, at most one terminal state and
  it is the last, equal to the RM's final state and final status;
- exactly one ``yarn.application.finished`` id per ended application, first published after
  its terminal ``state_changed`` event.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

STATE_CHANGED = "yarn.application.state_changed"
FINISHED = "yarn.application.finished"
VANISHED = "yarn.application.vanished"
TERMINAL = frozenset({"FINISHED", "FAILED", "KILLED"})

#: The RM's live figures in ``data.application``: a later poll of the same state reads other values.
VOLATILE_APPLICATION = frozenset({
    "progress", "elapsed_ms", "allocated", "reserved", "running_containers", "memory_seconds",
    "vcore_seconds", "resource_seconds", "preempted", "queue_usage_percent", "cluster_usage_percent",
    "diagnostics", "tracking_ui", "tracking_url", "am_host_http_address", "am_container_logs",
    "launch_time_ms", "log_aggregation_status",
})
#: Fields of a republished ``finished`` event that depend on when it was built.
VOLATILE_FINISHED = frozenset({"data.observed_at_ms", "data.enrichment.attempts", "data.enrichment.after_end_ms"})


@dataclass(frozen=True, slots=True)
class Record:
    """One Kafka record of the topic (what a consumer sees)."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes


def record_of(kafka_record: Any) -> Record:
    return Record(kafka_record.partition, kafka_record.offset, kafka_record.key, kafka_record.value)


@dataclass(slots=True)
class Duplicate:
    """An id published more than once, and which fields differed between its copies."""

    id: str
    type: str
    app_id: str
    copies: int
    offsets: list[int]
    differing: list[str]


@dataclass(slots=True)
class Report:
    problems: list[str] = field(default_factory=list)
    duplicates: list[Duplicate] = field(default_factory=list)
    #: app id -> states in order, duplicates removed
    states: dict[str, list[str]] = field(default_factory=dict)
    records: int = 0
    unique: int = 0

    def summary(self) -> dict[str, Any]:
        by_type = Counter(d.type for d in self.duplicates)
        paths = Counter(p for d in self.duplicates for p in d.differing)
        return {"records": self.records, "unique_ids": self.unique,
                "duplicate_ids": len(self.duplicates), "duplicate_ids_by_type": dict(by_type),
                "extra_copies": sum(d.copies - 1 for d in self.duplicates),
                "fields_differing_in_duplicates": dict(paths.most_common())}


def differing_paths(a: Any, b: Any, prefix: str = "") -> list[str]:
    """Dotted paths where two decoded JSON values differ (lists compared whole)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for k in sorted(set(a) | set(b)):
            path = f"{prefix}.{k}" if prefix else k
            if k not in a or k not in b:
                out.append(path)
            else:
                out.extend(differing_paths(a[k], b[k], path))
        return out
    return [] if a == b else [prefix]


def allowed_to_differ(event: dict[str, Any], path: str) -> bool:
    """Whether two copies of ``event``'s id may differ at ``path`` (see the module doc)."""
    if path.startswith("data.application."):
        return path.split(".")[2] in VOLATILE_APPLICATION
    if event["type"] == STATE_CHANGED:
        # the event time is the RM's finishedTime for an end, else the observation time
        return path == "data.observed_at_ms" or (path == "time" and event["data"]["state"] not in TERMINAL)
    if event["type"] == FINISHED:
        return path in VOLATILE_FINISHED
    return False


def check(
    records: Iterable[Record],
    truth: Mapping[str, tuple[str, str]],
    *,
    cluster: str = "it",
    must_include: Mapping[str, Iterable[str]] | None = None,
    identical_duplicates: bool = True,
) -> Report:
    """Check the topic against ``truth`` (app id -> the RM's final (state, finalStatus)).
    ``must_include``: app id -> states its sequence must contain (seen by an independent watcher).
    Applications on the topic that are not in ``truth`` get every check but the comparison."""
    report = Report()
    ordered = sorted(records, key=lambda r: (r.partition, r.offset))
    report.records = len(ordered)
    events: list[tuple[Record, dict[str, Any]]] = []
    for r in ordered:
        try:
            events.append((r, orjson.loads(r.value)))
        except orjson.JSONDecodeError:
            report.problems.append(f"p{r.partition}@{r.offset}: not JSON: {r.value[:80]!r}")
    by_app: dict[str, list[tuple[Record, dict[str, Any]]]] = defaultdict(list)
    for r, e in events:
        by_app[e.get("subject", "?")].append((r, e))
    first_of: dict[str, tuple[Record, dict[str, Any]]] = {}
    copies: dict[str, list[tuple[Record, dict[str, Any]]]] = defaultdict(list)
    for r, e in events:
        copies[e["id"]].append((r, e))
        first_of.setdefault(e["id"], (r, e))
    report.unique = len(first_of)

    for ev_id, same in copies.items():
        if len(same) < 2:
            continue
        first = same[0][1]
        differing = sorted({p for _, e in same[1:] for p in differing_paths(first, e)})
        report.duplicates.append(Duplicate(ev_id, first["type"], first.get("subject", "?"), len(same),
                                           [r.offset for r, _ in same], differing))
        wrong = [p for p in differing if identical_duplicates or not allowed_to_differ(first, p)]
        if wrong:
            report.problems.append(f"{first.get('subject')}: id {ev_id} ({first['type']}) published "
                                   f"{len(same)} times with different content at {wrong}")

    for app_id, pairs in by_app.items():
        report.problems.extend(_check_app(app_id, pairs, cluster))
        unique = [(r, e) for r, e in pairs if first_of[e["id"]][0] is r]
        report.states[app_id] = [e["data"]["state"] for _, e in unique if e["type"] == STATE_CHANGED]

    for app_id, (state, final_status) in truth.items():
        pairs = by_app.get(app_id, [])
        unique = [(r, e) for r, e in pairs if first_of[e["id"]][0] is r]
        report.problems.extend(_compare(app_id, unique, state, final_status))
        for wanted in (must_include or {}).get(app_id, ()):
            if wanted not in report.states.get(app_id, []):
                report.problems.append(f"{app_id}: the RM showed it {wanted} long enough to be observed, "
                                       f"the topic has {report.states.get(app_id)}")
    return report


def _check_app(app_id: str, pairs: list[tuple[Record, dict[str, Any]]], cluster: str) -> list[str]:
    problems = []
    keys = {r.key for r, _ in pairs}
    if keys != {f"{cluster}/{app_id}".encode()}:
        problems.append(f"{app_id}: keys {sorted(k or b'' for k in keys)}")
    if len({r.partition for r, _ in pairs}) != 1:
        problems.append(f"{app_id}: in partitions {sorted({r.partition for r, _ in pairs})}")
    changes = [(r, e) for r, e in pairs if e["type"] == STATE_CHANGED]
    raw_seqs = [e["data"]["seq"] for _, e in changes]
    if raw_seqs != sorted(raw_seqs):
        problems.append(f"{app_id}: seq goes back in partition order: {raw_seqs}")
    ids_of_seq: dict[int, set[str]] = defaultdict(set)
    for _, e in pairs:
        if e["type"] in (STATE_CHANGED, VANISHED):
            ids_of_seq[e["data"]["seq"]].add(e["id"])
    for seq, ids in sorted(ids_of_seq.items()):
        if len(ids) > 1:
            told = sorted({f"{e['data'].get('previous_state')}->{e['data'].get('state')}"
                           for _, e in changes if e["data"]["seq"] == seq})
            problems.append(f"{app_id}: seq {seq} published under {len(ids)} ids ({', '.join(told)})")
    if any(e["type"] == VANISHED for _, e in pairs):
        problems.append(f"{app_id}: reported vanished, but it stayed on the RM")

    seen: set[str] = set()
    chain = []
    for _, e in changes:
        if e["id"] not in seen:
            seen.add(e["id"])
            chain.append(e["data"])
    if not chain:
        return problems
    if chain[0]["seq"] != 1 or chain[0]["previous_state"] is not None or not chain[0]["first_seen"]:
        problems.append(f"{app_id}: first event is not a first sighting with seq 1: "
                        f"seq {chain[0]['seq']} {chain[0]['previous_state']}->{chain[0]['state']}")
    for before, after in zip(chain, chain[1:], strict=False):
        if after["seq"] != before["seq"] + 1 or after["previous_state"] != before["state"]:
            problems.append(f"{app_id}: gap after seq {before['seq']} ({before['state']}): next is seq "
                            f"{after['seq']} {after['previous_state']}->{after['state']}")
    ends = [i for i, d in enumerate(chain) if d["state"] in TERMINAL]
    if ends and ends != [len(chain) - 1]:
        problems.append(f"{app_id}: terminal state not once and last: {[d['state'] for d in chain]}")
    return problems


def _compare(app_id: str, unique: list[tuple[Record, dict[str, Any]]], state: str, final_status: str) -> list[str]:
    changes = [(r, e) for r, e in unique if e["type"] == STATE_CHANGED]
    if not changes:
        return [f"{app_id}: no state_changed event at all (RM: {state}/{final_status})"]
    last = changes[-1][1]["data"]
    problems = []
    if (last["state"], last["final_status"]) != (state, final_status):
        problems.append(f"{app_id}: last state on the topic {last['state']}/{last['final_status']}, "
                        f"the RM says {state}/{final_status}")
    finished = [(r, e) for r, e in unique if e["type"] == FINISHED]
    if state in TERMINAL:
        if len(finished) != 1:
            problems.append(f"{app_id}: {len(finished)} distinct finished events (want exactly 1)")
        elif finished[0][0].offset < changes[-1][0].offset or finished[0][1]["data"]["state"] != last["state"]:
            (record, event), end = finished[0], changes[-1][0]
            problems.append(f"{app_id}: finished event ({event['data']['state']}, offset {record.offset}) "
                            f"not after its terminal transition (offset {end.offset})")
    elif finished:
        problems.append(f"{app_id}: finished event although the RM says {state}")
    return problems
