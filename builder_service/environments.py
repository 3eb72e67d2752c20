"""Environments of a pinned set's wheels: the relocatable venv archive, the wheelhouse, the lock file, and the record
of a lock key's wheels that the HTTP endpoint serves as an index.

A venv archive is keyed by :class:`~builder_service.venv_key.VenvKey` (the lock key plus the base interpreter
and options), the others by the lock key (:mod:`~builder_service.action_keys`).
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

from packaging.utils import parse_wheel_filename

from venvsmith.core import observe
from venvsmith.core.interpreters import BaseInterpreter
from venvsmith.core.pin import Pin, requirements_txt
from venvsmith.core.target import TargetEnvironment

from .action_cache import ActionResult, Outcome, OutputRef
from .action_keys import LockWheels, Wheelhouse
from .archive import pack
from .env_image import EnvironmentImages
from .env_lock import LockInputs
from .store.oci import RegistryStore
from .store.reader import verify_blobs
from .venv_key import VenvKey
from .workspace import TEXT_MEDIA, WHEEL_MEDIA, ZSTD_MEDIA, Workspace


class Environments:
    """What a pinned set's wheels are delivered as; thread-safe."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        self._images: EnvironmentImages | None = None
        if isinstance(workspace.store, RegistryStore):
            # the queue a previous run left (blobs and environment publications) goes out once the registry answers
            self._images = EnvironmentImages(workspace.store, signer=workspace.settings.signer,
                                             trusted=workspace.settings.trusted)
            workspace.store.start_pusher()

    def seed_wheel(self, interpreter: Path) -> OutputRef:
        """The pip wheel bundled with ``interpreter``'s ensurepip, in the store (``--seed``)."""
        from .venv import bundled_pip

        wheel = bundled_pip(interpreter)
        return OutputRef(self.workspace.store.put_file(wheel), WHEEL_MEDIA, "wheel", wheel.name)

    def venv_archive(self, lock_key: str, target: TargetEnvironment, wheels: Sequence[OutputRef],
                     compile_bytecode: bool, seed: bool = False, lock: LockInputs | None = None
                     ) -> tuple[OutputRef, Outcome, BaseInterpreter]:
        """The relocatable venv of exactly these wheels (install order) for ``target``, keyed by the lock key, the
        base interpreter and the options (:class:`~builder_service.venv_key.VenvKey`); with how it came
        (``"computed"``, ``"shared"`` with a concurrent identical build, or ``"cached"``) and the interpreter.

        ``seed`` adds the pip bundled with the interpreter (unless a pin is pip already). ``lock``: what the
        environment image's lock document holds (an oci:// store).
        """
        from .venv import build_venv

        ws = self.workspace
        interpreter = ws.interpreter_for(target)
        base = ws.base_interpreter(interpreter)
        installs = list(wheels)
        if seed and not any(parse_wheel_filename(w.filename)[0] == "pip" for w in wheels):
            installs.append(self.seed_wheel(interpreter))
        seeded = installs[len(wheels):]
        key = VenvKey(lock_key, base, compile_bytecode, seeded[0].digest.hash if seeded else "")

        @observe.timed_build("venv")
        def build() -> ActionResult:
            ws.count("venv_builds")
            with tempfile.TemporaryDirectory(dir=ws.tmp) as work, ws.store.pin([w.digest for w in installs]):
                verify_blobs(ws.store, [w.digest for w in installs])  # a corrupt wheel: DATA_LOSS, quarantined
                named = [ws.named_wheel(w) for w in installs]
                venv = Path(work) / "venv"
                build_venv(interpreter, named, venv, compile_bytecode)
                archive = Path(work) / "venv.tar.zst"
                pack(venv, archive)
                digest = ws.store.put_file(archive, link=True)
                if ws.settings.templates is not None:
                    from .venv_template import adopt_template

                    adopt_template(venv, digest.hash, ws.settings.templates)
            return ActionResult((OutputRef(digest, ZSTD_MEDIA, "venv_archive", f"venv-{lock_key[:16]}.tar.zst"),),
                                meta={"lock_key": lock_key, "interpreter": base.path,
                                      "interpreter_identity": base.identity})

        images = self.images()
        if images is None:
            result, outcome = ws.actions.get_or_compute_outcome(key.key(), build)
            return result.outputs[0], outcome, base

        def shared_or_build() -> ActionResult:
            """The registry is the fleet's "venv key -> archive" map: another replica's image, else a build here,
            published (or queued for publishing while the registry is down)."""
            found = images.find(key.key())
            if found is not None:
                ws.count("venv_registry_hits")
                return ActionResult((OutputRef(found.archive, ZSTD_MEDIA, "venv_archive",
                                               f"venv-{lock_key[:16]}.tar.zst"),),
                                    meta={"lock_key": lock_key, "interpreter": base.path,
                                          "interpreter_identity": base.identity, "from_registry": "1"})
            result = build()
            images.publish_or_queue(key, result.outputs[0], installs, lock=lock, target_digest=target.digest())
            return result

        result, outcome = ws.actions.get_or_compute_outcome(key.key(), shared_or_build)
        if outcome == "computed" and result.meta.get("from_registry"):
            outcome = "cached"  # another replica's image: nothing was built here (BuildStats.venv_built false)
        return result.outputs[0], outcome, base

    def images(self) -> EnvironmentImages | None:
        """The environment images of an oci:// store, else None."""
        return self._images

    def wheelhouse(self, lock_key: str, wheels: Sequence[OutputRef]) -> OutputRef:
        """A deterministic tar.zst of ``wheels/`` plus PEP 503 ``simple/`` pages."""
        from .wheelhouse import write_tree

        ws = self.workspace

        def build() -> ActionResult:
            with tempfile.TemporaryDirectory(dir=ws.tmp) as work, ws.store.pin([w.digest for w in wheels]):
                verify_blobs(ws.store, [w.digest for w in wheels])
                tree = Path(work) / "wheelhouse"
                write_tree(tree, [(w.filename, w.digest.hash, ws.stored_path(w)) for w in wheels])
                archive = Path(work) / "wheelhouse.tar.zst"
                pack(tree, archive)
                digest = ws.store.put_file(archive, link=True)
            return ActionResult((OutputRef(digest, ZSTD_MEDIA, "wheelhouse", f"wheelhouse-{lock_key[:16]}.tar.zst"),))

        return ws.actions.get_or_compute(Wheelhouse(lock_key).key(), build)[0].outputs[0]

    def remember_wheels(self, lock_key: str, wheels: Sequence[OutputRef]) -> None:
        """Record the wheels of a lock key (the HTTP endpoint serves them as a PEP 503 index), unless they are
        (here or, with an oci:// store, published by another replica)."""
        key = LockWheels(lock_key).key()
        known = self.workspace.actions.get(key)
        if known is None or known.outputs != tuple(wheels):
            self.workspace.actions.put(key, ActionResult(tuple(wheels), meta={"lock_key": lock_key}))

    def wheels_of(self, lock_key: str) -> list[OutputRef] | None:
        hit = self.workspace.actions.get(LockWheels(lock_key).key())
        return None if hit is None else list(hit.outputs)

    def lock_file(self, pins: Sequence[Pin], target: TargetEnvironment, lock_key: str) -> OutputRef:
        """The requirements file of the pins (with their hashes), in the store."""
        text = requirements_txt(pins, target, lock_key).encode()
        digest = self.workspace.store.put_bytes(text)
        return OutputRef(digest, TEXT_MEDIA, "lock_file", f"requirements-{lock_key[:16]}.txt")
