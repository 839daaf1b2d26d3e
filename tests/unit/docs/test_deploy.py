"""deploy/: every manifest parses, the agent configuration each one carries validates with
``ebpf-receiver validate``, and what the manifests say about the agent (PID namespace,
capabilities, ports, probes, mounts) agrees with that configuration and with the image."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from build_files import REPO, containerfile
from receiver.bpf.privileges import REQUIRED
from receiver.config import AgentConfig, load_config

DEPLOY = REPO / "deploy"
DAEMONSET = DEPLOY / "kubernetes" / "daemonset.yaml"
SIDECAR = DEPLOY / "kubernetes" / "sidecar.yaml"
COMPOSE = DEPLOY / "compose" / "compose.yaml"
AGENT_CONFIG_PATH = "/etc/ebpf-receiver/config.yaml"
# The manifests grant exactly the documented set (receiver.bpf.privileges.REQUIRED).
DOCUMENTED_CAPABILITIES = {name.removeprefix("CAP_") for name in REQUIRED}
COLLECTOR_IMAGE = "otel/opentelemetry-collector-contrib"


def documents(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def walk(node, path=()) -> Iterator[tuple[tuple, object]]:
    yield path, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from walk(value, path + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from walk(value, path + (index,))


def port_of(endpoint: str) -> int:
    return int(endpoint.rpartition(":")[2])


def load(text: str, tmp_path: Path, name: str) -> AgentConfig:
    path = tmp_path / name
    path.write_text(text)
    return load_config([str(path)], {})


# --- Kubernetes -----------------------------------------------------------------------------


def k8s(path: Path, kind: str, name: str | None = None) -> dict:
    found = [d for d in documents(path) if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"{path.name}: expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def pod_spec(workload: dict) -> dict:
    return workload["spec"]["template"]["spec"]


def container(spec: dict, predicate) -> dict:
    found = [c for c in spec["containers"] if predicate(c)]
    assert len(found) == 1
    return found[0]


def is_agent(c: dict) -> bool:
    return c["image"].split(":")[0].endswith("ebpf-receiver")


def mounted_config(spec: dict, agent: dict, manifest: Path) -> tuple[str, dict]:
    """(agent config text from the ConfigMap mounted at /etc/ebpf-receiver, that ConfigMap)."""
    args = agent.get("args", [])
    config_path = args[args.index("--config") + 1]
    assert config_path == AGENT_CONFIG_PATH
    directory, _, filename = config_path.rpartition("/")
    mount = next(m for m in agent["volumeMounts"] if m["mountPath"] == directory)
    volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
    configmap = k8s(manifest, "ConfigMap", volume["configMap"]["name"])
    return configmap["data"][filename], configmap


K8S_MANIFESTS = [DAEMONSET, SIDECAR]


@pytest.mark.parametrize("path", sorted(DEPLOY.rglob("*.yaml")) + sorted(DEPLOY.rglob("*.yml")), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_every_manifest_parses(path):
    assert documents(path)


@pytest.mark.parametrize("path", K8S_MANIFESTS + [COMPOSE], ids=lambda p: p.name)
def test_nothing_is_privileged(path):
    for key_path, value in walk(documents(path)):
        if key_path and key_path[-1] == "privileged":
            assert value is False, f"{path.name}: {key_path} is {value!r}"
    assert "--privileged" not in path.read_text()


@pytest.mark.parametrize("path", K8S_MANIFESTS, ids=lambda p: p.name)
def test_agent_config_in_configmap_validates(path, validate_config):
    workload = next(d for d in documents(path) if d["kind"] in ("DaemonSet", "Deployment"))
    spec = pod_spec(workload)
    text, _ = mounted_config(spec, container(spec, is_agent), path)
    validate_config(text, what=f"{path.name} ConfigMap")


@pytest.mark.parametrize("path", K8S_MANIFESTS, ids=lambda p: p.name)
def test_agent_container_security(path):
    workload = next(d for d in documents(path) if d["kind"] in ("DaemonSet", "Deployment"))
    agent = container(pod_spec(workload), is_agent)
    security = agent["securityContext"]
    assert security.get("privileged") is False
    caps = security["capabilities"]
    assert caps["drop"] == ["ALL"]
    assert set(caps["add"]) == DOCUMENTED_CAPABILITIES and len(caps["add"]) == len(DOCUMENTED_CAPABILITIES)
    assert security["readOnlyRootFilesystem"] is True
    assert security.get("allowPrivilegeEscalation") is False
    mounts = {m["mountPath"]: m for m in agent["volumeMounts"]}
    for host_dir in ("/sys/kernel/tracing", "/sys/kernel/btf"):
        assert mounts[host_dir]["readOnly"] is True
        volume = next(v for v in pod_spec(workload)["volumes"] if v["name"] == mounts[host_dir]["name"])
        assert volume["hostPath"]["path"] == host_dir
    assert agent["resources"]["requests"] and agent["resources"]["limits"]


@pytest.mark.parametrize("path", K8S_MANIFESTS, ids=lambda p: p.name)
def test_probes_hit_the_health_check_extension(path, tmp_path):
    workload = next(d for d in documents(path) if d["kind"] in ("DaemonSet", "Deployment"))
    spec = pod_spec(workload)
    agent = container(spec, is_agent)
    config = load(mounted_config(spec, agent, path)[0], tmp_path, "agent.yaml")
    assert "health_check" in config.service.extensions
    health = config.extensions["health_check"]
    assert health.endpoint.startswith(("0.0.0.0:", ":")), "kubelet probes the pod IP"
    for probe in ("livenessProbe", "readinessProbe"):
        get = agent[probe]["httpGet"]
        assert get["port"] == port_of(health.endpoint) and get["path"] == health.path, probe
    assert port_of(health.endpoint) in {p["containerPort"] for p in agent["ports"]}


def test_daemonset_basics(tmp_path):
    daemonset = k8s(DAEMONSET, "DaemonSet")
    spec = pod_spec(daemonset)
    assert spec["hostPID"] is True
    assert not spec.get("hostNetwork")
    agent = container(spec, is_agent)
    text, configmap = mounted_config(spec, agent, DAEMONSET)
    config = load(text, tmp_path, "agent.yaml")
    namespace = k8s(DAEMONSET, "Namespace")["metadata"]["name"]
    assert daemonset["metadata"]["namespace"] == configmap["metadata"]["namespace"] == namespace
    assert spec["serviceAccountName"] == k8s(DAEMONSET, "ServiceAccount")["metadata"]["name"]
    # Traces to the Collector Service.
    assert config.exporters["otlp"].endpoint == "otel-collector.observability.svc:4317"
    assert "otlp" in config.service.pipelines["traces"].exporters
    # Prometheus scrape annotations on the metrics port, served on all interfaces.
    prometheus = config.exporters["prometheus"]
    annotations = daemonset["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(port_of(prometheus.endpoint)) == "9464"
    assert annotations["prometheus.io/path"] == "/metrics"
    assert prometheus.endpoint.startswith("0.0.0.0:")
    assert port_of(prometheus.endpoint) in {p["containerPort"] for p in agent["ports"]}
    # Scrapes and probes of the agent itself are not captured.
    assert {port_of(prometheus.endpoint), port_of(config.extensions["health_check"].endpoint)} <= set(
        config.receivers["ebpf"].exclude_ports
    )


def test_daemonset_command_is_the_image_command():
    agent = container(pod_spec(k8s(DAEMONSET, "DaemonSet")), is_agent)
    image_cmd = containerfile().runtime.one("CMD").exec_form()
    assert agent["args"] == image_cmd
    assert "command" not in agent  # the image's ENTRYPOINT (ebpf-receiver) stays


def test_sidecar_shares_the_pod_process_namespace_and_exports_to_its_collector(tmp_path):
    deployment = k8s(SIDECAR, "Deployment")
    spec = pod_spec(deployment)
    assert spec["shareProcessNamespace"] is True
    assert not spec.get("hostPID")  # Kubernetes refuses hostPID together with shareProcessNamespace
    assert len(spec["containers"]) == 3
    agent = container(spec, is_agent)
    collector = container(spec, lambda c: c["image"].split(":")[0] == COLLECTOR_IMAGE)
    app = container(spec, lambda c: c is not agent and c is not collector)
    assert app["ports"]
    config = load(mounted_config(spec, agent, SIDECAR)[0], tmp_path, "agent.yaml")
    # The collector's own config, from its ConfigMap.
    args = collector["args"]
    collector_path = next(a.split("=", 1)[1] for a in args if a.startswith("--config="))
    directory, _, filename = collector_path.rpartition("/")
    mount = next(m for m in collector["volumeMounts"] if m["mountPath"] == directory)
    volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
    collector_config = yaml.safe_load(k8s(SIDECAR, "ConfigMap", volume["configMap"]["name"])["data"][filename])
    grpc = collector_config["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]
    otlp = config.exporters["otlp"]
    assert otlp.endpoint.startswith(("localhost:", "127.0.0.1:")) and otlp.tls.insecure
    assert port_of(otlp.endpoint) == port_of(grpc)
    assert "otlp" in config.service.pipelines["traces"].exporters
    # The collector's health port does not collide with the agent's (one network namespace).
    collector_health = port_of(collector_config["extensions"]["health_check"]["endpoint"])
    agent_health = port_of(config.extensions["health_check"].endpoint)
    assert collector_health != agent_health
    assert collector["livenessProbe"]["httpGet"]["port"] == collector_health
    # The agent excludes itself by its pid in the pod's PID namespace: no port exclusions are
    # needed; include rules scope capture to the application (and, in a pod PID namespace, leave
    # out everything outside it), so neither the agent nor the collector is traced.
    discovery = config.receivers["ebpf"].discovery
    assert discovery.include and not config.receivers["ebpf"].exclude_ports
    assert app["image"].startswith("python:3.11") and all(rule.exe for rule in discovery.include)
    assert any(fnmatch.fnmatchcase("python3.11", rule.exe) for rule in discovery.include)  # the image's python
    assert not any(fnmatch.fnmatchcase("otelcol-contrib", rule.exe) for rule in discovery.include)
    assert not any(fnmatch.fnmatchcase("ebpf-receiver", rule.exe) for rule in discovery.include)
    # The collector names the service after the pod (process attributes need the host PID namespace).
    pipeline = collector_config["service"]["pipelines"]["traces"]
    assert "resource/this-pod" in pipeline["processors"]
    env = {e["name"]: e for e in collector["env"]}
    assert env["K8S_POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"


def test_sidecar_says_what_it_cannot_do():
    head = SIDECAR.read_text().split("apiVersion:", 1)[0]
    assert "shareProcessNamespace" in head and "self-exclusion" in head and "discovery.include" in head
    assert "planned" not in head
    assert "DaemonSet" in head  # where process attributes do work


# --- Compose --------------------------------------------------------------------------------


def compose() -> dict:
    (document,) = documents(COMPOSE)
    return document


def compose_mount(service: dict, target: str) -> Path:
    for volume in service["volumes"]:
        source, destination = volume.split(":")[:2]
        if destination == target:
            return (COMPOSE.parent / source).resolve()
    pytest.fail(f"nothing mounted at {target}")


def test_compose_agent_service(validate_config):
    services = compose()["services"]
    agent = services["ebpf-receiver"]
    assert agent["pid"] == "host"
    assert agent.get("privileged") is not True
    assert agent["cap_drop"] == ["ALL"]
    assert set(agent["cap_add"]) == DOCUMENTED_CAPABILITIES and len(agent["cap_add"]) == len(DOCUMENTED_CAPABILITIES)
    assert agent["read_only"] is True
    build = agent["build"]
    assert (COMPOSE.parent / build["context"]).resolve() == REPO
    assert (REPO / build["dockerfile"]) == REPO / "Containerfile"
    for volume in agent["volumes"]:
        source = volume.split(":")[0]
        if source.startswith("/sys/"):
            assert volume.endswith(":ro"), volume
        else:
            assert (COMPOSE.parent / source).is_file(), volume
    config_file = compose_mount(agent, AGENT_CONFIG_PATH)
    validate_config(config_file, what=f"{config_file.relative_to(REPO)}")


def test_compose_ports_agree():
    services = compose()["services"]
    agent_config = load_config([str(compose_mount(services["ebpf-receiver"], AGENT_CONFIG_PATH))], {})
    # The agent exports to the collector service's OTLP gRPC port.
    collector_config = yaml.safe_load(compose_mount(services["otel-collector"], "/etc/otelcol/collector.yaml").read_text())
    grpc = collector_config["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]
    otlp = agent_config.exporters["otlp"].endpoint
    assert otlp.partition(":")[0] == "otel-collector" and port_of(otlp) == port_of(grpc)
    # Prometheus scrapes the agent's metrics port.
    prometheus_config = yaml.safe_load(compose_mount(services["prometheus"], "/etc/prometheus/prometheus.yml").read_text())
    targets = [t for job in prometheus_config["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]]
    assert f"ebpf-receiver:{port_of(agent_config.exporters['prometheus'].endpoint)}" in targets
    # The image's HEALTHCHECK (inherited) probes the health_check endpoint of this config.
    healthcheck = " ".join(containerfile().runtime.one("HEALTHCHECK").exec_form())
    port = int(re.search(r"http://[^:/]+:(\d+)", healthcheck).group(1))
    assert port == port_of(agent_config.extensions["health_check"].endpoint)
    assert "health_check" in agent_config.service.extensions
    # The example app is a real server the agent can see.
    app = services["app"]
    assert app["image"].startswith("python:3.11-slim") and "http.server" in app["command"]
