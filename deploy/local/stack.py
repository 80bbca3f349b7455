#!/usr/bin/env python3
"""Local real test stack for hadoop-event-collector: Kafka (KRaft) + a small Hadoop cluster +
a Spark History Server.

Kafka and Hadoop run from jars that Maven resolves from Maven Central into ~/.m2 (never into
git); Spark runs from the `pyspark` package of the project venv (its bin/ and jars/).

    python deploy/local/stack.py fetch                 resolve jars (classpath files), compile job driver
    python deploy/local/stack.py up [--only kafka,hadoop,spark] [--timeout S]
    python deploy/local/stack.py status [--only ...]   exit 0 only if everything requested is ready
    python deploy/local/stack.py down                  stop everything `up`/`submit` started
    python deploy/local/stack.py stop kafka|hadoop|<daemon> [--kill]   stop it, data kept (fault tests)
    python deploy/local/stack.py start kafka|hadoop|<daemon> [--timeout S]  start it again on its data
    python deploy/local/stack.py env                   print KEY=value coordinates
    python deploy/local/stack.py submit wordcount|pi|sleep|kill|fail|fail-tasks [--detach] [--name N]
    python deploy/local/stack.py submit spark-scan [--kill-executor] [--detach] [--name N]

Processes (each its own JVM, own process group, PID files in <stackdir>/pids, logs in <stackdir>/logs):
    kafka            kafka.Kafka (broker+controller, KRaft), formatted fresh on every `up`
    namenode         org.apache.hadoop.hdfs.server.namenode.NameNode (formatted fresh on every `up`)
    datanode         org.apache.hadoop.hdfs.server.datanode.DataNode
    resourcemanager  org.apache.hadoop.yarn.server.resourcemanager.ResourceManager (CapacityScheduler)
    nodemanager      org.apache.hadoop.yarn.server.nodemanager.NodeManager (+ MapReduce shuffle)
    historyserver    org.apache.hadoop.mapreduce.v2.hs.JobHistoryServer
    spark-history    org.apache.spark.deploy.history.HistoryServer (via $SPARK_HOME/bin/spark-class,
                     SPARK_HOME = the pyspark package), event log dir <stackdir>/spark/events
                     (emptied on every `up`)
(The single-JVM MiniHadoopClusterManager is not used: in one JVM the RM, NM and JHS web apps share
Guice's static servlet pipeline and every /ws/v1 REST call is answered by the NodeManager's app.)

Environment variables (all optional):
    HEC_STACK_DIR           stack dir (default <repo>/.stack)
    HEC_JAVA_HOME           JDK used for every JVM (default /usr/lib/jvm/java-17-openjdk-amd64)
    HEC_PYTHON              python with aiokafka for the Kafka readiness probe and with pyspark for
                            Spark drivers/workers (default <repo>/.venv/bin/python)
    HEC_SPARK_HOME          Spark home (default: the directory of the pyspark package of HEC_PYTHON)
    HEC_SPARK_TIMEOUT       seconds to wait for the Spark History Server at `up` (default 120)
    HEC_SPARK_INPUT_BYTES   size of the spark-scan input written to HDFS once per stack (default 8000000)
    HEC_SHS_WAIT            seconds `submit spark-scan` waits for the SHS to show the app completed (60)
    HEC_MVN                 maven executable (default mvn)
    HEC_HADOOP_TIMEOUT      seconds to wait for Hadoop readiness at `up` (default 240)
    HEC_KAFKA_TIMEOUT       seconds to wait for Kafka readiness at `up` (default 120)
    HEC_SUBMIT_TIMEOUT      seconds a non-detached `submit` may take (default 600)
    HEC_KILL_SLEEP_MS       map sleep of the `kill` job (default 600000)
    HEC_SLEEP_MS            map sleep of the `sleep` job (default 5000)
  Ports (all bound to 127.0.0.1):
    HEC_KAFKA_PORT 19092            HEC_KAFKA_CONTROLLER_PORT 19093
    HEC_NN_PORT 18020 (NN RPC)      HEC_NN_HTTP_PORT 19870 (NN web + WebHDFS)
    HEC_DN_PORT 19866               HEC_DN_HTTP_PORT 19864         HEC_DN_IPC_PORT 19867
    HEC_RM_PORT 18032               HEC_RM_SCHEDULER_PORT 18030    HEC_RM_TRACKER_PORT 18031
    HEC_RM_ADMIN_PORT 18033         HEC_RM_WEB_PORT 18088
    HEC_NM_PORT 18041               HEC_NM_LOCALIZER_PORT 18040    HEC_NM_WEB_PORT 18042
    HEC_SHUFFLE_PORT 18562 (MapReduce ShuffleHandler: Hadoop binds it to the wildcard address)
    HEC_JHS_PORT 19020              HEC_JHS_WEB_PORT 19888         HEC_JHS_ADMIN_PORT 19033
    HEC_SHS_PORT 19080 (Spark History Server web UI + REST API)
"""
from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import getpass
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from xml.sax.saxutils import escape

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
STACK = Path(os.environ.get("HEC_STACK_DIR") or REPO / ".stack")
if not STACK.is_absolute():
    STACK = (REPO / STACK).resolve()
LOGS = STACK / "logs"
PIDS = STACK / "pids"
CPDIR = STACK / "classpath"
HADOOP_DIR = STACK / "hadoop"
HCONF = HADOOP_DIR / "conf"
HCLASSES = HADOOP_DIR / "classes"
KAFKA_DIR = STACK / "kafka"
CLIENT_CONF = HCONF / "hec-hadoop.xml"  # merged config for clients (-conf), = HADOOP_CONF
JAVA_SRC = HERE / "java" / "HecJobs.java"
SPARK_DIR = STACK / "spark"
SPARK_EVENTS = SPARK_DIR / "events"          # spark.history.fs.logDirectory = spark.eventLog.dir
SPARK_CONF = SPARK_DIR / "conf"              # SPARK_CONF_DIR (history.properties, log4j2.properties)
SPARK_HADOOP_CONF = SPARK_DIR / "hadoop-conf"  # HADOOP_CONF_DIR/YARN_CONF_DIR of Spark drivers
SPARK_JOB = HERE / "spark_job.py"

HOST = "127.0.0.1"
JAVA_HOME = Path(os.environ.get("HEC_JAVA_HOME") or "/usr/lib/jvm/java-17-openjdk-amd64")
USER = getpass.getuser()

PORT_DEFAULTS = {
    "HEC_KAFKA_PORT": 19092, "HEC_KAFKA_CONTROLLER_PORT": 19093,
    "HEC_NN_PORT": 18020, "HEC_NN_HTTP_PORT": 19870,
    "HEC_DN_PORT": 19866, "HEC_DN_HTTP_PORT": 19864, "HEC_DN_IPC_PORT": 19867,
    "HEC_RM_PORT": 18032, "HEC_RM_SCHEDULER_PORT": 18030, "HEC_RM_TRACKER_PORT": 18031,
    "HEC_RM_ADMIN_PORT": 18033, "HEC_RM_WEB_PORT": 18088,
    "HEC_NM_PORT": 18041, "HEC_NM_LOCALIZER_PORT": 18040, "HEC_NM_WEB_PORT": 18042,
    "HEC_SHUFFLE_PORT": 18562,
    "HEC_JHS_PORT": 19020, "HEC_JHS_WEB_PORT": 19888, "HEC_JHS_ADMIN_PORT": 19033,
    "HEC_SHS_PORT": 19080,
}


def port(key: str) -> int:
    return int(os.environ.get(key) or PORT_DEFAULTS[key])


COMPONENT_PORTS = {
    "kafka": ["HEC_KAFKA_PORT", "HEC_KAFKA_CONTROLLER_PORT"],
    "hadoop": [k for k in PORT_DEFAULTS if not k.startswith(("HEC_KAFKA", "HEC_SHS"))],
    "spark": ["HEC_SHS_PORT"],
}
COMPONENTS = ["kafka", "hadoop", "spark"]
HADOOP_DAEMONS = {
    "namenode": "org.apache.hadoop.hdfs.server.namenode.NameNode",
    "datanode": "org.apache.hadoop.hdfs.server.datanode.DataNode",
    "resourcemanager": "org.apache.hadoop.yarn.server.resourcemanager.ResourceManager",
    "nodemanager": "org.apache.hadoop.yarn.server.nodemanager.NodeManager",
    "historyserver": "org.apache.hadoop.mapreduce.v2.hs.JobHistoryServer",
}
PROCS = {"kafka": ["kafka"], "hadoop": list(HADOOP_DAEMONS), "spark": ["spark-history"]}
SHS_MAIN = "org.apache.spark.deploy.history.HistoryServer"

