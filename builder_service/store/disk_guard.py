"""The disk-space floor of a store: a write that would leave less free space than the floor on the store's file
system evicts least-recently-used blobs first, and is refused (:class:`~builder_service.errors.StoreFull`,
RESOURCE_EXHAUSTED ``STORE_FULL``) when eviction cannot make room; nothing partial is kept.

The floor is ``serve builder --min-free-space`` (bytes with an optional unit, ``1GiB``, ``500MB``, or a share
of the file system, ``5%``); other writers of the same disk (build directories, logs, the host) keep room to
work, and a full disk never leaves the store's index or a blob half written.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import StoreFull

__all__ = ["DEFAULT_MIN_FREE_SPACE", "FreeSpaceFloor", "parse_free_space"]

#: Default floor: 1 GiB free on the store's file system.
DEFAULT_MIN_FREE_SPACE = "1GiB"
_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9,
          "t": 10**12, "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
_SPEC = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(%|[a-z]*)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class FreeSpaceFloor:
    """At least ``min_bytes`` free, or ``fraction`` of the file system's size (whichever is given)."""

    min_bytes: int = 0
    fraction: float = 0.0

    def floor(self, root: Path) -> int:
        if self.fraction:
            return int(shutil.disk_usage(root).total * self.fraction)
        return self.min_bytes

    def ensure(self, root: Path, incoming: int, name: str, evict: Callable[[int], int]) -> None:
        """Room for ``incoming`` more bytes under ``root`` above the floor: ``evict(bytes)`` (which returns the
        bytes it freed) is asked for the shortfall first; :class:`StoreFull` when that is not enough."""
        floor = self.floor(root)
        if floor <= 0:
            return
        free = shutil.disk_usage(root).free
        shortfall = floor - (free - incoming)
        if shortfall <= 0:
            return
        evict(shortfall)
        free = shutil.disk_usage(root).free
        if free - incoming < floor:
            raise StoreFull(name, free, floor)

    def __str__(self) -> str:
        return f"{self.fraction * 100:g}%" if self.fraction else f"{self.min_bytes} bytes"


def _free_space_flag(text: str) -> str:
    import argparse

    try:
        parse_free_space(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text.strip()


def add_free_space_option(serve) -> None:
    """``serve builder --min-free-space SIZE|N%`` (its value reaches the store as ``VENVSMITH_MIN_FREE_SPACE``)."""
    serve.add_argument("--min-free-space", type=_free_space_flag, default=DEFAULT_MIN_FREE_SPACE, metavar="SIZE",
                       help="builder: free disk space the store keeps (1GiB, 500MB, 5%%; 0 = none): a write "
                            "evicts first, then is refused RESOURCE_EXHAUSTED STORE_FULL "
                            f"(default {DEFAULT_MIN_FREE_SPACE})")


def parse_free_space(text: str) -> FreeSpaceFloor:
    """``"1GiB"``, ``"500MB"``, ``"1073741824"`` or ``"5%"``; ``"0"`` is no floor. ValueError names what is wrong."""
    match = _SPEC.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a size (1GiB, 500MB, 1073741824) or a percentage (5%)")
    number, unit = float(match.group(1)), match.group(2).lower()
    if unit == "%":
        if not 0 <= number < 100:
            raise ValueError(f"{text!r}: a percentage must be within [0, 100)")
        return FreeSpaceFloor(fraction=number / 100)
    if unit not in _UNITS:
        raise ValueError(f"{text!r}: unknown unit {unit!r} (B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)")
    return FreeSpaceFloor(min_bytes=int(number * _UNITS[unit]))
