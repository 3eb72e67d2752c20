"""What the engines count (cache lookups, cross-replica flights), reported without importing the metrics machinery.

A process that exports metrics, a server, imports :mod:`venvsmith.core.observe` (Prometheus and gRPC) when it
builds its server, before its first call; observe then takes these counts into its Prometheus counters. The
embedded CLI exports no metrics: it does not import either (about 0.1 s of a resolution's wall clock), and a
count it makes goes nowhere, as nobody could read it.
"""

from __future__ import annotations

from typing import Protocol


class CountSink(Protocol):
    def cache_lookup(self, layer: str, hit: bool, count: int = 1) -> None: ...

    def fleet_flight(self, outcome: str) -> None: ...


#: Where the counts go: :mod:`venvsmith.core.observe` once it is imported (its counters exist), else nowhere.
_sink: list[CountSink] = []


def export_to(sink: CountSink) -> None:
    """Send every later count to ``sink`` (observe calls this once, at the end of its import)."""
    _sink[:] = [sink]


def cache_lookup(layer: str, hit: bool, count: int = 1) -> None:
    """``count`` lookups in cache ``layer`` that hit (or missed)."""
    for sink in _sink:
        sink.cache_lookup(layer, hit, count)


def fleet_flight(outcome: str) -> None:
    """One cross-replica single-flight ended ``outcome`` (led, joined, local)."""
    for sink in _sink:
        sink.fleet_flight(outcome)
