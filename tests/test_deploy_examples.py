"""deploy/examples/: the pod mounting an environment image as a Kubernetes image volume parses and names an
environment image by digest, the way one is chosen from the lock key's index (REPO-PREFIX/envs@sha256:<hex>); the
Dockerfile example copies one the same way."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from builder_service.env_image import environment_tag, venv_tag

EXAMPLES = Path(__file__).resolve().parents[1] / "deploy" / "examples"
_DIGEST_REF = re.compile(r"[a-z0-9.:-]+(?:/[a-z0-9._-]+)*/envs@sha256:[0-9a-f]{64}")


def test_image_volume_example_parses_and_mounts_an_environment_image_by_digest():
    docs = list(yaml.safe_load_all((EXAMPLES / "env-image-volume.yaml").read_text()))
    assert len(docs) == 1
    pod = docs[0]
    assert (pod["apiVersion"], pod["kind"]) == ("v1", "Pod")
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    images = {name: v["image"] for name, v in volumes.items() if "image" in v}
    assert images, "no image volume"
    for name, image in images.items():
        assert _DIGEST_REF.fullmatch(image["reference"]), image["reference"]
        assert image.get("pullPolicy") in ("IfNotPresent", "Always", "Never")
        mounts = [m for c in pod["spec"]["containers"] for m in c["volumeMounts"] if m["name"] == name]
        assert mounts and all(m.get("readOnly") for m in mounts)
        command = pod["spec"]["containers"][0]["command"][0]
        assert command.startswith(mounts[0]["mountPath"] + "/bin/")


def test_dockerfile_example_copies_an_environment_image_by_digest():
    text = re.sub(r"\\\n", " ", (EXAMPLES / "Dockerfile.env-image").read_text())
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    assert lines[0].startswith("FROM ")
    copies = [ln.split() for ln in lines if ln.startswith("COPY --from=")]
    assert copies, "no COPY --from"
    for copy in copies:
        source = copy[1].removeprefix("--from=")
        assert _DIGEST_REF.fullmatch(source), source
        assert copy[2:] == ["/", "/opt/venv"]
    assert any(ln.startswith(("ENTRYPOINT", "CMD")) and "/opt/venv/bin/" in ln for ln in lines)


def test_the_tags_fit_the_distribution_tag_grammar():
    tag = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
    assert tag.fullmatch(venv_tag("venv:" + "a" * 64))
    assert tag.fullmatch(environment_tag("b" * 64, "venv:" + "a" * 64))


def _hostpaths(spec: dict) -> dict[str, dict]:
    return {v["name"]: v["hostPath"] for v in spec["volumes"] if "hostPath" in v}


def _mount(container: dict, volume: str) -> str:
    found = [m["mountPath"] for m in container.get("volumeMounts", []) if m["name"] == volume]
    assert len(found) == 1, (container["name"], volume)
    return found[0]


def test_node_cache_daemonset_owns_and_prunes_the_hostpath_the_ci_pod_mounts():
    import shlex

    from venvsmith.cli import build_parser

    (daemonset,) = yaml.safe_load_all((EXAMPLES / "node-cache-daemonset.yaml").read_text())
    (pod,) = yaml.safe_load_all((EXAMPLES / "ci-pod-node-cache.yaml").read_text())
    assert (daemonset["apiVersion"], daemonset["kind"]) == ("apps/v1", "DaemonSet")
    assert (pod["apiVersion"], pod["kind"]) == ("v1", "Pod")
    template = daemonset["spec"]["template"]
    assert daemonset["spec"]["selector"]["matchLabels"].items() <= template["metadata"]["labels"].items()
    ds_volumes, pod_volumes = _hostpaths(template["spec"]), _hostpaths(pod["spec"])
    assert len(ds_volumes) == len(pod_volumes) == 1
    (ds_name, ds_host), (pod_name, pod_host) = next(iter(ds_volumes.items())), next(iter(pod_volumes.items()))
    assert ds_host["path"] == pod_host["path"] and ds_host.get("type") == "DirectoryOrCreate"
    parser = build_parser()
    (prune,) = template["spec"]["containers"]
    args = parser.parse_args(prune["args"])
    assert (args.command, args.node_cache_action) == ("node-cache", "prune")
    assert args.dir == _mount(prune, ds_name) and args.every and args.every >= 60
    for init in template["spec"].get("initContainers", []):
        assert _mount(init, ds_name) == args.dir and args.dir in " ".join(init["command"])
    assert template["spec"]["securityContext"]["runAsUser"] == pod["spec"]["securityContext"]["runAsUser"]
    # the CI job: `venvsmith venv PATH --server ADDR --node-cache DIR`, DIR the pod's mount of the same hostPath
    (tests,) = pod["spec"]["containers"]
    script = " ".join(tests["args"])
    venv_call = next(part for part in script.split("&&") if part.strip().startswith("venvsmith venv"))
    argv = shlex.split(venv_call)[1:]
    args = parser.parse_args(argv)
    assert args.command == "venv" and args.server and args.node_cache == _mount(tests, pod_name)
    assert not args.path.startswith(args.node_cache + "/")  # PATH is the pod's own, layered on the shared copy
    env = {e["name"]: e["value"] for e in tests.get("env", [])}
    if "VENVSMITH_NODE_CACHE_MAX_SIZE" in env:
        from builder_service.store.disk_guard import parse_free_space

        parse_free_space(env["VENVSMITH_NODE_CACHE_MAX_SIZE"])
