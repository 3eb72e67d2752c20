"""The deployment files agree with the code: deploy/k8s/ manifests and deploy/Dockerfile.

Each container's command line is parsed by the real ``venvsmith`` parser, with its ConfigMap's config.toml and its
environment applied as ``serve`` applies them (:func:`venvsmith.cli.serve_options.apply_config`); the ports, probes
and grace period of the manifests are then compared with what that server would actually listen on and do.
"""

from __future__ import annotations

import os
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from builder_service.artifact_service import SERVICE_NAME as ARTIFACT_SERVICE
from builder_service.service import SERVICE_NAME as BUILDER_SERVICE
from resolver_service.service import SERVICE_NAME as RESOLVER_SERVICE
from venvsmith.cli import build_parser
from venvsmith.cli.serve_options import _keys, _serve_parser, apply_config

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
CONFIG_PATH = "/etc/venvsmith/config.toml"
#: The gRPC services each server registers with its health service ("" is the whole server).
HEALTH_NAMES = {
    "resolver": {"", RESOLVER_SERVICE},
    "builder": {"", BUILDER_SERVICE, ARTIFACT_SERVICE, RESOLVER_SERVICE},
}
MAIN_SERVICE = {"resolver": RESOLVER_SERVICE, "builder": BUILDER_SERVICE}
PROBES = ("startupProbe", "readinessProbe", "livenessProbe")


def _documents() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    return docs


DOCS = _documents()


def _of_kind(kind: str) -> list[dict[str, Any]]:
    return [d for d in DOCS if d["kind"] == kind]


def _named(kind: str, name: str) -> dict[str, Any]:
    found = [d for d in _of_kind(kind) if d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind} {name}: {len(found)} found"
    return found[0]


def _serve_keys() -> dict[str, Any]:
    return _keys(_serve_parser(build_parser()))


DEPLOYMENTS = {d["metadata"]["labels"]["app.kubernetes.io/component"]: d for d in _of_kind("Deployment")}


