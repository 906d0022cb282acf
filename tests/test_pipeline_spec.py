"""Pipeline specs and message mapping, without a broker: the rules, and how a broken one is worded."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from engines.algorithms.registry import Registry
from engines.errors import NotConfigured, RegistryError, ValidationFailed
from engines.streams.mapping import Coordinates, Mapping, Unfit
from engines.streams.spec import Broker, PipelineSpec, parse_pipeline

BASE = {"name": "p", "input_topic": "in", "algorithm": "local-echo", "output_topic": "out"}
AT = Coordinates("in", 2, 41, "k", 1_700_000_000_000)


@pytest.mark.parametrize(("change", "words"), [
    ({"name": "P p"}, "p: name: must match"),
    ({"input_topic": ""}, "input_topic: must match"),
    ({"output_topic": "in"}, "output_topic: must differ from input_topic"),
    ({"batch_size": 0}, "batch_size: must be >= 1"),
    ({"max_in_flight": "many"}, "max_in_flight: input should be a valid integer"),
    ({"output_map": {"x": "nowhere.y"}}, "output_map.x: 'nowhere.y' must start with one of result"),
    ({"scaling": {"min_consumers": 3, "max_consumers": 2}}, "max_consumers (2) must be >= min_consumers (3)"),
    ({"broker": {"bootstrap_servers": "b:9092", "security_protocol": "SASL_SSL"}}, "needs sasl_mechanism"),
    ({"broker": {"bootstrap_servers": "b:9092", "sasl_username": "u"}}, "need a SASL security_protocol"),
    ({"broker": {"bootstrap_servers": "b:9092", "security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN",
                 "sasl_username": "u", "sasl_password_env": "lower-case"}}, "sasl_password_env: must match"),
    ({"surprise": 1}, "p: surprise: unknown field"),
])
def test_bad_specs_name_the_field_and_rule(change: dict, words: str):
    with pytest.raises(ValidationFailed) as info:
        parse_pipeline({**BASE, **change}, where="p")
    assert words in info.value.message


def test_not_an_object_is_refused():
    with pytest.raises(ValidationFailed, match="must be an object of fields"):
        parse_pipeline(["in", "out"])


def test_the_default_broker_fills_in_or_says_what_to_set():
    spec = parse_pipeline(BASE)
    assert spec.consumer_group == "algo-mcp.p"
    assert spec.with_broker("k:9092").broker == Broker(bootstrap_servers="k:9092")
    with pytest.raises(NotConfigured, match="KAFKA_BOOTSTRAP_SERVERS"):
        spec.with_broker(None)


def test_secrets_come_from_the_environment_by_name(monkeypatch: pytest.MonkeyPatch):
    broker = Broker(bootstrap_servers="b:9093", security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512",
                    sasl_username="svc", sasl_password_env="KAFKA_TEST_PASSWORD")
    monkeypatch.delenv("KAFKA_TEST_PASSWORD", raising=False)
    with pytest.raises(NotConfigured, match="KAFKA_TEST_PASSWORD"):
        broker.client_config()
    monkeypatch.setenv("KAFKA_TEST_PASSWORD", "s3cret")
    config = broker.client_config()
    assert config["sasl.password"] == "s3cret" and config["sasl.mechanism"] == "SCRAM-SHA-512"
    assert "s3cret" not in broker.model_dump_json()  # a spec, kept in Redis and shown, holds only the name


def test_default_mapping_carries_key_partition_offset_and_result():
    mapping = Mapping(parse_pipeline(BASE))
    message = mapping.message(b'{"text": "hi"}')
    assert mapping.input(message) == {"text": "hi"}
    assert orjson.loads(mapping.output(message, {"text": "hi"}, AT)) == {
        "key": "k", "partition": 2, "offset": 41, "result": {"text": "hi"}}


def test_maps_pick_paths_and_sources():
    spec = parse_pipeline({**BASE, "input_map": {"text": "review.lines.1"},
                           "output_map": {"id": "input.id", "t": "result.text", "ts": "timestamp", "gone": "input.x"}})
    mapping = Mapping(spec)
    message = mapping.message(b'{"id": 9, "review": {"lines": ["a", "b"]}}')
    assert mapping.input(message) == {"text": "b"}
    assert orjson.loads(mapping.output(message, {"text": "b"}, AT)) == {
        "id": 9, "t": "b", "ts": 1_700_000_000_000, "gone": None}


@pytest.mark.parametrize(("raw", "words"), [
    (b"", "the message is empty"), (b"\xff\xfe", "not JSON"), (b'{"review": {}}', "no 'review.lines.1'"),
    (b"[1, 2]", "no 'review.lines.1'")])
def test_unfit_messages_say_why(raw: bytes, words: str):
    mapping = Mapping(parse_pipeline({**BASE, "input_map": {"text": "review.lines.1"}}))
    with pytest.raises(Unfit, match=words):
        mapping.input(mapping.message(raw))


def test_registry_pipelines_are_checked_against_their_algorithm(tmp_path: Path):
    def load(pipelines: str) -> Registry:
        path = tmp_path / "algorithms.yaml"
        path.write_text("algorithms:\n  - {name: local-echo, kind: local, target: engines.builtin.echo:Echo}\n"
                        f"pipelines:\n{pipelines}")
        return Registry.load(path)

    ok = load("  - {name: a, input_topic: i, algorithm: local-echo, output_topic: o}\n")
    assert [p.name for p in ok.pipelines] == ["a"] and isinstance(ok.pipelines[0], PipelineSpec)
    with pytest.raises(RegistryError, match=r"pipeline 1 \(a\): no algorithm named 'local-ecko'; did you mean"):
        load("  - {name: a, input_topic: i, algorithm: local-ecko, output_topic: o}\n")
    with pytest.raises(RegistryError, match=r"input_map\.texts: local-echo's input has no field 'texts'"):
        load("  - {name: a, input_topic: i, algorithm: local-echo, output_topic: o, input_map: {texts: t}}\n")
    with pytest.raises(RegistryError, match=r"pipeline 2 \(a\): name: 'a' is already declared"):
        load("  - {name: a, input_topic: i, algorithm: local-echo, output_topic: o}\n" * 2)
    with pytest.raises(RegistryError, match=r"pipeline 1 .*batch_size: must be >= 1"):
        load("  - {name: a, input_topic: i, algorithm: local-echo, output_topic: o, batch_size: 0}\n")
