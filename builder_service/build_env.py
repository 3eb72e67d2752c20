"""Fills isolated build environments with *our* resolver and installer (never pip).

Build requirements are resolved for the build's target environment, constrained by the pinned set where
they overlap (a package compiled against numpy is built against the pinned numpy).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from venvsmith.core.pin import Pin

from .install import install_wheels
from .venv_layout import VenvLayout

#: ``resolve(requirements, constraints) -> pins in install order`` for the build's target environment.
Resolve = Callable[[Sequence[str], Sequence[str]], list[Pin]]
#: ``wheel_path(pin) -> local path of a verified wheel`` (downloaded, or itself built from an sdist).
WheelPath = Callable[[Pin], Path]


class ResolvingBuildEnv:
    """A :class:`~builder_service.sdist_build.BuildEnvProvider` backed by the resolver and the store."""

    def __init__(self, resolve: Resolve, wheel_path: WheelPath, constraints: Sequence[str]) -> None:
        self._resolve = resolve
        self._wheel_path = wheel_path
        self.constraints = list(constraints)
        self._installed: list[Pin] = []
        self._pre: dict[tuple[str, ...], list[Pin]] = {}

    def preresolve(self, requirements: Sequence[str]) -> list[Pin]:
        """Resolve ``requirements`` now (to compute a build key before building) and reuse the answer later."""
        key = tuple(requirements)
        if key not in self._pre:
            self._pre[key] = self._resolve(list(requirements), self.constraints) if requirements else []
        return self._pre[key]

    def install(self, requirements: Sequence[str], layout: VenvLayout) -> list[str]:
        if self._installed:
            # The backend's extra requirements: resolve them together with what is installed so they fit.
            held = [f"{p.name}=={p.version}" for p in self._installed]
            pins = self._resolve(list(requirements) + held, self.constraints)
            known = {p.name for p in self._installed}
            pins = [p for p in pins if p.name not in known]
        else:
            pins = self.preresolve(requirements)
        install_wheels([self._wheel_path(p) for p in pins], layout)
        self._installed.extend(pins)
        return [f"{p.name}=={p.version}" for p in pins]
