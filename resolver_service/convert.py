"""Translation of the wire resolution options into the resolver's selection policy."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from packaging.utils import canonicalize_name

from venvsmith.core.errors import InvalidInput
from venvsmith.v1 import common_pb2 as pb

from .selection import ALL, BinaryPolicy, Prereleases, SelectionPolicy

_PRERELEASES = {
    pb.PRERELEASE_POLICY_UNSPECIFIED: Prereleases.IF_NECESSARY_OR_EXPLICIT,
    pb.IF_NECESSARY_OR_EXPLICIT: Prereleases.IF_NECESSARY_OR_EXPLICIT,
    pb.ALLOW: Prereleases.ALLOW,
    pb.DISALLOW: Prereleases.DISALLOW,
}


def parse_exclude_newer(text: str) -> datetime | None:
    """RFC 3339 timestamp, or a date meaning the end of that day in UTC; empty -> ``None``."""
    text = text.strip()
    if not text:
        return None
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime.combine(day, time.min, tzinfo=UTC) + timedelta(days=1) - timedelta(microseconds=1)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise InvalidInput(text, "invalid exclude-newer (want an RFC 3339 timestamp or a date)") from None
    if moment.tzinfo is None:
        raise InvalidInput(text, "exclude-newer needs a time zone (e.g. a trailing Z)")
    return moment.astimezone(UTC)


def _names(values, what: str) -> frozenset[str]:
    out: set[str] = set()
    for raw in values:
        for value in raw.split(","):
            value = value.strip()
            if value == ":none:":
                out.clear()
            elif value == ALL:
                out.add(ALL)
            elif value:
                if not all(c.isalnum() or c in "-_." for c in value):
                    raise InvalidInput(value, f"invalid project name in {what}")
                out.add(canonicalize_name(value))
    return frozenset(out)


def policy_from_proto(options: pb.ResolutionOptions) -> SelectionPolicy:
    return SelectionPolicy(
        prereleases=_PRERELEASES.get(options.prereleases, Prereleases.IF_NECESSARY_OR_EXPLICIT),
        binary=BinaryPolicy(
            no_binary=_names(options.no_binary, "no-binary"),
            only_binary=_names(options.only_binary, "only-binary"),
        ),
        exclude_newer=parse_exclude_newer(options.exclude_newer),
        allow_yanked_pins=not options.disallow_yanked,
        ignore_requires_python_upper_bound=options.ignore_requires_python_upper_bound,
    )
