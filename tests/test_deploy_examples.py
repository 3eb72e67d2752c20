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
