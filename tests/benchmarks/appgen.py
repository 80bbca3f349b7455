"""Realistic ``/ws/v1/cluster/apps`` answers (Hadoop 3.x shape, as a Hadoop 3.4 RM sends them with
``deSelects=resourceRequests``), generated deterministically.

The record layout copies what the local stack's real RM answered: ended apps carry ``timeouts``
and a ``resourceSecondsMap`` with the repeated ``entry`` key; running and accepted ones also carry
the large ``resourceInfo`` block (usage per partition) that the collector never reads. Names,
users, queues, tags and diagnostics vary the way they do on a shared cluster.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import orjson

CLUSTER_ID = 1796300000000
START_MS = CLUSTER_ID + 60_000
TERMINAL = ("FINISHED", "FAILED", "KILLED")

_TEAMS = ("etl", "bi", "ml", "risk", "ads", "search", "finance", "ops")
_WORDS = ("daily", "hourly", "load", "merge", "dedupe", "sessions", "clicks", "orders", "features",
          "train", "score", "export", "compact", "backfill", "audit", "report")
_TYPES = (("MAPREDUCE", 0.45), ("SPARK", 0.45), ("TEZ", 0.1))
_STACK = (
    "java.io.IOException: Job failed!\n\tat org.apache.hadoop.mapred.JobClient.runJob(JobClient.java:876)\n"
    "\tat org.apache.hadoop.mapreduce.Job.waitForCompletion(Job.java:1678)\n"
    "Caused by: org.apache.hadoop.ipc.RemoteException(java.io.FileNotFoundException): File does not exist: "
)


def _resource(memory: int, vcores: int) -> dict:
    def info(name: str, units: str, value: int) -> dict:
        return {"attributes": {}, "maximumAllocation": 9223372036854775807, "minimumAllocation": 0,
                "name": name, "resourceType": "COUNTABLE", "units": units, "value": value}

    return {"memory": memory, "vCores": vcores, "resourceInformations": {
        "resourceInformation": [info("memory-mb", "Mi", memory), info("vcores", "", vcores)]}}


def _resource_info(memory: int, vcores: int) -> dict:
    parts = {"used": _resource(memory, vcores), "reserved": _resource(0, 0), "pending": _resource(0, 0),
             "amUsed": _resource(1024, 1), "amLimit": _resource(0, 0), "userAmLimit": _resource(0, 0)}
    return {"resourceUsagesByPartition": [{"partitionName": "", **parts}]}


@dataclass
class App:
    """One generated application; ``state`` moves on with :meth:`advance`."""

    seq: int
    rng_seed: int
    state: str
    final: str
    started: int
    finished: int = 0
    encoded: bytes | None = None  # cache: the record only changes with the state
    encoded_lean: bytes | None = None

    def bytes(self, lean: bool = False) -> bytes:
        """The record as the RM sends it; ``lean``: with ``deSelects`` of every field it allows
        leaving out (resourceInfo, timeouts, the label expressions)."""
        if lean:
            if self.encoded_lean is None:
                self.encoded_lean = encode_record(self, lean=True)
            return self.encoded_lean
        if self.encoded is None:
            self.encoded = encode_record(self)
        return self.encoded

    @property
    def id(self) -> str:
        return f"application_{CLUSTER_ID}_{self.seq:06d}"

    def advance(self, now_ms: int) -> None:
        """One step of a life: ACCEPTED -> RUNNING -> an end."""
        self.encoded = self.encoded_lean = None
        if self.state == "ACCEPTED":
            self.state = "RUNNING"
        elif self.state == "RUNNING":
            roll = random.Random(self.rng_seed + 1).random()
            self.state, self.final = (("FINISHED", "SUCCEEDED") if roll < 0.8 else ("FINISHED", "FAILED")
                                      if roll < 0.9 else ("FAILED", "FAILED") if roll < 0.95 else ("KILLED", "KILLED"))
            self.finished = now_ms

    def record(self) -> dict:
        rng = random.Random(self.rng_seed)
        team = rng.choice(_TEAMS)
        kind = rng.choices([t for t, _ in _TYPES], [w for _, w in _TYPES])[0]
        words = "-".join(rng.sample(_WORDS, 3))
        table = words.replace("-", "_")
        name = (f"{team}-{words}-{self.seq}" if kind != "TEZ"
                else f"HIVE-{rng.getrandbits(64):016x} INSERT OVERWRITE TABLE {team}.{table} (Stage-1)")
        user = f"{team}{rng.randint(1, 40):02d}" if rng.random() < 0.7 else f"svc-{team}"
        ended = self.state in TERMINAL
        launched = self.state != "ACCEPTED"
        launch = self.started + rng.randint(500, 9000) if launched else 0
        end = self.finished if ended else 0
        elapsed = (end or self.started + 60_000) - self.started
        mem_s, vc_s = rng.randint(1_000, 90_000_000), rng.randint(1, 40_000)
        if self.state == "ACCEPTED":
            diagnostics = ("[Tue Dec 03 16:11:48 +0000 2026] Application is added to the scheduler and is not yet "
                           "activated. Queue's AM resource limit exceeded.  Details : "
                           "AM Partition = <DEFAULT_PARTITION>; "
                           "AM Resource Request = <memory:1024, vCores:1>; Queue Resource Limit for AM = <memory:8192, "
                           "vCores:1>; User AM Resource Limit of the queue = <memory:8192, vCores:1>; ")
        elif self.final == "FAILED" or self.state == "FAILED":
            diagnostics = (f"Application {self.id} failed 2 times due to AM Container for "
                           f"appattempt_{CLUSTER_ID}_{self.seq:06d}_000002 exited with  exitCode: 1\n"
                           + _STACK + f"/data/{team}/{words}/part-{rng.randint(0, 9999):05d}\n" * rng.randint(1, 4))
        elif self.state == "KILLED":
            diagnostics = f"Application killed by user {user}.\n"
        else:
            diagnostics = ""
        host = f"worker{rng.randint(1, 400):03d}.dc1.example.com"
        rec = {
            "id": self.id, "user": user, "name": name, "queue": f"root.{team}.{rng.choice(('batch', 'adhoc'))}",
            "state": self.state, "finalStatus": self.final if ended else "UNDEFINED",
            "progress": 100.0 if ended else round(rng.random() * 100, 2) if launched else 0.0,
            "trackingUI": "History" if ended else "ApplicationMaster" if launched else "UNASSIGNED",
            "trackingUrl": f"http://rm1.dc1.example.com:8088/proxy/{self.id}/",
            "diagnostics": diagnostics, "clusterId": CLUSTER_ID, "applicationType": kind,
            "applicationTags": ",".join(rng.sample(("hec", team, "daily", "prod", f"oozie-{rng.randint(1, 999)}",
                                                   "airflow"), rng.randint(0, 3))),
            "priority": 0, "startedTime": self.started, "launchTime": launch, "finishedTime": end,
            "elapsedTime": elapsed,
            "amContainerLogs": f"http://{host}:8042/node/containerlogs/container_e07_{CLUSTER_ID}_{self.seq:06d}"
                               f"_01_000001/{user}" if launched else "",
            "amHostHttpAddress": f"{host}:8042" if launched else "",
            "amRPCAddress": f"{host}:{rng.randint(30000, 60000)}" if launched else "N/A",
            "masterNodeId": f"{host}:8041" if launched else "",
            "allocatedMB": -1 if ended else rng.randint(1, 64) * 1024 if launched else 0,
            "allocatedVCores": -1 if ended else rng.randint(1, 64) if launched else 0,
            "reservedMB": -1 if ended else 0, "reservedVCores": -1 if ended else 0,
            "runningContainers": -1 if ended else rng.randint(1, 64) if launched else 0,
            "memorySeconds": mem_s, "vcoreSeconds": vc_s,
            "queueUsagePercentage": 0.0 if ended else round(rng.random() * 20, 4),
            "clusterUsagePercentage": 0.0 if ended else round(rng.random() * 5, 4),
            "resourceSecondsMap": "@RSM@",
            "preemptedResourceMB": 0, "preemptedResourceVCores": 0, "numNonAMContainerPreempted": 0,
            "numAMContainerPreempted": 0, "preemptedMemorySeconds": 0, "preemptedVcoreSeconds": 0,
            "preemptedResourceSecondsMap": {},
            "logAggregationStatus": ("SUCCEEDED" if ended else "NOT_START") if rng.random() < 0.9 else "DISABLED",
            "unmanagedApplication": False, "amNodeLabelExpression": "",
        }
        if not ended:
            rec["resourceInfo"] = _resource_info(rec["allocatedMB"], rec["allocatedVCores"])
        rec["timeouts"] = {"timeout": [{"type": "LIFETIME", "expiryTime": "UNLIMITED", "remainingTimeInSeconds": -1}]}
        return rec


def encode_record(app: App, lean: bool = False) -> bytes:
    rec = app.record()
    if lean:
        for deselected in ("resourceInfo", "timeouts", "amNodeLabelExpression"):
            rec.pop(deselected, None)
    mem_s, vc_s = rec["memorySeconds"], rec["vcoreSeconds"]
    # The RM repeats the key "entry", which no dict can hold: spliced in as bytes.
    rsm = b'{"entry":{"key":"memory-mb","value":"%d"},"entry":{"key":"vcores","value":"%d"}}' % (mem_s, vc_s)
    return orjson.dumps(rec).replace(b'"@RSM@"', rsm)


def encode_answer(records: list[bytes]) -> bytes:
    if not records:
        return b'{"apps":null}'
    return b'{"apps":{"app":[' + b",".join(records) + b"]}}"


@dataclass
class Cluster:
    """A generated cluster: ``apps`` in submission order, about ``active_share`` of them active."""

    apps: list[App]
    now_ms: int

    @classmethod
    def generate(cls, n: int, *, active_share: float = 0.1, seed: int = 6) -> Cluster:
        rng = random.Random(seed)
        apps = []
        now = START_MS
        for i in range(1, n + 1):
            now += rng.randint(200, 2000)
            app = App(i, rng.getrandbits(32), "ACCEPTED", "UNDEFINED", now)
            if rng.random() >= active_share:
                app.advance(now)
                app.advance(now + rng.randint(5_000, 600_000))
            elif rng.random() < 0.7:
                app.advance(now)
            apps.append(app)
        return cls(apps, now + 1_000)

    def advance(self, share: float, *, seed: int = 7) -> list[App]:
        """Move ``share`` of all apps one step on (only active ones can move); returns them."""
        rng = random.Random(seed)
        active = [a for a in self.apps if a.state not in TERMINAL]
        moved = rng.sample(active, min(len(active), round(share * len(self.apps))))
        self.now_ms += 5_000
        for app in moved:
            app.advance(self.now_ms)
        return moved

    def answer(self) -> bytes:
        return encode_answer([a.bytes() for a in self.apps])


def answers(n: int, changed: float = 0.02, seed: int = 6, active_share: float = 0.1) -> tuple[bytes, bytes]:
    """The same cluster seen twice: before and after ``changed`` of its apps moved on."""
    cluster = Cluster.generate(n, seed=seed, active_share=active_share)
    before = cluster.answer()
    cluster.advance(changed, seed=seed + 1)
    return before, cluster.answer()
