"""Registry loading: every wrong entry stops start-up naming the entry and the field."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from engines.algorithms.registry import AlgorithmSpec, Registry
from engines.errors import RegistryError

ROOT = Path(__file__).resolve().parents[1]
ECHO = "engines.builtin.echo:Echo"


def load(tmp_path: Path, text: str) -> Registry:
    path = tmp_path / "algorithms.yaml"
    path.write_text(text)
    return Registry.load(path)


def test_default_registry_loads_the_builtins():
    registry = Registry.load(ROOT / "algorithms.yaml")
    assert registry.names() == ["local-echo", "text-embedding", "image-classify", "video-classify",
                                "external-sentiment", "nanobanana-image"]
    assert registry.get("nanobanana-image").spec.mode == "async"
    assert registry.get("text-embedding").spec.batch.max_batch_size == 16
    assert set(registry.actors) == {"Account", "GamePlayer"}
    assert registry.actors["Account"].spec.hosts == 1 and "deposit" in registry.actors["Account"].template.methods


def echo_entry(extra: str) -> str:
    return f"{{name: a, kind: local, target: {ECHO}, {extra}}}"


@pytest.mark.parametrize(("entry", "message"), [
    (echo_entry("colour: red"), "entry 1 (a): colour: unknown field"),
    (f"{{name: a, kind: remote, target: {ECHO}}}", "entry 1 (a): kind: must be one of 'local' or 'external'"),
    (echo_entry("max_concurrency: 0"), "max_concurrency: must be >= 1 (got 0)"),
    (echo_entry("max_queued: 0"), "max_queued: must be >= 1 (got 0)"),  # Serve queues at least one
    (echo_entry("num_gpus: -1"), "num_gpus: must be >= 0"),
    (echo_entry("mode: later"), "mode: must be one of"),
    (echo_entry("batch: {max_batch_size: 0}"), "batch.max_batch_size: must be >= 1"),
    (f"{{name: Bad Name, kind: local, target: {ECHO}}}", "entry 1 (Bad Name): name: must match"),
    ("{name: a, kind: local}", "entry 1 (a): target: required"),
    ("{name: a, kind: local, target: 'nowhere.mod:Cls'}", "entry 1 (a): target: cannot import 'nowhere.mod:Cls'"),
    ("{name: a, kind: local, target: 'engines.builtin.echo:Nope'}", "target: cannot import"),
    ("{name: a, kind: local, target: 'engines.builtin.echo:EchoInput'}", "is not an engines.Algorithm subclass"),
    (f"{{name: a, kind: external, target: {ECHO}, num_gpus: 1}}", "num_gpus: external algorithms run no model"),
    (echo_entry("num_workers: 4, max_concurrency: 2"),
     "max_concurrency: must be >= num_workers (4)"),
])
def test_a_wrong_entry_names_the_entry_and_the_field(tmp_path: Path, entry: str, message: str):
    with pytest.raises(RegistryError) as info:
        load(tmp_path, f"- {entry}\n")
    assert message in info.value.message


def test_duplicate_names_are_refused(tmp_path: Path):
    entry = f"- {{name: a, kind: local, target: {ECHO}}}\n"
    with pytest.raises(RegistryError, match=r"entry 2 \(a\): name: 'a' is already declared by .*entry 1"):
        load(tmp_path, entry * 2)


def test_unreadable_or_malformed_files_say_so(tmp_path: Path):
    with pytest.raises(RegistryError, match="cannot read the registry"):
        Registry.load(tmp_path / "missing.yaml")
    with pytest.raises(RegistryError, match="not valid YAML"):
        load(tmp_path, "- {name: a, kind: [local\n")
    with pytest.raises(RegistryError, match=r"unknown top-level keys \['extra'\]"):
        load(tmp_path, "extra: 1\n")


def test_decorated_modules_join_the_file_entries(tmp_path: Path):
    registry = load(tmp_path, f"modules: [tests.algorithms]\nalgorithms:\n- {{name: e, kind: local, target: {ECHO}}}")
    assert registry.names()[0] == "e"
    assert {"test-sleep", "test-timeout"} <= set(registry.names())
    assert registry.get("test-timeout").spec.timeout_s == 0.5


def test_concurrency_is_split_over_replicas_never_above_the_global_limit():
    spec = AlgorithmSpec(name="a", kind="local", target=ECHO, max_concurrency=10, num_workers=3)
    assert spec.per_replica_concurrency(default=8) == 3
    assert AlgorithmSpec(name="a", kind="local", target=ECHO).per_replica_concurrency(default=8) == 8


def test_serve_refuses_a_broken_registry_with_a_message_not_a_traceback(tmp_path: Path):
    path = tmp_path / "algorithms.yaml"
    path.write_text(f"- {{name: a, kind: local, target: {ECHO}, max_queued: -3}}\n")
    proc = subprocess.run([sys.executable, "-m", "mcp_server", "serve", "--transport", "http"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT,
                          env={"PATH": "/usr/bin:/bin", "ALGO_MCP_REGISTRY": str(path),
                               "FASTMCP_CHECK_FOR_UPDATES": "off"})
    assert proc.returncode == 2
    assert "entry 1 (a): max_queued: must be >= 1 (got -3)" in proc.stderr
    assert "Traceback" not in proc.stderr