# Hadoop's own --add-opens list for Java 17 (hadoop-project/pom.xml / hadoop-env)
ADD_OPENS = ["-XX:+IgnoreUnrecognizedVMOptions"] + [
    f"--add-opens=java.base/{p}=ALL-UNNAMED" for p in (
        "java.io", "java.lang", "java.lang.reflect", "java.math", "java.net", "java.text",
        "java.util", "java.util.concurrent", "java.util.zip", "sun.security.util",
        "sun.security.x509")
]


class StackError(Exception):
    pass


def log(msg: str) -> None:
    print(f"[stack] {msg}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------- env
def coordinates() -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP_SERVERS": f"{HOST}:{port('HEC_KAFKA_PORT')}",
        "HADOOP_RM_URL": f"http://{HOST}:{port('HEC_RM_WEB_PORT')}",
        "HADOOP_JHS_URL": f"http://{HOST}:{port('HEC_JHS_WEB_PORT')}",
        "HADOOP_WEBHDFS_URL": f"http://{HOST}:{port('HEC_NN_HTTP_PORT')}",
        "HADOOP_CONF": str(CLIENT_CONF),
        "HADOOP_USER": USER,
        "SPARK_HISTORY_URL": f"http://{HOST}:{port('HEC_SHS_PORT')}",
        "SPARK_EVENT_LOG_DIR": SPARK_EVENTS.as_uri(),
        "HEC_STACK_DIR": str(STACK),
    }


def write_coordinates() -> None:
    c = coordinates()
    STACK.mkdir(parents=True, exist_ok=True)
    (STACK / "stack.env").write_text("".join(f"{k}={v}\n" for k, v in c.items()))
    (STACK / "stack.json").write_text(json.dumps(c, indent=2) + "\n")


