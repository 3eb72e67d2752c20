"""deploy/examples/: the pod mounting an environment image as a Kubernetes image volume parses and names an
environment image the way the builder tags it (REPO-PREFIX/envs:<lock key>)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from builder_service.env_image import venv_tag

EXAMPLES = Path(__file__).resolve().parents[1] / "deploy" / "examples"


def test_image_volume_example_parses_and_mounts_an_environment_image():
    docs = list(yaml.safe_load_all((EXAMPLES / "env-image-volume.yaml").read_text()))
    assert len(docs) == 1
    pod = docs[0]
    assert (pod["apiVersion"], pod["kind"]) == ("v1", "Pod")
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    images = {name: v["image"] for name, v in volumes.items() if "image" in v}
    assert images, "no image volume"
    for name, image in images.items():
        repo, _, tag = image["reference"].rpartition(":")
        assert repo.endswith("/envs") and re.fullmatch(r"[0-9a-f]{64}", tag), image["reference"]
        assert image.get("pullPolicy") in ("IfNotPresent", "Always", "Never")
        mounts = [m for c in pod["spec"]["containers"] for m in c["volumeMounts"] if m["name"] == name]
        assert mounts and all(m.get("readOnly") for m in mounts)
        command = pod["spec"]["containers"][0]["command"][0]
        assert command.startswith(mounts[0]["mountPath"] + "/bin/")


def test_the_exact_tag_fits_the_distribution_tag_grammar():
    assert re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}", venv_tag("venv:" + "a" * 64))