def _container(component: str) -> dict[str, Any]:
    containers = DEPLOYMENTS[component]["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def _config_map(component: str) -> dict[str, Any]:
    volumes = DEPLOYMENTS[component]["spec"]["template"]["spec"]["volumes"]
    names = [v["configMap"]["name"] for v in volumes if "configMap" in v]
    assert len(names) == 1, names
    return _named("ConfigMap", names[0])


def _effective(component: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The ``serve`` options the container runs with: its args, its config.toml and its VENVSMITH_* variables."""
    container = _container(component)
    config = tmp_path / "config.toml"
    config.write_text(_config_map(component)["data"]["config.toml"])
    argv = [str(config) if a == CONFIG_PATH else a for a in container["args"]]
    assert str(config) in argv, f"{component}: args do not name {CONFIG_PATH}"
    for name in [n for n in os.environ if n.startswith("VENVSMITH_")]:
        monkeypatch.delenv(name)
    for var in container.get("env", []):
        # A Secret's value is not in the manifests: any well-formed stand-in does.
        monkeypatch.setenv(var["name"], var["value"] if "value" in var else "stand-in-secret-0123456789")
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit:
        pytest.fail(f"{component}: args {argv} are not a valid venvsmith command line")
    return apply_config(parser, argv, args)


def _ports(container: dict[str, Any]) -> dict[str, int]:
    return {p["name"]: p["containerPort"] for p in container["ports"]}


def test_there_is_a_resolver_and_a_builder_and_no_secret_values():
    assert set(DEPLOYMENTS) == {"resolver", "builder"}
    # Secrets are referenced (volumes, secretKeyRef), never carried by the manifests.
    assert not _of_kind("Secret")


@pytest.mark.parametrize("component", ["resolver", "builder"])
def test_container_serves_what_its_ports_and_probes_say(component, tmp_path, monkeypatch):
    args = _effective(component, tmp_path, monkeypatch)
    assert args.command == "serve" and args.service == component
    assert args.host == "0.0.0.0", "a server listening on 127.0.0.1 is unreachable from the Service"
    container = _container(component)
    expected = {"grpc": args.port, "metrics": args.metrics_port}
    if args.http_port is not None:
        expected["http"] = args.http_port
    assert _ports(container) == expected
    for probe in PROBES:
        grpc_probe = container[probe]["grpc"]
        assert grpc_probe["port"] == args.port, probe
        assert grpc_probe.get("service", "") in HEALTH_NAMES[component], probe
    assert container["readinessProbe"]["grpc"]["service"] == MAIN_SERVICE[component]
    annotations = DEPLOYMENTS[component]["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(args.metrics_port)
    assert annotations["prometheus.io/path"] == "/metrics"
    pod = DEPLOYMENTS[component]["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] > args.grace_period


def test_resolver_listens_on_the_codes_default_port(tmp_path, monkeypatch):
    default = _serve_keys()["port"].default
    assert _effective("resolver", tmp_path, monkeypatch).port == default
    assert _ports(_container("resolver"))["grpc"] == default


@pytest.mark.parametrize("component", ["resolver", "builder"])
def test_config_keys_are_serve_options(component):
    text = _config_map(component)["data"]["config.toml"]
    keys = _serve_keys()
    assert set(tomllib.loads(text)) <= set(keys)
    # The commented-out alternatives (TLS) are real keys too, ready to be uncommented.
    commented = re.findall(r"^\s*#\s*([a-z_]+)\s*=", text, re.MULTILINE)
    assert commented and set(commented) <= set(keys), commented


@pytest.mark.parametrize("component", ["resolver", "builder"])
def test_configured_files_are_mounted(component, tmp_path, monkeypatch):
    args = _effective(component, tmp_path, monkeypatch)
    container = _container(component)
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in DEPLOYMENTS[component]["spec"]["template"]["spec"]["volumes"]}
    text = _config_map(component)["data"]["config.toml"]
    paths = re.findall(r'^\s*#?\s*[a-z_]+\s*=\s*"(/[^"]+)"', text, re.MULTILINE)
    assert args.home in paths
    for path in paths:
        mount = next((m for p, m in mounts.items() if path == p or path.startswith(p.rstrip("/") + "/")), None)
        assert mount is not None, f"{component}: {path} is on no volume"
        if path == args.home:
            assert not mount.get("readOnly"), "the state directory must be writable"
            continue
        volume = volumes[mount["name"]]
        if "/tokens/" in path or "/tls/" in path:
            assert "secret" in volume, f"{path} must come from a Secret"
            assert "subPath" not in mount, f"{path}: a subPath mount never sees a rotated Secret"


@pytest.mark.parametrize("component", ["resolver", "builder"])
def test_pods_run_unprivileged_with_limits(component):
    pod = DEPLOYMENTS[component]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] not in (0, None)
    assert pod["automountServiceAccountToken"] is False
    container = _container(component)
    context = container["securityContext"]
    assert context["allowPrivilegeEscalation"] is False
    assert context["readOnlyRootFilesystem"] is True
    assert context["capabilities"]["drop"] == ["ALL"]
    assert "add" not in context["capabilities"] and not context.get("privileged")
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert "memory" in container["resources"]["limits"]


def test_builder_pod_allows_the_sandbox(tmp_path, monkeypatch):
    args = _effective("builder", tmp_path, monkeypatch)
    assert args.sandbox != "none"
    seccomp = _container("builder")["securityContext"]["seccompProfile"]["type"]
    assert seccomp in ("Unconfined", "Localhost"), "the default seccomp profile refuses the sandbox's unshare/mount"


@pytest.mark.parametrize("component", ["resolver", "builder"])
def test_services_budgets_and_policies_select_the_pods(component):
    deployment = DEPLOYMENTS[component]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    ports = _ports(_container(component))
    service = _named("Service", deployment["metadata"]["name"])
    assert service["spec"]["selector"].items() <= labels.items()
    for port in service["spec"]["ports"]:
        assert port["targetPort"] in ports
        assert port["port"] == ports[port["targetPort"]], "clients use the same port number as the container"
    def selects(selector: dict[str, Any]) -> bool:
        return selector["matchLabels"].items() <= labels.items()

    budgets = [b for b in _of_kind("PodDisruptionBudget") if selects(b["spec"]["selector"])]
    assert len(budgets) == 1 and budgets[0]["spec"]["minAvailable"] < deployment["spec"]["replicas"]
    policies = [p for p in _of_kind("NetworkPolicy") if selects(p["spec"]["podSelector"])]
    assert len(policies) == 1 and set(policies[0]["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    allowed = {p["port"] for rule in policies[0]["spec"]["ingress"] for p in rule["ports"]}
    assert allowed == set(ports.values())
    egress = {p["port"] for rule in policies[0]["spec"]["egress"] for p in rule["ports"]}
    assert 53 in egress and 443 in egress


def test_resolver_reaches_the_builder_service(tmp_path, monkeypatch):
    args = _effective("resolver", tmp_path, monkeypatch)
    host, port = args.builder.rsplit(":", 1)
    builder = _named("Service", host)
    assert int(port) in {p["port"] for p in builder["spec"]["ports"] if p["name"] == "grpc"}


def test_builder_advertises_its_services_address(tmp_path, monkeypatch):
    """Artifact URLs name the builder's Service (what CI jobs reach), not the pod's own address."""
    from urllib.parse import urlsplit

    args = _effective("builder", tmp_path, monkeypatch)
    assert args.public_url, "the builder must set VENVSMITH_PUBLIC_URL (public_url): the Service's address"
    url = urlsplit(args.public_url)
    service = _named("Service", url.hostname.split(".")[0])
    assert service["spec"]["selector"] == DEPLOYMENTS["builder"]["spec"]["selector"]["matchLabels"]
    assert url.port in {p["port"] for p in service["spec"]["ports"] if p["name"] == "http"}


# --- the Dockerfile --------------------------------------------------------------------------------------------


def _stages() -> dict[str, dict[str, Any]]:
    """Each stage: its base and its instructions (continuation lines joined)."""
    text = re.sub(r"\\\n", " ", (DEPLOY / "Dockerfile").read_text())
    stages: dict[str, dict[str, Any]] = {}
    current: dict[str, Any] | None = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        if word.upper() == "FROM":
            parts = rest.split()
            assert len(parts) == 3 and parts[1].upper() == "AS", line
            current = stages[parts[2]] = {"base": parts[0], "lines": []}
        elif current is not None:
            current["lines"].append((word.upper(), rest.strip()))
    return stages


def _chain(target: str) -> list[tuple[str, str]]:
    """The instructions in effect for ``target``: its base stages' first."""
    stages = _stages()
    lines: list[tuple[str, str]] = []
    while target in stages:
        lines = stages[target]["lines"] + lines
        target = stages[target]["base"]
    return lines


def _last(lines: list[tuple[str, str]], word: str) -> str:
    values = [rest for w, rest in lines if w == word]
    assert values, f"no {word}"
    return values[-1]


@pytest.mark.parametrize("target", ["resolver", "builder"])
def test_image_runs_venvsmith_as_a_user_that_is_not_root(target):
    import json

    lines = _chain(target)
    user = _last(lines, "USER").split(":")[0]
    assert user not in ("root", "0"), user
    assert json.loads(_last(lines, "ENTRYPOINT")) == ["venvsmith"]
    command = json.loads(_last(lines, "CMD"))
    args = build_parser().parse_args(command)
    assert args.command == "serve" and args.service == target and args.config == CONFIG_PATH
    assert command == _container(target)["args"]


def test_only_the_builder_image_has_a_compiler_and_it_has_the_sandbox():
    def installs(target: str) -> str:
        return " ".join(rest for word, rest in _chain(target) if word in ("RUN", "ARG"))

    compilers = re.compile(r"\b(gcc|g\+\+|clang|build-essential|cc)\b")
    assert not compilers.search(installs("resolver"))
    assert compilers.search(installs("builder"))
    assert "bubblewrap" in shlex.split(installs("builder").replace('"', " "))


def test_readme_operator_section_names_every_config_key():
    text = (DEPLOY.parent / "README.md").read_text()
    section = text.split("### Operating venvsmith", 1)[1].split("\n## ", 1)[0]
    missing = [key for key in _serve_keys() if f"`{key}`" not in section]
    assert not missing, f"README 'Operating venvsmith' does not name {missing}"
