"""Configuration: file, ${ENV} expansion, HEC_* environment and --set overrides, clear errors."""

from __future__ import annotations

import pytest

from collector.config import ConfigError, load, parse_duration

BASE = """
clusters:
  - name: prod
    resourcemanager:
      urls: [http://rm1.example:8088, http://rm2.example:8088/]
kafka:
  bootstrap_servers: ${KAFKA:-k1:9092}
  sasl_mechanism: PLAIN
  security_protocol: SASL_SSL
  sasl_username: collector
  sasl_password: ${KAFKA_PASSWORD}
"""


def write(tmp_path, text=BASE):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def test_defaults_and_expansion(tmp_path):
    cfg = load(write(tmp_path), env={"KAFKA_PASSWORD": "s3cret"})
    cluster = cfg.clusters[0]
    assert cluster.resourcemanager.urls == ["http://rm1.example:8088", "http://rm2.example:8088"]
    assert cluster.poll.interval == 10.0 and cluster.poll.overlap == 120.0
    assert cluster.topics == {"applications": "hadoop.yarn.applications", "cluster": "hadoop.yarn.cluster",
                              "queues": "hadoop.yarn.queues", "hdfs": "hadoop.hdfs.usage",
                              "heartbeat": "hadoop.collector.heartbeat"}
    assert cluster.snapshots.queue_interval == 60.0 and cluster.snapshots.hdfs_interval == 900.0
    assert cluster.hdfs is None
    assert cfg.kafka.bootstrap_servers == ["k1:9092"]
    assert cfg.sink == "kafka" and cfg.validate_events


def test_secrets_never_show_in_repr(tmp_path):
    cfg = load(write(tmp_path), env={"KAFKA_PASSWORD": "s3cret"})
    assert cfg.kafka.sasl_password == "s3cret"
    assert "s3cret" not in repr(cfg)


def test_env_then_cli_override(tmp_path):
    env = {
        "KAFKA_PASSWORD": "x",
        "HEC_KAFKA__BOOTSTRAP_SERVERS": "a:1,b:2",
        "HEC_CLUSTERS__0__POLL__INTERVAL": "2s",
        "HEC_KAFKA_PORT": "19092",  # not a config key (no "__"): ignored
    }
    cfg = load(write(tmp_path), env=env, overrides=["clusters.0.poll.interval=500ms", "sink=stdout"])
    assert cfg.kafka.bootstrap_servers == ["a:1", "b:2"]
    assert cfg.clusters[0].poll.interval == 0.5
    assert cfg.sink == "stdout"


@pytest.mark.parametrize(
    "override, message",
    [
        ("clusters.0.pol.interval=1s", "clusters.0: Object contains unknown field `pol`"),
        ("clusters.0.resourcemanager.urls=rm1:8088", "is not an http(s) URL"),
        ("clusters.0.resourcemanager.urls=http://rm1:8088/ws/v1", "without a path"),
        ("clusters.0.poll.interval=fast", "not a duration"),
        ("kafka.bootstrap_servers=localhost", "is not host:port"),
        ("clusters.0.name=bad name", "cluster name 'bad name'"),
        ("clusters.0.topics.jobs=x", "unknown kind"),
        ("clusters.0.hdfs.namenode_urls=http://nn:9870", "hdfs"),
        ("sink=s3", "sink"),
    ],
)
def test_each_mistake_has_a_clear_message(tmp_path, override, message):
    with pytest.raises(ConfigError, match=None) as info:
        load(write(tmp_path), env={"KAFKA_PASSWORD": "x"}, overrides=[override])
    assert message in str(info.value)


def test_missing_required_and_missing_env(tmp_path):
    with pytest.raises(ConfigError, match="KAFKA_PASSWORD"):
        load(write(tmp_path), env={})
    with pytest.raises(ConfigError, match="missing required field `clusters`"):
        load(write(tmp_path, "kafka: {}\n"), env={})
    with pytest.raises(ConfigError, match="missing required field `resourcemanager`"):
        load(write(tmp_path, "clusters: [{name: a}]\n"), env={})
    with pytest.raises(ConfigError, match="duplicate name"):
        load(write(tmp_path, "clusters:\n- {name: a, resourcemanager: {urls: http://x:1}}\n"
                             "- {name: a, resourcemanager: {urls: http://y:1}}\n"), env={})
    with pytest.raises(ConfigError, match="cannot read config file"):
        load(tmp_path / "nope.yaml", env={})


def test_durations():
    assert parse_duration("500ms") == 0.5
    assert parse_duration("2m") == 120
    assert parse_duration(3) == 3.0
    with pytest.raises(ValueError):
        parse_duration("-1s")


