"""The deployment files, checked without Docker or Kubernetes: the Dockerfile by hadolint and by
running its command here as the image would; docker-compose.yml against the Compose Specification's
schema; deploy/kuberay/ against KubeRay's RayCluster and RayService CRDs (all vendored in tests/schemas/),
and the RayService's Serve config against Serve's own schema and the gateway's own deployments."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import yaml

from engines.settings import Settings
from tests.conftest import Running, free_port
from tests.polling import poll
from tests.processes import marked, new_mark

ROOT = Path(__file__).resolve().parents[1]
SCHEMAS = Path(__file__).parent / "schemas"
COMPOSE = ROOT / "docker-compose.yml"
RAYCLUSTER = ROOT / "deploy" / "kuberay" / "raycluster.yaml"
RAYSERVICE = ROOT / "deploy" / "kuberay" / "rayservice.yaml"
SETTING_NAMES = {name.upper() for name in Settings.model_fields}
#: the image's interpreter, as its commands name it
IMAGE_PYTHON = "python"


# --- the Dockerfile, read as Docker reads it ----------------------------------------------------

@cache
def instructions() -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` in order, continuation lines joined, comments dropped."""
    found, pending = [], ""
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        keyword, _, arguments = pending.strip().partition(" ")
        found.append((keyword.upper(), arguments.strip()))
        pending = ""
    return found


def arguments(keyword: str) -> list[str]:
    return [args for kw, args in instructions() if kw == keyword]


def image_env() -> dict[str, str]:
    """Every ``ENV`` of the image (``KEY=value`` form only: the legacy one is ambiguous)."""
    env = {}
    for args in arguments("ENV"):
        for pair in shlex.split(args):
            key, sep, value = pair.partition("=")
            assert sep, f"ENV {pair!r}: use KEY=value"
            env[key] = value
    return env


def image_command() -> list[str]:
    """``ENTRYPOINT`` + ``CMD`` in exec (JSON) form, as the container runs them."""
    entrypoint, cmd = arguments("ENTRYPOINT"), arguments("CMD")
    return [*(json.loads(entrypoint[-1]) if entrypoint else []), *(json.loads(cmd[-1]) if cmd else [])]


def healthcheck() -> tuple[dict[str, str], list[str]]:
    """The ``HEALTHCHECK``'s options and its command (exec form)."""
    (args,) = arguments("HEALTHCHECK")
    options, _, command = args.partition(" CMD ")
    return dict(opt.removeprefix("--").split("=", 1) for opt in options.split()), json.loads(command)


def here(command: list[str]) -> list[str]:
    """An image command run on this machine: its program from this interpreter's environment,
    where ``pip install .`` put the same console scripts as in the image."""
    program = sys.executable if command[0] == IMAGE_PYTHON else shutil.which(command[0],
                                                                             path=str(Path(sys.executable).parent))
    assert program, f"{command[0]!r} is not installed beside {sys.executable}"
    return [program, *command[1:]]


