"""Configuration: one YAML file, every key overridable by environment variable and CLI flag.

Precedence: file < ``HEC_*`` environment variables < ``--set`` flags. ``${VAR}`` and
``${VAR:-default}`` in the file are expanded from the environment, which is how secrets
come in (they are never logged: ``Secret`` hides its value in ``repr``).

Override syntax, for the same key::

    kafka.bootstrap_servers: a:9092            # YAML
    HEC_KAFKA__BOOTSTRAP_SERVERS=a:9092        # env: path segments joined by "__"
    --set kafka.bootstrap_servers=a:9092       # CLI
    --set clusters.0.resourcemanager.urls=http://rm1:8088,http://rm2:8088
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import msgspec
import yaml

ENV_PREFIX = "HEC_"

DEFAULT_TOPICS = {
    "applications": "hadoop.yarn.applications",
    "cluster": "hadoop.yarn.cluster",
    "queues": "hadoop.yarn.queues",
    "hdfs": "hadoop.hdfs.usage",
    "heartbeat": "hadoop.collector.heartbeat",
}


class ConfigError(ValueError):
    """A configuration mistake; ``str()`` says which key and what is wrong."""


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


def parse_duration(value: float | int | str) -> float:
    """Seconds from ``30``, ``"30s"``, ``"500ms"``, ``"5m"``, ``"1h"``, ``"1d"``."""
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        match = _DURATION.match(value)
        if not match:
            raise ValueError(f"not a duration: {value!r} (use e.g. 30s, 500ms, 5m, 1h)")
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds < 0:
        raise ValueError(f"duration must not be negative: {value!r}")
    return seconds


Duration = float | int | str


class Secret(str):
    """A string that never shows itself in logs or reprs."""

    def __repr__(self) -> str:
        return "Secret('***')"


def _check_url(url: str, what: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{what}: {url!r} is not an http(s) URL like http://rm1.example:8088")
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number in range
    except ValueError:
        raise ValueError(f"{what}: {url!r} has an invalid port") from None
    if parts.path not in ("", "/") or parts.query:
        raise ValueError(f"{what}: {url!r} must be the server's base URL, without a path")
    return url.rstrip("/")


def _as_list(value: Sequence[str] | str) -> list[str]:
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return list(value)


class ResourceManagerConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    urls: list[str] | str

    def __post_init__(self) -> None:
        self.urls = [_check_url(u, "urls") for u in _as_list(self.urls)]
        if not self.urls:
            raise ValueError("urls: at least one URL is required")


class AuthConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    #: Hadoop simple auth: sent as ``user.name``. None sends nothing (the RM's static user).
    user_name: str | None = None
    verify_tls: bool = True

    def __post_init__(self) -> None:
        if not self.user_name:
            self.user_name = None


class PollConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    interval: Duration = "10s"
    #: Ended apps are re-asked for this far behind the watermark: an app whose end the RM lists
    #: late (after one with a later finishedTime was seen) is still caught. Apps known active are
    #: looked up by id whatever their end time, so this only guards the never-seen short ones.
    overlap: Duration = "2m"
    #: On a first start without state, apps that ended this long ago are still reported.
    backfill: Duration = "10m"
    timeout: Duration = "30s"
    #: Longest wait between attempts while a peer keeps failing.
    max_backoff: Duration = "60s"

    def __post_init__(self) -> None:
        for name in ("interval", "overlap", "backfill", "timeout", "max_backoff"):
            setattr(self, name, parse_duration(getattr(self, name)))
        if self.interval <= 0:  # type: ignore[operator]
            raise ValueError("poll.interval must be positive")


class HistoryServerConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    url: str
    #: Requests in flight to this server at once.
    concurrency: int = 4

    def __post_init__(self) -> None:
        self.url = _check_url(self.url, "url")
        if self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")


class EnrichmentConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    #: After this long without history, the finished event goes out as unavailable.
    max_age: Duration = "15m"
    first_retry: Duration = "2s"
    max_retry_interval: Duration = "60s"
    #: Publish the job's whole counter set too (MapReduce), for users with counters of their own.
    include_counters: bool = False

    def __post_init__(self) -> None:
        for name in ("max_age", "first_retry", "max_retry_interval"):
            setattr(self, name, parse_duration(getattr(self, name)))


class HdfsConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    #: NameNode web addresses (WebHDFS); with several, standby answers fail over.
    namenode_urls: list[str] | str
    #: Paths whose usage (GETCONTENTSUMMARY) is reported.
    paths: list[str] | str
    #: Requests in flight at once, and the least time between two starts (NameNode load).
    concurrency: int = 2
    spacing: Duration = "200ms"

    def __post_init__(self) -> None:
        self.namenode_urls = [_check_url(u, "namenode_urls") for u in _as_list(self.namenode_urls)]
        self.paths = _as_list(self.paths)
        if not self.namenode_urls or not self.paths:
            raise ValueError("hdfs needs at least one of namenode_urls and of paths")
        if self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        for path in self.paths:
            if not path.startswith("/"):
                raise ValueError(f"paths: {path!r} must be absolute")
        self.spacing = parse_duration(self.spacing)


class SnapshotConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """How often each statistics snapshot is taken; 0 turns one off."""

    cluster_interval: Duration = "60s"
    queue_interval: Duration = "60s"
    hdfs_interval: Duration = "15m"

    def __post_init__(self) -> None:
        for name in ("cluster_interval", "queue_interval", "hdfs_interval"):
            setattr(self, name, parse_duration(getattr(self, name)))


class ClusterConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: str
    resourcemanager: ResourceManagerConfig
    auth: AuthConfig = msgspec.field(default_factory=AuthConfig)
    poll: PollConfig = msgspec.field(default_factory=PollConfig)
    jobhistory: HistoryServerConfig | None = None
    spark_history: HistoryServerConfig | None = None
    enrichment: EnrichmentConfig = msgspec.field(default_factory=EnrichmentConfig)
    hdfs: HdfsConfig | None = None
    snapshots: SnapshotConfig = msgspec.field(default_factory=SnapshotConfig)
    topics: dict[str, str] = msgspec.field(default_factory=dict)
    diagnostics_limit: int = 4096
    #: A ``collector.heartbeat`` event this often (0: none), so silence can be told from death.
    heartbeat_interval: Duration = "30s"

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", self.name):
            raise ValueError(f"cluster name {self.name!r}: use letters, digits, '.', '_' or '-'")
        unknown = set(self.topics) - set(DEFAULT_TOPICS)
        if unknown:
            raise ValueError(f"topics: unknown kind(s) {sorted(unknown)}; known: {sorted(DEFAULT_TOPICS)}")
        self.topics = {**DEFAULT_TOPICS, **self.topics}
        if self.diagnostics_limit < 16:
            raise ValueError("diagnostics_limit must be at least 16")
        self.heartbeat_interval = parse_duration(self.heartbeat_interval)

    def topics_in_use(self) -> list[str]:
        """The topics this cluster's configuration actually writes to."""
        kinds = ["applications"]
        snapshots = self.snapshots
        if float(snapshots.cluster_interval) > 0:
            kinds.append("cluster")
        if float(snapshots.queue_interval) > 0:
            kinds.append("queues")
        if self.hdfs is not None and float(snapshots.hdfs_interval) > 0:
            kinds.append("hdfs")
        if float(self.heartbeat_interval) > 0:
            kinds.append("heartbeat")
        return [self.topics[kind] for kind in kinds]


class KafkaConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    bootstrap_servers: list[str] | str = "127.0.0.1:9092"
    client_id: str = "hadoop-event-collector"
    compression: Literal["gzip", "none", "snappy", "lz4", "zstd"] = "gzip"
    linger_ms: int = 20
    #: A batch not acknowledged within this fails; the cycle is then retried (broker down).
    request_timeout: Duration = "30s"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "GSSAPI"] | None = None
    sasl_username: str | None = None
    sasl_password: str | None = None
    sasl_password_file: str | None = None
    ssl_cafile: str | None = None
    #: Events built but not yet acknowledged are held up to this many encoded bytes per
    #: cluster while Kafka is slow or down; when full, polling pauses (nothing is dropped).
    backlog_max_bytes: int = 64 * 1024 * 1024

    def __post_init__(self) -> None:
        if self.backlog_max_bytes < 1024:
            raise ValueError("backlog_max_bytes must be at least 1024")
        self.bootstrap_servers = _as_list(self.bootstrap_servers)
        for server in self.bootstrap_servers:
            if not re.fullmatch(r"[^\s:/]+:\d{1,5}", server):
                raise ValueError(f"bootstrap_servers: {server!r} is not host:port")
        self.request_timeout = parse_duration(self.request_timeout)
        if self.sasl_password_file:
            try:
                self.sasl_password = Path(self.sasl_password_file).read_text().strip()
            except OSError as exc:
                raise ValueError(f"sasl_password_file: cannot read it ({exc.strerror})") from None
        if self.sasl_password is not None:
            self.sasl_password = Secret(self.sasl_password)
        if self.security_protocol.startswith("SASL") and not self.sasl_mechanism:
            raise ValueError(f"security_protocol {self.security_protocol} needs sasl_mechanism")


class LogConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    format: Literal["auto", "json", "console"] = "auto"
    level: Literal["debug", "info", "warning", "error"] = "info"


class StateConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    #: ``file``: a checkpoint per cluster, so a restart resumes where Kafka's acknowledgements
    #: ended. ``memory``: nothing survives the process (a restart re-reports the backfill window).
    store: Literal["file", "memory"] = "file"
    #: Directory of the checkpoint files; default: systemd's $STATE_DIRECTORY, else ./collector-state.
    directory: str | None = None

    def __post_init__(self) -> None:
        if self.store == "file" and not self.directory:
            self.directory = os.environ.get("STATE_DIRECTORY", "").split(":")[0] or "collector-state"


class HealthConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The self-observation server of ``run``: /metrics, /healthz, /readyz."""

    enabled: bool = True
    #: Loopback by default: expose it wider on purpose only (it has no authentication).
    host: str = "127.0.0.1"
    #: 0 picks a free port (logged at start).
    port: int = 9308
    #: /readyz wants every cluster's last successful poll within
    #: max(stale_intervals x its poll interval, stale_min).
    stale_intervals: float = 3.0
    stale_min: Duration = "30s"

    def __post_init__(self) -> None:
        if not self.host.strip():
            raise ValueError("host must not be empty")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port: {self.port} is not a port number (0-65535; 0 picks a free one)")
        if self.stale_intervals < 1:
            raise ValueError("stale_intervals must be at least 1")
        try:
            self.stale_min = parse_duration(self.stale_min)
        except ValueError as exc:
            raise ValueError(f"stale_min: {exc}") from None

    def stale_after_s(self, poll_interval_s: float) -> float:
        """How old a cluster's last successful poll may be while the collector is ready."""
        return max(self.stale_intervals * poll_interval_s, float(self.stale_min))