@contextlib.contextmanager
def stack_lock():
    """Serialises fetch/up/down across concurrent stack.py runs (e.g. parallel test sessions):
    a second `up` waits for the first and then finds the stack running and ready."""
    STACK.mkdir(parents=True, exist_ok=True)
    with open(STACK / ".lock", "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log("another stack.py fetch/up/down is running: waiting for it")
            deadline = time.monotonic() + float(os.environ.get("HEC_LOCK_TIMEOUT", "900"))
            while True:
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise StackError(f"timed out waiting for the lock {STACK / '.lock'}")
                    time.sleep(0.5)
        yield


# --------------------------------------------------------------------------------------- fetch
def java_env() -> dict[str, str]:
    if not (JAVA_HOME / "bin" / "java").exists():
        raise StackError(f"no JDK at {JAVA_HOME} (set HEC_JAVA_HOME to a Java 17 JDK)")
    env = dict(os.environ)
    env["JAVA_HOME"] = str(JAVA_HOME)
    env["PATH"] = f"{JAVA_HOME / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}"
    for k in ("HADOOP_HOME", "HADOOP_CONF_DIR", "CLASSPATH", "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS"):
        env.pop(k, None)
    return env


def cp_file(name: str) -> Path:
    return CPDIR / f"{name}.classpath"


def fetch(force: bool = False) -> None:
    CPDIR.mkdir(parents=True, exist_ok=True)
    mvn = os.environ.get("HEC_MVN", "mvn")
    for name in ("kafka", "hadoop"):
        pom = HERE / name / "pom.xml"
        out = cp_file(name)
        if not force and out.exists() and out.stat().st_mtime > pom.stat().st_mtime and out.stat().st_size:
            missing = [j for j in out.read_text().strip().split(":") if not Path(j).exists()]
            if not missing:
                log(f"{name}: classpath up to date ({out})")
                continue
            log(f"{name}: {len(missing)} jars missing from ~/.m2, resolving again")
        log(f"{name}: resolving jars with Maven ({pom.relative_to(REPO)})")
        t0 = time.monotonic()
        tmp = out.with_suffix(".tmp")
        cmd = [mvn, "-q", "-B", "-f", str(pom), "dependency:build-classpath",
               f"-Dmdep.outputFile={tmp}"]
        try:
            r = subprocess.run(cmd, env=java_env(), capture_output=True, text=True)
        except FileNotFoundError:
            raise StackError(f"maven not found ({mvn}); install Maven or set HEC_MVN")
        if r.returncode != 0 or not tmp.exists():
            raise StackError(f"maven failed for {pom}:\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}")
        tmp.replace(out)
        log(f"{name}: {len(out.read_text().split(':'))} jars in {time.monotonic() - t0:.1f}s")
    compile_driver()


def compile_driver() -> None:
    marker = HCLASSES / "HecJobs.class"
    if marker.exists() and marker.stat().st_mtime > JAVA_SRC.stat().st_mtime \
            and marker.stat().st_mtime > cp_file("hadoop").stat().st_mtime:
        return
    shutil.rmtree(HCLASSES, ignore_errors=True)
    HCLASSES.mkdir(parents=True)
    log("compiling job driver HecJobs.java")
    r = subprocess.run([str(JAVA_HOME / "bin" / "javac"), "-nowarn", "-d", str(HCLASSES), "-cp",
                        classpath("hadoop"), str(JAVA_SRC)], env=java_env(),
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise StackError(f"javac failed:\n{r.stdout}\n{r.stderr}")


def need_fetch() -> bool:
    for name in ("kafka", "hadoop"):
        f = cp_file(name)
        if not f.exists() or f.stat().st_mtime <= (HERE / name / "pom.xml").stat().st_mtime:
            return True
    m = HCLASSES / "HecJobs.class"
    return not m.exists() or m.stat().st_mtime <= JAVA_SRC.stat().st_mtime


def classpath(name: str) -> str:
    f = cp_file(name)
    if not f.exists():
        raise StackError(f"{f} missing: run `stack.py fetch`")
    return f.read_text().strip()


# ----------------------------------------------------------------------------------- processes
def _proc_start_time(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    if fields[0] == "Z":
        return None
    return fields[19]


def pid_alive(info: dict) -> bool:
    st = _proc_start_time(info["pid"])
    return st is not None and st == info.get("start")


def read_pid(name: str) -> dict | None:
    f = PIDS / f"{name}.json"
    try:
        return json.loads(f.read_text())
    except (OSError, ValueError):
        return None


def spawn(name: str, cmd: list[str], cwd: Path | None = None, logname: str | None = None,
          env: dict | None = None) -> subprocess.Popen:
    LOGS.mkdir(parents=True, exist_ok=True)
    PIDS.mkdir(parents=True, exist_ok=True)
    logf = open(LOGS / f"{logname or name}.log", "ab")
    logf.write(f"\n===== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(cmd[:1] + cmd[-6:])}\n".encode())
    logf.flush()
    p = subprocess.Popen(cmd, cwd=str(cwd or STACK), env=env or java_env(), stdout=logf,
                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    logf.close()
    info = {"pid": p.pid, "pgid": p.pid, "start": _proc_start_time(p.pid), "name": name,
            "log": str(LOGS / f"{logname or name}.log"), "started": time.time()}
    (PIDS / f"{name}.json").write_text(json.dumps(info))
    return p


def stop_pids(names: list[str], grace: float = 20.0) -> None:
    infos = []
    for n in names:
        info = read_pid(n)
        if info and pid_alive(info):
            infos.append(info)
            try:
                os.killpg(info["pgid"], signal.SIGTERM)
            except ProcessLookupError:
                pass
            log(f"stopping {n} (pid {info['pid']})")
    deadline = time.monotonic() + grace
    while infos and time.monotonic() < deadline:
        infos = [i for i in infos if pid_alive(i) or _group_alive(i["pgid"])]
        time.sleep(0.3)
    for i in infos:
        log(f"{i['name']} did not stop in {grace:.0f}s: SIGKILL")
        try:
            os.killpg(i["pgid"], signal.SIGKILL)
        except ProcessLookupError:
            pass
    for n in names:
        (PIDS / f"{n}.json").unlink(missing_ok=True)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a group made only of zombies counts as gone
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                s = (d / "stat").read_text()
            except OSError:
                continue
            f = s[s.rindex(")") + 2:].split()
            if int(f[2]) == pgid and f[0] != "Z":
                return True
    return False


def _nested_stack(rest: str) -> bool:
    """True if the path STACK + rest lies inside another stack dir nested in this one (a dir
    below STACK with its own `.lock` and `pids/`): its processes are not ours."""
    d = STACK
    for part in [x for x in rest.split("/") if x]:
        d = d / part
        if (d / ".lock").is_file() and (d / "pids").is_dir():
            return True
    return False


_PATH_END = rb"\x00:,;=\s\"'"


def _mentions_stack(data: bytes) -> bool:
    """True if data names STACK itself or a path below it: `/tmp/x` matches `/tmp/x`,
    `/tmp/x/logs`, `-Dk=/tmp/x/a:/tmp/y`, never `/tmp/x2/...` (another stack dir whose name
    starts with ours), nor paths of a stack nested inside ours."""
    pat = (re.escape(str(STACK).encode()) + rb"((?:/[^" + _PATH_END + rb"]*)?)"
           rb"(?![^" + _PATH_END + rb"])")
    return any(not _nested_stack(m.group(1).decode(errors="replace"))
               for m in re.finditer(pat, data))


def _is_stack_container(pid: int) -> bool:
    """A YARN container process of this stack (or a child of one, e.g. a PySpark worker, whose
    command line does not mention the stack dir): the NodeManager sets CONTAINER_ID and
    LOCAL_DIRS (below our nm-local dir) in every container's environment."""
    try:
        env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False
    if not any(e.startswith(b"CONTAINER_ID=") for e in env):
        return False
    return any(e.startswith(b"LOCAL_DIRS=") and _mentions_stack(e[len(b"LOCAL_DIRS="):])
               for e in env)


def stray_pids() -> list[int]:
    """Processes of this stack that no PID file covers: command line mentions the stack dir
    (e.g. YARN containers, which the NodeManager starts in their own sessions with setsid), or
    the process runs in one of this stack's YARN containers. Paths of other stack dirs (also
    `/tmp/x2` next to `/tmp/x`, or a stack nested in ours) do not count."""
    me = {os.getpid(), os.getppid()}
    recorded = {i["pgid"] for i in map(read_pid, all_pid_names()) if i and pid_alive(i)}
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) in me:
            continue
        try:
            if os.getpgid(int(d.name)) in recorded:
                continue
        except ProcessLookupError:
            continue
        try:
            cmd = (d / "cmdline").read_bytes()
        except OSError:
            continue
        if (_mentions_stack(cmd) or _is_stack_container(int(d.name))) \
                and _proc_start_time(int(d.name)) is not None:
            found.append(int(d.name))
    return found


def kill_strays(grace: float = 10.0) -> None:
    pids = stray_pids()
    if not pids:
        return
    log(f"stopping {len(pids)} leftover process(es) of this stack: {pids}")
    for p in pids:
        try:
            os.kill(p, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_proc_start_time(p) for p in pids):
        time.sleep(0.3)
    for p in pids:
        if _proc_start_time(p):
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass


def all_pid_names() -> list[str]:
    return sorted(f.stem for f in PIDS.glob("*.json")) if PIDS.exists() else []


def down() -> None:
    names = all_pid_names()
    jobs = [n for n in names if n.startswith("job-")]
    # job clients first; then the NodeManager while the ResourceManager still answers (on
    # SIGTERM it stops its containers and unregisters from the RM, which takes a few seconds;
    # with the RM gone it retries for a long time); then everything else in parallel
    if jobs:
        stop_pids(jobs, grace=5)
    if "nodemanager" in names:
        stop_pids(["nodemanager"], grace=8)  # its last ~10 s are idle thread-pool waits
    rest = [n for n in all_pid_names()]
    if rest:
        stop_pids(rest)
    kill_strays()
    left = stray_pids()
    if left:
        raise StackError(f"processes still running after down: {left}")
    log("stack is down")


# ----------------------------------------------------------------------------------- readiness
def http_json(url: str, timeout: float = 3.0, method: str = "GET", body: dict | None = None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={
        "Accept": "application/json", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read().decode() or "null")


def venv_python() -> str:
    p = os.environ.get("HEC_PYTHON")
    if p:
        return p
    import importlib.util
    if importlib.util.find_spec("aiokafka") is not None:
        return sys.executable
    v = REPO / ".venv" / "bin" / "python"
    return str(v) if v.exists() else sys.executable


KAFKA_PROBE = r"""
import asyncio, sys
from aiokafka.admin import AIOKafkaAdminClient
async def main():
    a = AIOKafkaAdminClient(bootstrap_servers=sys.argv[1], request_timeout_ms=4000)
    await a.start()
    try:
        print(sorted(await a.list_topics()))
    finally:
        await a.close()
asyncio.run(asyncio.wait_for(main(), 8))
"""


def kafka_ready() -> tuple[bool, str]:
    try:
        r = subprocess.run([venv_python(), "-c", KAFKA_PROBE, f"{HOST}:{port('HEC_KAFKA_PORT')}"],
                           capture_output=True, text=True, timeout=15)
    except subprocess.TimeoutExpired:
        return False, "aiokafka probe timed out"
    if r.returncode == 0:
        return True, "topics listed with aiokafka"
    if "No module named 'aiokafka'" in r.stderr:
        raise StackError(f"{venv_python()} has no aiokafka: run `make venv` or set HEC_PYTHON")
    return False, (r.stderr.strip().splitlines() or ["probe failed"])[-1][:200]


def hadoop_ready() -> tuple[bool, str]:
    rm = f"http://{HOST}:{port('HEC_RM_WEB_PORT')}"
    try:
        info = http_json(f"{rm}/ws/v1/cluster/info")["clusterInfo"]
        if info.get("state") != "STARTED":
            return False, f"RM state {info.get('state')}"
        m = http_json(f"{rm}/ws/v1/cluster/metrics")["clusterMetrics"]
        if m.get("activeNodes", 0) < 1:
            return False, "no active NodeManager yet"
        http_json(f"http://{HOST}:{port('HEC_JHS_WEB_PORT')}/ws/v1/history/info")
        nn = f"http://{HOST}:{port('HEC_NN_HTTP_PORT')}"
        http_json(f"{nn}/webhdfs/v1/?op=GETFILESTATUS&user.name={USER}")
        b = http_json(f"{nn}/jmx?qry=Hadoop:service=NameNode,name=NameNodeInfo")["beans"][0]
        if b.get("Safemode"):
            return False, "NameNode in safe mode"
        if "{}" == b.get("LiveNodes", "{}").strip():
            return False, "no live DataNode yet"
    except (OSError, ValueError, KeyError, IndexError) as e:
        return False, f"{type(e).__name__}: {e}"[:200]
    return True, "RM STARTED, NodeManager registered, JHS and WebHDFS answer"


def spark_ready() -> tuple[bool, str]:
    try:
        apps = http_json(f"http://{HOST}:{port('HEC_SHS_PORT')}/api/v1/applications")
    except (OSError, ValueError) as e:
        return False, f"{type(e).__name__}: {e}"[:200]
    if not isinstance(apps, list):
        return False, f"/api/v1/applications answered {str(apps)[:100]}"
    return True, f"SHS /api/v1/applications answers ({len(apps)} application(s))"


READY = {"kafka": kafka_ready, "hadoop": hadoop_ready, "spark": spark_ready}


def running(component: str) -> bool:
    infos = [read_pid(n) for n in PROCS[component]]
    return all(i and pid_alive(i) for i in infos)


# -------------------------------------------------------------------------------------- config
def write_xml(path: Path, props: dict[str, object]) -> None:
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', "<!-- written by deploy/local/stack.py -->",
             "<configuration>"]
    for k, v in props.items():
        lines.append(f"  <property><name>{escape(k)}</name><value>{escape(str(v))}</value></property>")
    lines.append("</configuration>")
    path.write_text("\n".join(lines) + "\n")


def hadoop_config() -> dict[str, dict[str, object]]:
    d = HADOOP_DIR / "data"
    h = HOST
    jars = classpath("hadoop").split(":")
    core = {
        "fs.defaultFS": f"hdfs://{h}:{port('HEC_NN_PORT')}",
        "hadoop.tmp.dir": str(HADOOP_DIR / "tmp"),
        "hadoop.http.staticuser.user": USER,
    }
    hdfs = {
        "dfs.namenode.name.dir": f"file://{d}/nn",
        "dfs.datanode.data.dir": f"file://{d}/dn",
        "dfs.namenode.rpc-address": f"{h}:{port('HEC_NN_PORT')}",
        "dfs.namenode.http-address": f"{h}:{port('HEC_NN_HTTP_PORT')}",
        "dfs.namenode.https-address": f"{h}:0",
        "dfs.namenode.secondary.http-address": f"{h}:0",
        "dfs.namenode.secondary.https-address": f"{h}:0",
        "dfs.namenode.backup.address": f"{h}:0",
        "dfs.namenode.backup.http-address": f"{h}:0",
        "dfs.datanode.address": f"{h}:{port('HEC_DN_PORT')}",
        "dfs.datanode.http.address": f"{h}:{port('HEC_DN_HTTP_PORT')}",
        "dfs.datanode.ipc.address": f"{h}:{port('HEC_DN_IPC_PORT')}",
        "dfs.datanode.https.address": f"{h}:0",
        "dfs.replication": 1,
        "dfs.namenode.safemode.extension": 0,
        "dfs.namenode.safemode.min.datanodes": 0,
        "dfs.permissions.enabled": "false",
        "dfs.datanode.du.reserved": 0,
        "dfs.namenode.resource.du.reserved": 0,
    }
    yarn = {
        "yarn.resourcemanager.hostname": h,
        "yarn.resourcemanager.address": f"{h}:{port('HEC_RM_PORT')}",
        "yarn.resourcemanager.scheduler.address": f"{h}:{port('HEC_RM_SCHEDULER_PORT')}",
        "yarn.resourcemanager.resource-tracker.address": f"{h}:{port('HEC_RM_TRACKER_PORT')}",
        "yarn.resourcemanager.admin.address": f"{h}:{port('HEC_RM_ADMIN_PORT')}",
        "yarn.resourcemanager.webapp.address": f"{h}:{port('HEC_RM_WEB_PORT')}",
        "yarn.resourcemanager.webapp.https.address": f"{h}:0",
        "yarn.resourcemanager.recovery.enabled": "false",
        "yarn.resourcemanager.max-completed-applications": 1000,
        "yarn.resourcemanager.scheduler.class":
            "org.apache.hadoop.yarn.server.resourcemanager.scheduler.capacity.CapacityScheduler",
        "yarn.scheduler.minimum-allocation-mb": 256,
        "yarn.scheduler.maximum-allocation-mb": 2048,
        "yarn.scheduler.maximum-allocation-vcores": 2,
        "yarn.nodemanager.hostname": h,
        "yarn.nodemanager.address": f"{h}:{port('HEC_NM_PORT')}",
        "yarn.nodemanager.localizer.address": f"{h}:{port('HEC_NM_LOCALIZER_PORT')}",
        "yarn.nodemanager.webapp.address": f"{h}:{port('HEC_NM_WEB_PORT')}",
        "yarn.nodemanager.webapp.https.address": f"{h}:0",
        "yarn.nodemanager.collector-service.address": f"{h}:0",
        "yarn.nodemanager.amrmproxy.address": f"{h}:0",
        "yarn.nodemanager.local-dirs": str(d / "nm-local"),
        "yarn.nodemanager.log-dirs": str(d / "nm-logs"),
        "yarn.nodemanager.resource.memory-mb": 4096,
        "yarn.nodemanager.resource.cpu-vcores": 4,
        "yarn.nodemanager.vmem-check-enabled": "false",
        "yarn.nodemanager.pmem-check-enabled": "false",
        "yarn.nodemanager.disk-health-checker.max-disk-utilization-per-disk-percentage": 99,
        "yarn.nodemanager.disk-health-checker.min-free-space-per-disk-mb": 0,
        "yarn.nodemanager.aux-services": "mapreduce_shuffle",
        "yarn.nodemanager.aux-services.mapreduce_shuffle.class":
            "org.apache.hadoop.mapred.ShuffleHandler",
        "yarn.nodemanager.recovery.enabled": "false",
        "yarn.nodemanager.delete.debug-delay-sec": 0,
        # NM shutdown waits sleep-delay-before-sigkill + process-kill-wait + 1 s for apps
        "yarn.nodemanager.process-kill-wait.ms": 2000,
        "yarn.nodemanager.env-whitelist":
            "JAVA_HOME,HADOOP_COMMON_HOME,HADOOP_HDFS_HOME,HADOOP_CONF_DIR,"
            "CLASSPATH_PREPEND_DISTCACHE,HADOOP_YARN_HOME,HADOOP_HOME,PATH,LANG,TZ",
        "yarn.log-aggregation-enable": "false",
        "yarn.timeline-service.enabled": "false",
        "yarn.webapp.ui2.enable": "false",
        "yarn.application.classpath": str(HCONF),
    }
    mapred = {
        "mapreduce.framework.name": "yarn",
        "mapreduce.application.classpath": ",".join([str(HCONF)] + jars),
        "yarn.app.mapreduce.am.staging-dir": "/tmp/hadoop-yarn/staging",
        "yarn.app.mapreduce.am.resource.mb": 512,
        "yarn.app.mapreduce.am.command-opts": "-Xmx384m -XX:+UseSerialGC",
        "mapreduce.map.memory.mb": 512,
        "mapreduce.reduce.memory.mb": 512,
        "mapreduce.map.java.opts": "-Xmx384m -XX:+UseSerialGC",
        "mapreduce.reduce.java.opts": "-Xmx384m -XX:+UseSerialGC",
        "mapreduce.shuffle.port": port("HEC_SHUFFLE_PORT"),
        "mapreduce.job.ubertask.enable": "false",
        "mapreduce.jobhistory.address": f"{h}:{port('HEC_JHS_PORT')}",
        "mapreduce.jobhistory.webapp.address": f"{h}:{port('HEC_JHS_WEB_PORT')}",
        "mapreduce.jobhistory.webapp.https.address": f"{h}:0",
        "mapreduce.jobhistory.admin.address": f"{h}:{port('HEC_JHS_ADMIN_PORT')}",
        "mapreduce.jobhistory.move.interval-ms": 2000,
        "mapreduce.jobhistory.recovery.enable": "false",
        "mapreduce.task.io.sort.mb": 32,
        "mapreduce.client.progressmonitor.pollinterval": 500,
    }
    return {"core-site.xml": core, "hdfs-site.xml": hdfs, "yarn-site.xml": yarn,
            "mapred-site.xml": mapred}


CAPACITY = {
    "yarn.scheduler.capacity.root.queues": "default",
    "yarn.scheduler.capacity.root.default.capacity": 100,
    "yarn.scheduler.capacity.root.default.maximum-capacity": 100,
    "yarn.scheduler.capacity.root.default.user-limit-factor": 1,
    "yarn.scheduler.capacity.root.default.state": "RUNNING",
    "yarn.scheduler.capacity.maximum-am-resource-percent": 0.5,
    "yarn.scheduler.capacity.node-locality-delay": -1,
}

LOG4J = """\
log4j.rootLogger=INFO,console
log4j.appender.console=org.apache.log4j.ConsoleAppender
log4j.appender.console.target=System.err
log4j.appender.console.layout=org.apache.log4j.PatternLayout
log4j.appender.console.layout.ConversionPattern=%d{ISO8601} %p %c{2}: %m%n
log4j.logger.org.apache.hadoop.util.NativeCodeLoader=ERROR
log4j.logger.org.apache.hadoop.hdfs.StateChange=WARN
log4j.logger.org.apache.hadoop.hdfs.server.namenode.FSNamesystem.audit=WARN
log4j.logger.org.apache.hadoop.security.authentication.server.AuthenticationFilter=ERROR
log4j.logger.kafka=INFO
log4j.logger.org.apache.kafka=INFO
log4j.logger.state.change.logger=WARN
"""


def write_hadoop_conf() -> None:
    HCONF.mkdir(parents=True, exist_ok=True)
    merged: dict[str, object] = {}
    for fname, props in hadoop_config().items():
        write_xml(HCONF / fname, props)
        merged.update(props)
    write_xml(HCONF / "capacity-scheduler.xml", CAPACITY)
    write_xml(CLIENT_CONF, merged)
    (HCONF / "log4j.properties").write_text(LOG4J)


def hadoop_java(main: str, xmx: str, extra: list[str] | None = None) -> list[str]:
    return ([str(JAVA_HOME / "bin" / "java"), f"-Xmx{xmx}", "-XX:+UseSerialGC"] + ADD_OPENS + [
        "-Djava.net.preferIPv4Stack=true",
        f"-Dhadoop.log.dir={LOGS}", f"-Dhadoop.home.dir={HADOOP_DIR}",
        f"-Dlog4j.configuration=file:{HCONF / 'log4j.properties'}",
        f"-Djava.io.tmpdir={HADOOP_DIR / 'tmp'}",
        "-cp", f"{HCONF}:{HCLASSES}:{classpath('hadoop')}"] + (extra or []) + [main])


# -------------------------------------------------------------------------------------- spark
def spark_python() -> str:
    """Python for Spark drivers and PySpark workers (must have pyspark): HEC_PYTHON or the
    project venv."""
    p = os.environ.get("HEC_PYTHON")
    if p:
        return p
    v = REPO / ".venv" / "bin" / "python"
    return str(v) if v.exists() else sys.executable


_SPARK_HOME: Path | None = None


def spark_home() -> Path:
    """SPARK_HOME = the installed pyspark package (it carries bin/spark-class and jars/)."""
    global _SPARK_HOME
    if _SPARK_HOME is None:
        h = os.environ.get("HEC_SPARK_HOME")
        if not h:
            py = spark_python()
            code = "import os, pyspark; print(os.path.dirname(pyspark.__file__))"
            r = subprocess.run([py, "-c", code], capture_output=True, text=True)
            if r.returncode != 0:
                raise StackError(f"{py} cannot import pyspark (install the test extra: "
                                 f"`make venv`, or set HEC_PYTHON / HEC_SPARK_HOME; or leave Spark "
                                 f"out: --only kafka,hadoop): {r.stderr.strip()[-300:]}")
            h = r.stdout.strip()
        home = Path(h)
        if not (home / "bin" / "spark-class").exists() or not (home / "jars").is_dir():
            raise StackError(f"{home} is not a Spark home (no bin/spark-class or jars/)")
        _SPARK_HOME = home
    return _SPARK_HOME


def spark_env() -> dict[str, str]:
    env = java_env()
    for k in list(env):
        if k.startswith(("SPARK_", "PYSPARK_", "YARN_")):
            env.pop(k)
    env.update({
        "SPARK_HOME": str(spark_home()),
        "SPARK_CONF_DIR": str(SPARK_CONF),  # not $SPARK_HOME/conf: nothing from outside the stack
        "SPARK_LOCAL_IP": HOST,             # Spark's web UIs bind to SPARK_LOCAL_IP (else 0.0.0.0)
    })
    return env


SPARK_LOG4J2 = """\
rootLogger.level = info
rootLogger.appenderRef.stderr.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{yy/MM/dd HH:mm:ss} %p %c{1}: %m%n%ex
# a PySpark driver counts as a shell: Spark then filters the console at WARN, except for loggers
# configured here
logger.spark.name = org.apache.spark
logger.spark.level = info
logger.jetty.name = org.sparkproject.jetty
logger.jetty.level = warn
logger.hadoop.name = org.apache.hadoop
logger.hadoop.level = warn
# "Submitted application application_..." (stack.py takes the id from it)
logger.yarnclient.name = org.apache.hadoop.yarn.client.api.impl.YarnClientImpl
logger.yarnclient.level = info
logger.netty.name = io.netty
logger.netty.level = warn
logger.nativecode.name = org.apache.hadoop.util.NativeCodeLoader
logger.nativecode.level = error
"""


def write_spark_conf() -> None:
    SPARK_CONF.mkdir(parents=True, exist_ok=True)
    props = {
        "spark.history.fs.logDirectory": SPARK_EVENTS.as_uri(),
        "spark.history.ui.port": port("HEC_SHS_PORT"),
        "spark.history.fs.update.interval": "2s",
        "spark.history.fs.cleaner.enabled": "false",
        "spark.history.retainedApplications": 50,
        "spark.ui.showConsoleProgress": "false",
    }
    (SPARK_CONF / "history.properties").write_text("".join(f"{k}={v}\n" for k, v in props.items()))
    (SPARK_CONF / "log4j2.properties").write_text(SPARK_LOG4J2)


def start_spark_history() -> None:
    """The Spark History Server over the stack's event log dir (emptied: fresh on every `up`)."""
    shutil.rmtree(SPARK_EVENTS, ignore_errors=True)
    SPARK_EVENTS.mkdir(parents=True)
    (SPARK_DIR / "tmp").mkdir(parents=True, exist_ok=True)
    write_spark_conf()
    env = spark_env()
    env["SPARK_DAEMON_MEMORY"] = "512m"
    env["SPARK_DAEMON_JAVA_OPTS"] = (f"-XX:+UseSerialGC -Djava.net.preferIPv4Stack=true "
                                     f"-Djava.io.tmpdir={SPARK_DIR / 'tmp'}")
    # spark-class runs Spark's launcher (org.apache.spark.launcher.Main, which adds Spark's
    # Java 17 --add-opens) and then `exec`s the JVM: the recorded PID/process group is the SHS
    spawn("spark-history", [str(spark_home() / "bin" / "spark-class"), SHS_MAIN,
                            "--properties-file", str(SPARK_CONF / "history.properties")], env=env)


def write_spark_hadoop_conf() -> None:
    """Client config for Spark drivers (HADOOP_CONF_DIR/YARN_CONF_DIR; Spark ships it to the
    YARN containers): core, hdfs and yarn site of the stack, no mapred-site."""
    SPARK_HADOOP_CONF.mkdir(parents=True, exist_ok=True)
    for fname, props in hadoop_config().items():
        if fname != "mapred-site.xml":
            write_xml(SPARK_HADOOP_CONF / fname, props)


# ----------------------------------------------------------------------------------------- up
def check_ports(component: str) -> None:
    busy = []
    for key in COMPONENT_PORTS[component]:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port(key)))
        except OSError:
            busy.append(f"{port(key)} ({key})")
        finally:
            s.close()
    if busy:
        raise StackError(f"{component}: port(s) already in use by another process: "
                         f"{', '.join(busy)}; stop it or override the env var(s)")


def prepare_kafka() -> subprocess.Popen:
    shutil.rmtree(KAFKA_DIR, ignore_errors=True)
    (KAFKA_DIR / "data").mkdir(parents=True)
    kp, cp_ = port("HEC_KAFKA_PORT"), port("HEC_KAFKA_CONTROLLER_PORT")
    props = {
        "process.roles": "broker,controller", "node.id": 1,
        "controller.quorum.voters": f"1@{HOST}:{cp_}",
        "listeners": f"PLAINTEXT://{HOST}:{kp},CONTROLLER://{HOST}:{cp_}",
        "advertised.listeners": f"PLAINTEXT://{HOST}:{kp}",
        "controller.listener.names": "CONTROLLER", "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(KAFKA_DIR / "data"),
        "num.partitions": 1, "default.replication.factor": 1,
        "offsets.topic.replication.factor": 1, "offsets.topic.num.partitions": 1,
        "transaction.state.log.replication.factor": 1, "transaction.state.log.min.isr": 1,
        "group.initial.rebalance.delay.ms": 0,
        # as on most production clusters: topics are created on purpose (tests and run.py do)
        "auto.create.topics.enable": "false",
        "log.segment.bytes": 16777216,
    }
    (KAFKA_DIR / "server.properties").write_text("".join(f"{k}={v}\n" for k, v in props.items()))
    (KAFKA_DIR / "log4j.properties").write_text(LOG4J)
    cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    return spawn("kafka-format", kafka_java("kafka.tools.StorageTool") + [
        # "=" form: a random id may start with "-", which argparse would take for an option
        "format", f"--cluster-id={cluster_id}", "-c", str(KAFKA_DIR / "server.properties")])


def kafka_java(main: str) -> list[str]:
    return [str(JAVA_HOME / "bin" / "java"), "-Xms128m", "-Xmx512m", "-XX:+UseSerialGC",
            "-Djava.net.preferIPv4Stack=true", "-Djava.awt.headless=true",
            f"-Dlog4j.configuration=file:{KAFKA_DIR / 'log4j.properties'}",
            f"-Dkafka.logs.dir={LOGS}", "-cp", classpath("kafka"), main]


def prepare_hadoop() -> subprocess.Popen:
    shutil.rmtree(HADOOP_DIR / "data", ignore_errors=True)
    shutil.rmtree(HADOOP_DIR / "tmp", ignore_errors=True)
    for sub in ("data/nn", "data/dn", "data/nm-local", "data/nm-logs", "tmp"):
        (HADOOP_DIR / sub).mkdir(parents=True, exist_ok=True)
    write_hadoop_conf()
    return spawn("namenode-format", hadoop_java(HADOOP_DAEMONS["namenode"], "256m") + [
        "-format", "-force", "-nonInteractive", "-clusterid", "hec-local"])


def tail(path: Path | str, n: int = 40) -> str:
    try:
        lines = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(lines[-n:])


def up(components: list[str], timeouts: dict[str, float]) -> None:
    if {"kafka", "hadoop"} & set(components) and need_fetch():
        fetch()
    if "spark" in components:
        spark_home()  # fails early with a clear message when pyspark is missing
    t0 = time.monotonic()
    todo = []
    for c in components:
        if running(c) and READY[c]()[0]:
            log(f"{c}: already running and ready")
            continue
        stop_pids(PROCS[c])  # partial leftovers of an earlier run
        todo.append(c)
    if "hadoop" in todo:
        kill_strays()
    for c in todo:
        check_ports(c)
    if todo:
        LOGS.mkdir(parents=True, exist_ok=True)
    write_coordinates()
    started: list[str] = []
    try:
        formats = {}
        if "kafka" in todo:
            formats["kafka"] = prepare_kafka()
        if "hadoop" in todo:
            formats["hadoop"] = prepare_hadoop()
        for c, p in formats.items():
            rc = p.wait(timeout=120)
            (PIDS / f"{'kafka' if c == 'kafka' else 'namenode'}-format.json").unlink(missing_ok=True)
            if rc != 0:
                logf = LOGS / ("kafka-format.log" if c == "kafka" else "namenode-format.log")
                raise StackError(f"{c}: format failed (exit {rc}):\n{tail(logf)}")
        if "kafka" in todo:
            spawn("kafka", kafka_java("kafka.Kafka") + [str(KAFKA_DIR / "server.properties")])
            started.append("kafka")
        if "spark" in todo:
            start_spark_history()
            started.append("spark-history")
        if "hadoop" in todo:
            mem = {"namenode": "512m", "datanode": "256m", "resourcemanager": "512m",
                   "nodemanager": "512m", "historyserver": "384m"}
            for name, main in HADOOP_DAEMONS.items():
                spawn(name, hadoop_java(main, mem[name], [f"-Dproc_{name}"]))
                started.append(name)
        pending = {c: time.monotonic() + timeouts[c] for c in todo}
        last: dict[str, str] = {}
        while pending:
            for c in list(pending):
                dead = [n for n in PROCS[c] if not pid_alive(read_pid(n) or {"pid": -1})]
                if dead:
                    raise StackError(f"{c}: {', '.join(dead)} exited during startup:\n" +
                                     "\n".join(f"--- {n}.log\n{tail(LOGS / f'{n}.log')}" for n in dead))
                ok, why = READY[c]()
                if ok:
                    log(f"{c}: ready after {time.monotonic() - t0:.1f}s ({why})")
                    del pending[c]
                elif time.monotonic() > pending[c]:
                    raise StackError(f"{c}: not ready after {timeouts[c]:.0f}s ({why}):\n" +
                                     "\n".join(f"--- {n}.log\n{tail(LOGS / f'{n}.log')}"
                                               for n in PROCS[c]))
                elif why != last.get(c):
                    last[c] = why
                    log(f"{c}: waiting ({why})")
            time.sleep(1)
    except BaseException:
        if started:
            log("startup failed: stopping what was started")
            stop_pids(started, grace=10)
            if any(n in HADOOP_DAEMONS for n in started):
                kill_strays()
        raise
    if todo:
        (STACK / "startup-seconds.txt").write_text(f"{time.monotonic() - t0:.1f}\n")
    for k, v in coordinates().items():
        print(f"{k}={v}")


# ------------------------------------------------------------------------------- stop / start
#: What `stop`/`start` accept: a component or one of its processes. Kafka and the Hadoop daemons
#: restart on the data they had (only `up` formats); the Spark History Server is not offered:
#: its start empties the event log dir.
RESTARTABLE = ["kafka", "hadoop", *HADOOP_DAEMONS]


def _restart_names(target: str) -> tuple[list[str], str]:
    """(process names, component whose readiness counts) of a `stop`/`start` target."""
    if target == "kafka":
        return ["kafka"], "kafka"
    if target == "hadoop":
        return list(HADOOP_DAEMONS), "hadoop"
    return [target], "hadoop"


def stop_component(target: str, kill: bool = False) -> None:
    """Stop a running component or daemon and keep its data, for fault tests (a broker outage,
    a ResourceManager restart); `start` brings it back. ``kill``: SIGKILL at once (a crash)
    instead of SIGTERM with a grace period (a clean shutdown)."""
    names, _ = _restart_names(target)
    alive = [n for n in names if pid_alive(read_pid(n) or {"pid": -1})]
    if not alive:
        log(f"{target}: not running")
        return
    if kill:
        infos = [i for i in map(read_pid, alive) if i]
        for i in infos:
            log(f"killing {i['name']} (pid {i['pid']})")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(i["pgid"], signal.SIGKILL)
        deadline = time.monotonic() + 10
        while any(_group_alive(i["pgid"]) for i in infos) and time.monotonic() < deadline:
            time.sleep(0.1)
        for n in alive:
            (PIDS / f"{n}.json").unlink(missing_ok=True)
    else:
        stop_pids(alive, grace=30.0)
    log(f"{target}: stopped (data kept; `start {target}` resumes on it)")


def start_component(target: str, timeout: float) -> None:
    """Start again what `stop` stopped, on its existing data (no format): Kafka keeps its KRaft
    log dir (topics, records, cluster id), HDFS its blocks. Waits until the component is ready."""
    names, component = _restart_names(target)
    if component == "kafka" and not (KAFKA_DIR / "data" / "meta.properties").exists():
        raise StackError("Kafka was never formatted in this stack dir: run `stack.py up` first")
    if component == "hadoop" and not (HCONF / "yarn-site.xml").exists():
        raise StackError("Hadoop was never set up in this stack dir: run `stack.py up` first")
    todo = [n for n in names if not pid_alive(read_pid(n) or {"pid": -1})]
    if not todo:
        log(f"{target}: already running")
    t0 = time.monotonic()
    for n in todo:
        if component == "kafka":
            spawn(n, kafka_java("kafka.Kafka") + [str(KAFKA_DIR / "server.properties")])
        else:
            mem = {"namenode": "512m", "datanode": "256m", "resourcemanager": "512m",
                   "nodemanager": "512m", "historyserver": "384m"}
            spawn(n, hadoop_java(HADOOP_DAEMONS[n], mem[n], [f"-Dproc_{n}"]))
    deadline = t0 + timeout
    while True:
        dead = [n for n in todo if not pid_alive(read_pid(n) or {"pid": -1})]
        if dead:
            raise StackError(f"{', '.join(dead)} exited during startup:\n" +
                             "\n".join(f"--- {n}.log\n{tail(LOGS / f'{n}.log')}" for n in dead))
        ok, why = READY[component]()
        if ok:
            log(f"{target}: ready after {time.monotonic() - t0:.1f}s ({why})")
            return
        if time.monotonic() > deadline:
            raise StackError(f"{target}: not ready after {timeout:.0f}s ({why})")
        time.sleep(0.5)


def status(components: list[str]) -> int:
    rc = 0
    for c in components:
        run = running(c)
        ok, why = READY[c]() if run else (False, "not running")
        print(f"{c}: {'running' if run else 'stopped'}, {'ready' if ok else 'NOT ready'} ({why})")
        for n in PROCS[c]:
            i = read_pid(n)
            if i and pid_alive(i):
                print(f"  {n}: pid {i['pid']}")
        rc |= 0 if ok else 1
    return rc


# -------------------------------------------------------------------------------------- submit
WORDS = ("yarn hdfs mapreduce kafka event collector history server node manager resource "
         "container application attempt queue scheduler block replica namenode datanode "
         "shuffle reduce map task counter job finished killed failed running accepted").split()


def make_input(path: Path, size: int = 300_000, seed: str = "") -> None:
    rnd = random.Random(seed)
    out, n = [], 0
    while n < size:
        line = " ".join(rnd.choice(WORDS) for _ in range(rnd.randint(5, 15)))
        out.append(line)
        n += len(line) + 1
    path.write_text("\n".join(out) + "\n")


APP_RE = re.compile(r"(?:HEC_APPLICATION_ID |Submitted application )(application_\d+_\d+)")


def rm_app(app_id: str) -> dict:
    return http_json(f"http://{HOST}:{port('HEC_RM_WEB_PORT')}/ws/v1/cluster/apps/{app_id}")["app"]


def forget_finished_clients() -> None:
    for n in all_pid_names():  # forget finished detached clients
        if n.startswith("job-") and not pid_alive(read_pid(n) or {"pid": -1}):
            (PIDS / f"{n}.json").unlink(missing_ok=True)


def wait_app_id(p: subprocess.Popen, logpath: Path, deadline: float) -> str:
    while True:
        m = APP_RE.search(logpath.read_text(errors="replace"))
        if m:
            return m.group(1)
        if p.poll() is not None:
            raise StackError(f"job client exited ({p.returncode}) before submitting "
                             f"an application; log {logpath}:\n{tail(logpath)}")
        if time.monotonic() > deadline:
            raise StackError(f"no application id in time; log {logpath}")
        time.sleep(0.2)


def ready_to_submit() -> None:
    """Jars resolved and Hadoop answering, or a clear error."""
    if need_fetch():
        with stack_lock():
            fetch()
    ok, why = hadoop_ready()
    if not ok:
        raise StackError(f"Hadoop is not ready ({why}); run `stack.py up` first")


def submit(kind: str, name: str | None, detach: bool) -> int:
    ready_to_submit()
    forget_finished_clients()
    name = name or f"hec-{kind}-{uuid.uuid4().hex[:8]}"
    jobdir = STACK / "jobs" / name
    jobdir.mkdir(parents=True, exist_ok=True)
    base = f"/user/{USER}/hec-jobs/{name}"
    gen = ["-conf", str(CLIENT_CONF), "-D", f"mapreduce.job.tags=hec,{name}"]
    if kind in ("wordcount", "fail-tasks"):
        make_input(jobdir / "input.txt", seed=name)
        args = [kind, name, base, str(jobdir / "input.txt")]
    elif kind == "pi":
        args = ["pi", name, base, "2", "200"]
    elif kind == "sleep":
        args = ["sleep", name, base, os.environ.get("HEC_SLEEP_MS", "5000")]
    elif kind == "kill":
        args = ["sleep", name, base, os.environ.get("HEC_KILL_SLEEP_MS", "600000")]
    elif kind == "fail":
        # the ApplicationMaster JVM cannot start (unknown -XX option) and gets one attempt:
        # YARN state FAILED
        gen += ["-D", "yarn.app.mapreduce.am.command-opts=-Xmx256m -XX:+HecNoSuchJvmOption",
                "-D", "mapreduce.am.max-attempts=1"]
        args = ["sleep", name, base, "1000"]
    else:
        raise StackError(f"unknown job kind {kind}")
    cmd = hadoop_java("HecJobs", "512m", ["-XX:TieredStopAtLevel=1"])
    cmd += gen + args
    logname = f"job-{name}"
    logpath = LOGS / f"{logname}.log"
    p = spawn(logname, cmd, cwd=jobdir, logname=logname)
    timeout = float(os.environ.get("HEC_SUBMIT_TIMEOUT", "600"))
    deadline = time.monotonic() + timeout
    app_id = None
    try:
        app_id = wait_app_id(p, logpath, deadline)
        result = {"job": kind, "name": name, "application_id": app_id, "exit_code": None,
                  "log": str(logpath)}
        if detach:
            print(json.dumps(result), flush=True)
            return 0
        if kind == "kill":
            while True:
                state = rm_app(app_id)["state"]
                if state == "RUNNING":
                    break
                if state in ("FINISHED", "FAILED", "KILLED") or time.monotonic() > deadline:
                    raise StackError(f"{app_id} never reached RUNNING (state {state})")
                time.sleep(0.5)
            # wait until a task container runs next to the AM, so the kill hits a working job
            until = min(deadline, time.monotonic() + 60)
            while time.monotonic() < until and rm_app(app_id).get("runningContainers", 0) < 2:
                time.sleep(0.5)
            time.sleep(float(os.environ.get("HEC_KILL_DELAY", "1")))
            http_json(f"http://{HOST}:{port('HEC_RM_WEB_PORT')}/ws/v1/cluster/apps/{app_id}"
                      f"/state?user.name={USER}", method="PUT", body={"state": "KILLED"})
        rc = p.wait(timeout=max(1.0, deadline - time.monotonic()))
        result["exit_code"] = rc
        print(json.dumps(result), flush=True)
        return 0
    except subprocess.TimeoutExpired:
        raise StackError(f"job client still running after {timeout:.0f}s; log {logpath}")
    finally:
        release_client(p, logname, keep=detach and app_id is not None)


def release_client(p: subprocess.Popen, logname: str, keep: bool) -> None:
    """A job client we no longer wait for: stop it (unless detached on purpose) and forget it."""
    if keep:
        return
    if p.poll() is None:
        try:
            os.killpg(p.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    (PIDS / f"{logname}.json").unlink(missing_ok=True)


# ------------------------------------------------------------------------------- submit spark
SPARK_INPUT = f"/user/{USER}/hec-spark/input.txt"


def ensure_spark_input() -> int:
    """The spark-scan input: generated text (HEC_SPARK_INPUT_BYTES, ~8 MB) written to HDFS once
    per stack through WebHDFS (CREATE to a temporary name, then RENAME); returns its length."""
    nn = f"http://{HOST}:{port('HEC_NN_HTTP_PORT')}/webhdfs/v1"
    q = f"user.name={USER}"
    try:
        return int(http_json(f"{nn}{SPARK_INPUT}?op=GETFILESTATUS&{q}")["FileStatus"]["length"])
    except urllib.error.HTTPError as e:
        if e.code != 404:
            raise StackError(f"WebHDFS GETFILESTATUS {SPARK_INPUT}: HTTP {e.code}")
    local = SPARK_DIR / "input.txt"
    local.parent.mkdir(parents=True, exist_ok=True)
    make_input(local, size=int(os.environ.get("HEC_SPARK_INPUT_BYTES", "8000000")),
               seed="hec-spark-scan")
    tmp = f"{SPARK_INPUT}.{uuid.uuid4().hex[:8]}.tmp"
    loc = http_json(f"{nn}{tmp}?op=CREATE&overwrite=true&noredirect=true&{q}",
                    method="PUT")["Location"]
    req = urllib.request.Request(loc, data=local.read_bytes(), method="PUT",
                                 headers={"Content-Type": "application/octet-stream"})
    with urllib.request.urlopen(req, timeout=120) as r:
        r.read()
    renamed = http_json(f"{nn}{tmp}?op=RENAME&destination={SPARK_INPUT}&{q}", method="PUT")
    if not renamed.get("boolean"):
        http_json(f"{nn}{tmp}?op=DELETE&{q}", method="DELETE")  # a concurrent submit won
    return int(http_json(f"{nn}{SPARK_INPUT}?op=GETFILESTATUS&{q}")["FileStatus"]["length"])


def spark_job_conf(name: str) -> dict[str, str]:
    home, py = spark_home(), spark_python()
    return {
        "spark.master": "yarn",
        "spark.submit.deployMode": "client",          # the driver runs in the submit process
        "spark.app.name": name,
        "spark.yarn.tags": f"hec,{name}",
        "spark.yarn.maxAppAttempts": "1",
        # the NodeManager is on this machine: containers use the pyspark jars in place
        "spark.yarn.jars": f"local:{home / 'jars'}/*",
        "spark.yarn.populateHadoopClasspath": "false",  # never mix in the stack's Hadoop 3.4.2 jars
        "spark.eventLog.enabled": "true",
        "spark.eventLog.dir": SPARK_EVENTS.as_uri(),
        # the AM unregisters with <this>/history/<app id>/<attempt>: the RM's trackingUrl
        "spark.yarn.historyServer.address": f"{HOST}:{port('HEC_SHS_PORT')}",
        "spark.executor.instances": "2",
        "spark.executor.cores": "1",
        "spark.executor.memory": "512m",
        "spark.yarn.am.memory": "512m",
        "spark.driver.memory": "512m",
        "spark.scheduler.minRegisteredResourcesRatio": "1.0",
        "spark.scheduler.maxRegisteredResourcesWaitingTime": "60s",
        "spark.driver.host": HOST,
        "spark.driver.bindAddress": HOST,
        "spark.ui.port": "0",                         # the driver's UI on a free port (127.0.0.1)
        "spark.ui.showConsoleProgress": "false",
        "spark.yarn.appMasterEnv.JAVA_HOME": str(JAVA_HOME),
        "spark.executorEnv.JAVA_HOME": str(JAVA_HOME),
        "spark.yarn.appMasterEnv.SPARK_LOCAL_IP": HOST,
        "spark.executorEnv.SPARK_LOCAL_IP": HOST,
        "spark.pyspark.python": py,
        "spark.pyspark.driver.python": py,
        "spark.default.parallelism": "4",
    }


def shs_completed(app_id: str) -> bool:
    try:
        app = http_json(f"http://{HOST}:{port('HEC_SHS_PORT')}/api/v1/applications/{app_id}")
    except (OSError, ValueError):
        return False
    return bool(app.get("attempts")) and all(a.get("completed") for a in app["attempts"])


def submit_spark(name: str | None, detach: bool, kill_executor: bool) -> int:
    """spark-scan: a PySpark job (deploy/local/spark_job.py) on the stack's YARN, client mode."""
    ready_to_submit()
    home, py = spark_home(), spark_python()
    forget_finished_clients()
    name = name or f"hec-spark-scan-{uuid.uuid4().hex[:8]}"
    jobdir = STACK / "jobs" / name
    jobdir.mkdir(parents=True, exist_ok=True)
    write_spark_conf()
    write_spark_hadoop_conf()
    SPARK_EVENTS.mkdir(parents=True, exist_ok=True)
    input_bytes = ensure_spark_input()
    input_uri = f"hdfs://{HOST}:{port('HEC_NN_PORT')}{SPARK_INPUT}"
    log(f"spark-scan input: {input_uri} ({input_bytes} bytes)")
    env = spark_env()
    pylib = home / "python" / "lib"
    env.update({
        "HADOOP_CONF_DIR": str(SPARK_HADOOP_CONF), "YARN_CONF_DIR": str(SPARK_HADOOP_CONF),
        "HADOOP_USER_NAME": USER,
        "PYSPARK_PYTHON": py, "PYSPARK_DRIVER_PYTHON": py, "PYTHONUNBUFFERED": "1",
        # pyspark.zip + py4j zip on the executors' PYTHONPATH in place (no upload to HDFS)
        "PYSPARK_ARCHIVES_PATH": ",".join(f"local:{z}" for z in sorted(pylib.glob("*.zip"))),
    })
    cmd = [py, str(SPARK_JOB), "--input", input_uri, "--partitions", "8"]
    cmd += ["--kill-executor"] if kill_executor else []
    for k, v in spark_job_conf(name).items():
        cmd += ["--conf", f"{k}={v}"]
    logname = f"job-{name}"
    logpath = LOGS / f"{logname}.log"
    p = spawn(logname, cmd, cwd=jobdir, logname=logname, env=env)
    timeout = float(os.environ.get("HEC_SUBMIT_TIMEOUT", "600"))
    deadline = time.monotonic() + timeout
    app_id = None
    try:
        app_id = wait_app_id(p, logpath, deadline)
        result = {"job": "spark-scan", "name": name, "application_id": app_id, "exit_code": None,
                  "log": str(logpath), "input_file_bytes": input_bytes}
        if detach:
            print(json.dumps(result), flush=True)
            return 0
        rc = p.wait(timeout=max(1.0, deadline - time.monotonic()))
        result["exit_code"] = rc
        # the History Server rescans its log dir every 2 s: wait until it shows the app completed
        if running("spark") and spark_ready()[0]:
            t0 = time.monotonic()
            until = t0 + float(os.environ.get("HEC_SHS_WAIT", "60"))
            while not shs_completed(app_id) and time.monotonic() < until:
                time.sleep(0.25)
            if shs_completed(app_id):
                result["history_completed_after_s"] = round(time.monotonic() - t0, 1)
                log(f"{app_id}: completed in the Spark History Server "
                    f"{result['history_completed_after_s']}s after the driver exited")
            else:
                result["history_completed_after_s"] = None
                log(f"{app_id}: not completed in the Spark History Server after "
                    f"{until - t0:.0f}s")
        print(json.dumps(result), flush=True)
        return 0
    except subprocess.TimeoutExpired:
        raise StackError(f"spark-scan driver still running after {timeout:.0f}s; log {logpath}")
    finally:
        release_client(p, logname, keep=detach and app_id is not None)


# ---------------------------------------------------------------------------------------- main
def only_arg(v: str) -> list[str]:
    comps = [c.strip() for c in v.split(",") if c.strip()]
    bad = [c for c in comps if c not in COMPONENTS]
    if bad or not comps:
        raise argparse.ArgumentTypeError(
            f"components are {', '.join(COMPONENTS)} (comma-separated)")
    return [c for c in COMPONENTS if c in comps]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description="Local Kafka + Hadoop + Spark History Server test stack")
    sub = ap.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fetch", help="resolve jars with Maven (cached in ~/.m2)")
    f.add_argument("--force", action="store_true")
    u = sub.add_parser("up", help="start (fresh) Kafka, Hadoop and/or the Spark History Server")
    u.add_argument("--only", type=only_arg, metavar="kafka|hadoop|spark[,...]")
    u.add_argument("--timeout", type=float, help="readiness timeout in seconds (each component)")
    sub.add_parser("down", help="stop everything this stack started")
    st = sub.add_parser("stop", help="stop a component or daemon, keeping its data (`start` resumes it)")
    st.add_argument("target", choices=RESTARTABLE)
    st.add_argument("--kill", action="store_true", help="SIGKILL at once (a crash), not SIGTERM")
    sa = sub.add_parser("start", help="start a stopped component or daemon again on its data (no format)")
    sa.add_argument("target", choices=RESTARTABLE)
    sa.add_argument("--timeout", type=float, default=120.0, help="readiness timeout in seconds")
    s = sub.add_parser("status")
    s.add_argument("--only", type=only_arg, metavar="kafka|hadoop|spark[,...]")
    sub.add_parser("env", help="print the stack coordinates as KEY=value")
    sm = sub.add_parser("submit", help="submit a real MapReduce or Spark job")
    sm.add_argument("kind", choices=["wordcount", "pi", "sleep", "kill", "fail", "fail-tasks",
                                     "spark-scan"])
    sm.add_argument("--detach", action="store_true")
    sm.add_argument("--name")
    sm.add_argument("--kill-executor", action="store_true",
                    help="spark-scan: the driver kills executor 1 mid-run; the job still finishes")
    a = ap.parse_args(argv)
    try:
        if a.cmd == "fetch":
            with stack_lock():
                fetch(force=a.force)
        elif a.cmd == "up":
            comps = a.only or COMPONENTS
            t = {"kafka": float(os.environ.get("HEC_KAFKA_TIMEOUT", "120")),
                 "hadoop": float(os.environ.get("HEC_HADOOP_TIMEOUT", "240")),
                 "spark": float(os.environ.get("HEC_SPARK_TIMEOUT", "120"))}
            if a.timeout:
                t = {k: a.timeout for k in t}
            with stack_lock():
                up(comps, t)
        elif a.cmd == "down":
            with stack_lock():
                down()
        elif a.cmd == "stop":
            with stack_lock():
                stop_component(a.target, kill=a.kill)
        elif a.cmd == "start":
            with stack_lock():
                start_component(a.target, a.timeout)
        elif a.cmd == "status":
            return status(a.only or COMPONENTS)
        elif a.cmd == "env":
            for k, v in coordinates().items():
                print(f"{k}={v}")
        elif a.cmd == "submit":
            if a.kill_executor and a.kind != "spark-scan":
                raise StackError("--kill-executor is for spark-scan only")
            if a.kind == "spark-scan":
                return submit_spark(a.name, a.detach, a.kill_executor)
            return submit(a.kind, a.name, a.detach)
    except StackError as e:
        print(f"stack.py {a.cmd}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