def seconds(duration: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    return sum(float(n) * units[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", duration))


def test_the_dockerfile_passes_hadolint():
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert hadolint, "no hadolint: install the test extra (pip install -e '.[test]')"
    # Its default threshold fails on every finding down to "info", warnings included.
    linted = subprocess.run([hadolint, "--no-color", "Dockerfile"], cwd=ROOT, capture_output=True, text=True)
    assert linted.returncode == 0, linted.stdout + linted.stderr


def test_the_image_installs_dependencies_before_the_code():
    """A code change must not reinstall torch: the dependency layers come before any code is copied."""
    steps = instructions()
    copies = [i for i, (kw, args) in enumerate(steps) if kw == "COPY"]
    first_install = next(i for i, (kw, args) in enumerate(steps) if kw == "RUN" and "pip install" in args)
    assert steps[copies[0]][1].split()[:-1] == ["pyproject.toml"], "only pyproject.toml before the dependencies"
    assert copies[0] < first_install < copies[1]
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    (torch,) = [d for d in dependencies if d.startswith("torch")]
    install = steps[first_install][1]
    assert f"--index-url \"${{TORCH_INDEX_URL}}\" {torch.split(';')[0].strip()}" in install
    assert "torchvision" not in (ROOT / "Dockerfile").read_text()
    assert "TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu" in arguments("ARG")
    assert any(args.startswith("BASE_IMAGE=") for args in arguments("ARG"))
    assert "--no-deps ." in next(args for kw, args in steps[copies[-1]:] if kw == "RUN")


def test_the_image_runs_as_a_user_with_its_data_on_a_volume():
    (user,) = arguments("USER")
    assert user.split(":")[0] not in ("root", "0")
    assert json.loads(arguments("VOLUME")[0]) == [image_env()["DATA_DIR"]]
    options, _ = healthcheck()
    assert seconds(options["start-period"]) >= 120, "Ray and the models take minutes to start"


def test_the_build_context_has_what_the_image_copies_and_no_more():
    ignored = [line for line in (ROOT / ".dockerignore").read_text().splitlines() if line and line[0] != "#"]
    for name in (".venv", ".git", ".env", "tests", "bench", ".pytest_cache"):
        assert name in ignored
    for args in arguments("COPY"):
        for source in args.split()[:-1]:
            assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
            assert source not in ignored, f"COPY {source}: excluded by .dockerignore"


class _Health(BaseHTTPRequestHandler):
    status = 503

    def do_GET(self) -> None:
        body = json.dumps({"status": "ok" if self.status == 200 else "starting"}).encode()
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@contextlib.contextmanager
def health_server() -> Iterator[tuple[ThreadingHTTPServer, type[_Health]]]:
    handler = type("Health", (_Health,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server, handler
    finally:
        server.shutdown()
        server.server_close()


def run_healthcheck(port: int) -> int:
    _, command = healthcheck()
    env = {**os.environ, "SERVICE_PORT": str(port)}
    return subprocess.run(here(command), env=env, capture_output=True, timeout=30).returncode


def test_the_healthcheck_passes_only_on_200():
    with health_server() as (server, handler):
        port = server.server_address[1]
        assert run_healthcheck(port) != 0  # 503: starting
        handler.status = 200
        assert run_healthcheck(port) == 0
    assert run_healthcheck(free_port()) != 0  # nothing listens


def deployed_times() -> dict[str, float]:
    from ray import serve

    return {name: app.last_deployed_time_s for name, app in serve.status().applications.items()}


async def test_the_image_command_serves_healthz(server: Running, settings: Settings):
    """The image's command and environment, adapted to this machine: a free port, and the session's
    Ray, Redis, DATA_DIR, registry and public URL, so it joins the session's deployment as one more
    gateway and every application it finds has its own fingerprint (nothing is redeployed)."""
    env_of_image = image_env()
    for name in ("SERVICE_PORT", "DATA_DIR"):
        assert name in env_of_image, f"the image sets no {name}"
    port = free_port()
    env = {**server.env, **env_of_image, **new_mark(), "SERVICE_PORT": str(port),
           "DATA_DIR": server.env["DATA_DIR"], "ALGO_MCP_REGISTRY": str(settings.algo_mcp_registry),
           "PUBLIC_BASE_URL": server.url}
    assert env["RAY_ADDRESS"] and env["REDIS_URL"]
    deployed = await asyncio.to_thread(deployed_times)
    url = f"http://127.0.0.1:{port}"
    proc = await asyncio.create_subprocess_exec(*here(image_command()), cwd=ROOT, env=env,
                                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        async def healthy() -> dict | None:
            assert proc.returncode is None, "the image's command exited during start-up"
            try:
                async with httpx.AsyncClient() as http:
                    answer = await http.get(f"{url}/healthz")
            except httpx.HTTPError:
                return None
            return answer.json() if answer.status_code == 200 else None

        body = await poll(healthy, timeout_s=240, interval_s=0.5, what="the image's gateway healthy")
        assert body["status"] == "ok"
        assert await asyncio.to_thread(run_healthcheck, port) == 0
        proc.send_signal(signal.SIGTERM)  # what `docker stop` sends
        assert await asyncio.wait_for(proc.wait(), 60) == 0
        assert await asyncio.to_thread(deployed_times) == deployed, "it redeployed the session's applications"
    finally:
        for pid in marked(env):
            os.kill(pid, signal.SIGKILL)


# --- docker-compose.yml -------------------------------------------------------------------------

@cache
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def test_the_compose_file_follows_the_compose_specification():
    schema = json.loads((SCHEMAS / "compose-spec.json").read_text())
    jsonschema.Draft7Validator(schema).validate(compose())


def test_the_compose_stack_is_wired():
    services, volumes = compose()["services"], compose().get("volumes", {})
    gateway = services["gateway"]
    assert gateway["build"] == "."
    assert [e["path"] if isinstance(e, dict) else e for e in gateway["env_file"]] == [".env"]
    for name, dependency in gateway["depends_on"].items():
        assert name in services, f"the gateway depends on {name}, which is not a service"
        if dependency.get("required", True):
            assert "profiles" not in services[name], f"{name} is behind a profile: the dependency must be optional"
    assert services["s3-bucket"]["depends_on"]["seaweedfs"]["condition"] == "service_healthy"
    assert gateway["depends_on"]["s3-bucket"]["condition"] == "service_completed_successfully"
    assert services["kafka"]["profiles"] == ["streams"]
    for name, service in services.items():
        for mount in service.get("volumes", []):
            source = mount.split(":")[0] if isinstance(mount, str) else mount["source"]
            assert source in volumes, f"{name}: volume {source} is not declared"
        long_running = service.get("restart") != "no"
        assert not long_running or "healthcheck" in service or service.get("build") == ".", \
            f"{name} has no healthcheck (only the gateway's image has its own)"
    assert any(m.endswith(f":{image_env()['DATA_DIR']}") for m in gateway["volumes"])
    assert set(gateway["environment"]) <= SETTING_NAMES
    assert gateway["ports"] == [f"${{SERVICE_PORT:-8000}}:{gateway['environment']['SERVICE_PORT']}"]


def test_the_compose_variables_are_in_the_env_example():
    """``cp .env.example .env`` names every variable the stack reads."""
    example = {line.split("=", 1)[0] for line in (ROOT / ".env.example").read_text().splitlines()
               if "=" in line and not line.startswith("#")}
    used = set(re.findall(r"(?<!\$)\$\{([A-Z_][A-Z0-9_]*)", COMPOSE.read_text()))
    assert used and used <= example, f"not in .env.example: {sorted(used - example)}"


# --- deploy/kuberay/ ----------------------------------------------------------------------------

def closed(schema: Any) -> Any:
    """The schema as the API server applies it: an object's unknown fields are errors
    (``kubectl apply`` validates strictly), except where the schema preserves them."""
    if isinstance(schema, list):
        return [closed(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: ({name: closed(s) for name, s in value.items()} if key in ("properties", "patternProperties")
                 else closed(value)) for key, value in schema.items()}
    if "properties" in out and "additionalProperties" not in out \
            and not out.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    return out


@cache
def manifests(path: Path) -> dict[str, dict[str, Any]]:
    """The file's documents by kind (one of each)."""
    return {doc["kind"]: doc for doc in yaml.safe_load_all(path.read_text())}


def head_container() -> dict[str, Any]:
    return manifests(RAYCLUSTER)["RayCluster"]["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]


def assert_follows_crd(resource: dict[str, Any], crd_file: str) -> None:
    crd = yaml.load((SCHEMAS / crd_file).read_text(), Loader=yaml.CSafeLoader)  # 0.5 MB
    group, version = resource["apiVersion"].split("/")
    assert group == crd["spec"]["group"] and resource["kind"] == crd["spec"]["names"]["kind"]
    (served,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
    schema = closed(served["schema"]["openAPIV3Schema"])
    errors = sorted(jsonschema.Draft4Validator(schema).iter_errors(resource), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{'.'.join(map(str, e.path))}: {e.message}" for e in errors)


def assert_runs_this_ray(cluster_spec: dict[str, Any]) -> None:
    """KubeRay needs the version for token auth (>= 2.52), and it must be the image's Ray."""
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    (ray_pin,) = [d for d in dependencies if d.startswith("ray[")]
    assert ray_pin.endswith(f"=={cluster_spec['rayVersion']}")


def assert_reaches_healthz(service: dict[str, Any], gateway: dict[str, Any]) -> None:
    """The Service's port is the gateway's, and the gateway is in it only while /healthz answers 200."""
    (port,) = service["spec"]["ports"]
    ports = {p["name"]: p["containerPort"] for p in gateway["ports"]}
    assert ports[port["targetPort"]] == int(next(e["value"] for e in gateway["env"] if e["name"] == "SERVICE_PORT"))
    assert gateway["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": port["targetPort"]}


def test_the_raycluster_follows_the_kuberay_crd():
    assert_follows_crd(manifests(RAYCLUSTER)["RayCluster"], "ray.io_rayclusters.yaml")


def test_the_raycluster_runs_this_ray_and_the_image_command():
    cluster = manifests(RAYCLUSTER)["RayCluster"]
    assert_runs_this_ray(cluster["spec"])
    head = head_container()
    annotations = cluster["spec"]["headGroupSpec"]["template"]["metadata"]["annotations"]
    assert annotations["ray.io/overwrite-container-cmd"] == "true"
    (script,) = head["args"]
    assert "${KUBERAY_GEN_RAY_START_CMD/--block/}" in script and script.endswith(shlex.join(image_command()))
    assert {e["name"] for e in head["env"]} <= SETTING_NAMES


def test_the_gateway_service_reaches_the_head_when_healthy():
    service, cluster = manifests(RAYCLUSTER)["Service"], manifests(RAYCLUSTER)["RayCluster"]
    assert service["spec"]["selector"] == {"ray.io/cluster": cluster["metadata"]["name"], "ray.io/node-type": "head"}
    assert_reaches_healthz(service, head_container())



# --- deploy/kuberay/rayservice.yaml -------------------------------------------------------------

def rayservice() -> dict[str, Any]:
    return manifests(RAYSERVICE)["RayService"]


def serve_config() -> dict[str, Any]:
    """``serveConfigV2``: Serve's config, as a YAML string inside the RayService."""
    return yaml.safe_load(rayservice()["spec"]["serveConfigV2"])


def gateway_pod() -> dict[str, Any]:
    return manifests(RAYSERVICE)["Deployment"]["spec"]["template"]


def ray_containers() -> list[dict[str, Any]]:
    cluster = rayservice()["spec"]["rayClusterConfig"]
    groups = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
    return [container for group in groups for container in group["template"]["spec"]["containers"]]


def test_the_rayservice_follows_the_kuberay_crd():
    assert_follows_crd(rayservice(), "ray.io_rayservices.yaml")
    assert_runs_this_ray(rayservice()["spec"]["rayClusterConfig"])


def test_the_rayservice_serve_config_follows_serves_schema():
    from ray.serve.config import ProxyLocation
    from ray.serve.schema import ServeDeploySchema

    config = ServeDeploySchema.model_validate(serve_config())
    # KubeRay counts a cluster as serving only when Serve's HTTP proxy answers /-/healthz
    assert config.proxy_location != ProxyLocation.Disabled and config.http_options.port == 8000
    for app in config.applications:  # no route at all: an unset route_prefix would be "/" for every app
        assert "route_prefix" in app.model_fields_set and app.route_prefix is None, app.name


def test_the_rayservice_declares_every_algorithm_and_nothing_else():
    from engines.algorithms.registry import Registry

    apps = serve_config()["applications"]
    assert [app["name"] for app in apps] == Registry.load(ROOT / "algorithms.yaml").names()
    for app in apps:
        assert app["import_path"] == "engines.serving.rayservice:app" and app["args"] == {"name": app["name"]}


def test_the_rayservice_builds_what_a_gateway_deploys(monkeypatch):
    """Each application, built as Serve builds it from the manifest, carries the fingerprint a gateway
    with the same environment computes, so gateways reuse it instead of deploying their own. Settings
    that enter the fingerprint are set away from their defaults: the builder must read them too."""
    from ray._common.utils import import_attr
    from ray.serve._private.api import call_user_app_builder_with_args_if_necessary

    from engines.algorithms.registry import Registry
    from engines.serving.deploy import AlgorithmApp

    for name, value in {"ALGO_MCP_REGISTRY": str(ROOT / "algorithms.yaml"), "LOG_LEVEL": "DEBUG",
                        "DEFAULT_MAX_CONCURRENCY": "3", "FETCH_ALLOWLIST": "10.0.0.0/8"}.items():
        monkeypatch.setenv(name, value)
    gateway = Settings()
    registry = Registry.load(gateway.algo_mcp_registry)
    for app in serve_config()["applications"]:
        built = call_user_app_builder_with_args_if_necessary(import_attr(app["import_path"]), app["args"])
        deployment = built._bound_deployment  # what Serve deploys, with the options the builder gave it
        declared = AlgorithmApp(registry.get(app["name"]), gateway)
        assert deployment.name == app["name"]
        assert deployment.user_config["fingerprint"] == declared.fingerprint(), app["name"]
        assert deployment.logging_config["log_level"] == "DEBUG"
        assert deployment.ray_actor_options["runtime_env"]["env_vars"]["FETCH_ALLOWLIST"] == "10.0.0.0/8"


def test_the_gateways_join_the_rayservice_with_the_ray_pods_environment():
    """One environment for the Ray pods (where Serve builds the applications) and the gateways
    (where the fingerprints they are compared with are computed)."""
    name, pod = rayservice()["metadata"]["name"], gateway_pod()["spec"]
    (gateway,) = pod["containers"]
    for container in ray_containers():
        assert container["envFrom"] == gateway["envFrom"], container["name"]
    sources = [next(iter(source.values()))["name"] for source in gateway["envFrom"]]
    config_map = manifests(RAYSERVICE)["ConfigMap"]
    assert sources[-1] == config_map["metadata"]["name"], "the ConfigMap must win over the secret (.env)"
    assert set(config_map["data"]) <= SETTING_NAMES
    # the registry the image copies into its WORKDIR, by an absolute path
    assert config_map["data"]["ALGO_MCP_REGISTRY"] == f"{arguments('WORKDIR')[-1]}/algorithms.yaml"
    assert any("algorithms.yaml" in args.split()[:-1] for args in arguments("COPY"))

    env = {e["name"]: e for e in gateway["env"]}
    assert set(env) <= SETTING_NAMES | {"RAY_AUTH_MODE", "RAY_AUTH_TOKEN"}
    assert env["RAY_ADDRESS"]["value"] == f"{name}-head-svc:6379"  # KubeRay's head service of a RayService
    auth = rayservice()["spec"]["rayClusterConfig"]["authOptions"]
    assert auth["mode"] == env["RAY_AUTH_MODE"]["value"] == "token"
    assert env["RAY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": auth["secretName"], "key": "auth_token"}
    (script,) = gateway["args"]
    assert script.startswith('ray start --address="$RAY_ADDRESS" --num-cpus=0 --num-gpus=0')
    assert script.endswith(shlex.join(image_command()))
    (wait,) = pod["initContainers"]
    assert f"http://{name}-serve-svc:{serve_config()['http_options']['port']}/-/healthz" in wait["command"][-1]


def test_the_gateway_service_reaches_healthy_gateways():
    service, (gateway,) = manifests(RAYSERVICE)["Service"], gateway_pod()["spec"]["containers"]
    assert service["spec"]["selector"] == gateway_pod()["metadata"]["labels"]
    assert manifests(RAYSERVICE)["Deployment"]["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]
    assert_reaches_healthz(service, gateway)