class Config(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    clusters: list[ClusterConfig]
    kafka: KafkaConfig = msgspec.field(default_factory=KafkaConfig)
    sink: Literal["kafka", "stdout"] = "kafka"
    #: Check every event against its JSON Schema before it is sent.
    validate_events: bool = True
    #: On SIGTERM: the longest wait for Kafka to acknowledge what is queued before exiting.
    shutdown_timeout: Duration = "20s"
    log: LogConfig = msgspec.field(default_factory=LogConfig)
    state: StateConfig = msgspec.field(default_factory=StateConfig)
    health: HealthConfig = msgspec.field(default_factory=HealthConfig)

    def __post_init__(self) -> None:
        self.shutdown_timeout = parse_duration(self.shutdown_timeout)
        if not self.clusters:
            raise ValueError("clusters: at least one cluster is required")
        names = [c.name for c in self.clusters]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"clusters: duplicate name(s) {dupes}")


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand_env(node: Any, env: Mapping[str, str], where: str = "") -> Any:
    """Expand ``${VAR}`` / ``${VAR:-default}`` inside the string values of a parsed file.

    Expanding after parsing keeps a value exactly as the variable holds it: a password with
    ``#`` or ``: `` in it is neither cut nor turned into YAML, and never appears in a
    YAML error message.
    """
    if isinstance(node, dict):
        return {k: expand_env(v, env, f"{where}.{k}" if where else str(k)) for k, v in node.items()}
    if isinstance(node, list):
        return [expand_env(v, env, f"{where}.{i}") for i, v in enumerate(node)]
    if not isinstance(node, str) or "${" not in node:
        return node

    def sub(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        raise ConfigError(f"{where}: uses ${{{name}}}, which is not set in the environment")

    return _VAR.sub(sub, node)


def _set_path(tree: dict[str, Any], path: str, raw_value: str, origin: str) -> None:
    parts = [p for p in path.split(".") if p]
    if not parts:
        raise ConfigError(f"{origin}: empty key")
    # Kept as the string given: validation converts "5", "false" or "2s" where the key
    # wants a number, a flag or a duration, and a secret stays exactly what it is.
    value: Any = raw_value
    node: Any = tree
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, list):
            if not part.isdigit():
                raise ConfigError(f"{origin}: {'.'.join(parts[:i])} is a list; use an index, not {part!r}")
            index = int(part)
            while len(node) <= index:
                node.append({})
            if last:
                node[index] = value
            else:
                node = node[index]
            continue
        if not isinstance(node, dict):
            raise ConfigError(f"{origin}: {'.'.join(parts[:i])} is not a section")
        if last:
            node[part] = value
        else:
            nxt = parts[i + 1]
            node = node.setdefault(part, [] if nxt.isdigit() else {})


def load(
    path: str | Path | None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Sequence[str] = (),
) -> Config:
    """Read, expand, override and validate; raise ``ConfigError`` with one clear message."""
    env = os.environ if env is None else env
    tree: dict[str, Any] = {}
    origin = "no file"
    if path is not None:
        origin = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(exc, "problem", None) or "syntax error"
            raise ConfigError(f"{path} is not valid YAML{at}: {problem}") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of keys")
        try:
            tree = expand_env(loaded, env)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None
    for name in sorted(env):
        if name.startswith(ENV_PREFIX) and "__" in name[len(ENV_PREFIX):] or name in _TOP_ENV:
            key = name[len(ENV_PREFIX):].lower().replace("__", ".")
            _set_path(tree, key, env[name], f"environment variable {name}")
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: use key.path=value")
        key, value = item.split("=", 1)
        _set_path(tree, key.strip(), value, f"--set {key.strip()}")
    if path is None and not tree:
        raise ConfigError("no configuration: give a file with -c FILE or $HEC_CONFIG")
    try:
        return msgspec.convert(tree, Config, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"invalid configuration ({origin}): {_friendly(str(exc))}") from None


# Single-segment top-level keys that may also be set from the environment.
_TOP_ENV = {f"{ENV_PREFIX}SINK", f"{ENV_PREFIX}VALIDATE_EVENTS"}


def _friendly(message: str) -> str:
    # msgspec says "... - at `$.clusters[0].poll`"; turn the path into the key syntax users write.
    match = re.search(r" - at `\$(.*)`$", message)
    if not match:
        return message
    where = re.sub(r"\[(\d+)\]", r".\1", match.group(1)).lstrip(".")
    return f"{where}: {message[: match.start()]}"