@pytest.mark.parametrize("secret", ["p@ss #1", "s3cr3t: hunter2", "12345", "yes", "null", "{a}", "'q'"])
def test_secrets_arrive_exactly_as_given(tmp_path, secret):
    cfg = load(write(tmp_path), env={"KAFKA_PASSWORD": secret})
    assert cfg.kafka.sasl_password == secret
    env = {"KAFKA_PASSWORD": "x", "HEC_KAFKA__SASL_PASSWORD": secret}
    assert load(write(tmp_path), env=env).kafka.sasl_password == secret


def test_yaml_errors_are_one_line_and_never_show_values(tmp_path):
    path = write(tmp_path, BASE + "  oops: [unclosed\n")
    with pytest.raises(ConfigError) as info:
        load(path, env={"KAFKA_PASSWORD": "hunter2"})
    message = str(info.value)
    assert "not valid YAML at line" in message and "\n" not in message and "hunter2" not in message


def test_missing_variable_names_file_and_key(tmp_path):
    path = write(tmp_path)
    with pytest.raises(ConfigError) as info:
        load(path, env={})
    expected = f"{path}: kafka.sasl_password: uses ${{KAFKA_PASSWORD}}, which is not set in the environment"
    assert str(info.value) == expected


def test_overrides_are_typed_by_the_key_they_set(tmp_path):
    env = {"KAFKA_PASSWORD": "x", "HEC_CLUSTERS__0__NAME": "2024", "HEC_VALIDATE_EVENTS": "false"}
    overrides = ["clusters.0.diagnostics_limit=100", "clusters.0.auth.verify_tls=false"]
    cfg = load(write(tmp_path), env=env, overrides=overrides)
    assert cfg.clusters[0].name == "2024" and cfg.validate_events is False
    assert cfg.clusters[0].diagnostics_limit == 100 and cfg.clusters[0].auth.verify_tls is False


def test_bad_port_and_no_configuration(tmp_path):
    with pytest.raises(ConfigError, match="invalid port"):
        load(write(tmp_path), env={"KAFKA_PASSWORD": "x"},
             overrides=["clusters.0.resourcemanager.urls=http://127.0.0.1:notaport"])
    with pytest.raises(ConfigError, match="no configuration: give a file with -c FILE or \\$HEC_CONFIG"):
        load(None, env={})


def test_topics_in_use_follow_what_is_configured(tmp_path):
    cfg = load(write(tmp_path), env={"KAFKA_PASSWORD": "x"}, overrides=["clusters.0.snapshots.queue_interval=0"])
    assert cfg.clusters[0].topics_in_use() == [
        "hadoop.yarn.applications", "hadoop.yarn.cluster", "hadoop.collector.heartbeat"]
    overrides = ["clusters.0.hdfs.namenode_urls=http://nn:9870", "clusters.0.hdfs.paths=/a"]
    cfg = load(write(tmp_path), env={"KAFKA_PASSWORD": "x"}, overrides=overrides)
    assert cfg.clusters[0].topics_in_use()[-2:] == ["hadoop.hdfs.usage", "hadoop.collector.heartbeat"]


def test_health_defaults_and_overrides(tmp_path):
    health = load(write(tmp_path), env={"KAFKA_PASSWORD": "x"}).health
    assert (health.enabled, health.host, health.port) == (True, "127.0.0.1", 9308)
    assert health.stale_after_s(2.0) == 30.0 and health.stale_after_s(60.0) == 180.0
    env = {"KAFKA_PASSWORD": "x", "HEC_HEALTH__PORT": "0", "HEC_HEALTH__ENABLED": "false"}
    health = load(write(tmp_path), env=env, overrides=["health.stale_min=1m", "health.stale_intervals=5"]).health
    assert (health.enabled, health.port, health.stale_min, health.stale_intervals) == (False, 0, 60.0, 5.0)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("health.port=70000", "health: port: 70000 is not a port number"),
        ("health.port=http", "health.port: Expected `int`, got `str`"),
        ("health.enabled=perhaps", "health.enabled: Expected `bool`"),
        ("health.stale_intervals=0.5", "health: stale_intervals must be at least 1"),
        ("health.stale_min=soon", "health: stale_min: not a duration"),
        ("health.bind=0.0.0.0", "health: Object contains unknown field `bind`"),
    ],
)
def test_health_errors_name_the_key(tmp_path, override, message):
    with pytest.raises(ConfigError) as info:
        load(write(tmp_path), env={"KAFKA_PASSWORD": "x"}, overrides=[override])
    assert message in str(info.value) and "\n" not in str(info.value)
