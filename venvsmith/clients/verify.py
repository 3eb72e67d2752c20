"""Verify a lock against the client's *own* index configuration, without trusting whoever produced it.

Checks, each failure one line of :attr:`Verdict.reasons`:

1. **hashes**: every sha256 the lock names is a hash the trusted index publishes for that file, where the
   index is chosen by the client's own configuration (first-index rule per name: a name found on a private
   extra index is looked up there only, so a lock that took it from a public index fails);
2. **closure**: the pinned set satisfies every requirement and is closed under each pin's own dependency
   metadata (Requires-Dist evaluated for the target with the extras asked along the chains): no pin missing,
   no pin that nothing requires, every edge satisfied by the pinned version;
3. **attestations** (only for the projects named by ``--require-attestations``, see :func:`check_attestations`).

No search: each pinned name is listed once and each pinned file's metadata read once (PEP 658 file, range
read or download, through the index cache), so it costs a small fraction of a resolution.

This module is on :mod:`venvsmith.core` only (never the resolver's or builder's code): a compromised server,
or a bug in its resolver, must not be able to make its own answer look valid.
"""

from __future__ import annotations

import hashlib
import shlex
import tomllib
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version

from venvsmith.core.attestations import required, verify_provenance
from venvsmith.core.distfile import DistFile
from venvsmith.core.errors import AttestationUnverified, ServiceError
from venvsmith.core.index.auth import strip_userinfo
from venvsmith.core.index.finder import IndexSource
from venvsmith.core.index.local import file_url_to_path
from venvsmith.core.metadata import CoreMetadata
from venvsmith.core.reqfile import RequirementsFileError, logical_lines
from venvsmith.core.requirement_text import explain
from venvsmith.core.target import TargetEnvironment

#: A lock larger than this is refused as bad input (a lock of thousands of pins is a few MB).
MAX_LOCK_BYTES = 32 << 20
#: Pins whose index pages are read at the same time.
LISTING_WORKERS = 32


@dataclass(frozen=True)
class LockedFile:
    """One file a pin may install: its name and the sha256 the lock trusts it by."""

    filename: str
    sha256: str


@dataclass
class LockedPin:
    """One locked package: a version, the files (or hashes) it may be installed from, the extras it is for."""

    name: NormalizedName
    version: Version
    #: Files named by the lock (pylock); empty for a requirements line, which has only :attr:`hashes`.
    files: list[LockedFile] = field(default_factory=list)
    #: The hashes of a requirements line (any one file with one of them may be installed).
    hashes: list[str] = field(default_factory=list)
    extras: frozenset[NormalizedName] = frozenset()
    #: The index the lock says the package came from (pylock ``index``), ``""`` when not said.
    index: str = ""

    @property
    def label(self) -> str:
        return f"{self.name}=={self.version}"


@dataclass
class Lock:
    """A lock file read: its pins and what it says about the environments it is for."""

    path: str
    pins: list[LockedPin]
    environments: list[Marker] = field(default_factory=list)
    requires_python: SpecifierSet | None = None
    #: The lock's own requirement lines (a requirements file: ``name[extras]==version``).
    lines: list[Requirement] = field(default_factory=list)
    #: pylock ``marker`` of a package: installed only where it holds.
    markers: dict[NormalizedName, Marker] = field(default_factory=dict)


@dataclass
class Verdict:
    """The outcome: valid when there is no reason."""

    reasons: list[str] = field(default_factory=list)
    #: What was not checked and why (not failures).
    notes: list[str] = field(default_factory=list)
    #: The pins for the target (a pylock's packages whose marker holds), by name.
    pins: dict[NormalizedName, LockedPin] = field(default_factory=dict)
    #: The index's file chosen for each pin (the one whose metadata was read), by name.
    files: dict[NormalizedName, DistFile] = field(default_factory=dict)

    @property
    def valid(self) -> bool:
        return not self.reasons


# ------------------------------------------------------------------------------------------ reading locks


def read_lock(path: str | Path) -> Lock:
    """A pylock.toml (by its ``.toml`` suffix) or a requirements file with hashes; bad input raises
    :class:`RequirementsFileError`."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_LOCK_BYTES + 1)
    except OSError as exc:
        raise RequirementsFileError(str(path), 0, f"cannot read: {exc.strerror or exc}") from None
    if len(data) > MAX_LOCK_BYTES:
        raise RequirementsFileError(str(path), 0, f"larger than {MAX_LOCK_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise RequirementsFileError(str(path), 0, "not UTF-8 text") from None
    if path.suffix == ".toml":
        return _read_pylock(str(path), text)
    return _read_hashed_requirements(str(path), text)


def _read_pylock(where: str, text: str) -> Lock:
    from packaging.pylock import Pylock, PylockValidationError

    def bad(message: str) -> RequirementsFileError:
        return RequirementsFileError(where, 0, message)

    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise bad(f"invalid TOML: {exc}") from None
    try:
        lock = Pylock.from_dict(doc)  # PEP 751 validation by packaging
    except PylockValidationError as exc:
        raise bad(f"not a valid pylock: {exc}") from None
    pins = []
    markers: dict[NormalizedName, Marker] = {}
    for package in lock.packages:
        if package.version is None:
            raise bad(f"package {package.name} has no version (a lock of source trees cannot be verified)")
        files = [_locked_file(w) for w in package.wheels or ()]
        if package.sdist is not None:
            files.append(_locked_file(package.sdist))
        if not files:
            raise bad(f"package {package.name} has neither wheels nor an sdist")
        pin = LockedPin(canonicalize_name(package.name), package.version, files, index=package.index or "")
        pins.append(pin)
        if package.marker is not None:
            markers[pin.name] = package.marker
    return Lock(where, pins, environments=list(lock.environments or ()), requires_python=lock.requires_python,
                markers=markers)


def _locked_file(entry) -> LockedFile:
    """A pylock wheel or sdist entry; its name defaults to the last part of its url or path (PEP 751)."""
    name = entry.name or (entry.url or entry.path or "").replace("\\", "/").rsplit("/", 1)[-1]
    return LockedFile(name, dict(entry.hashes or {}).get("sha256", ""))


def _read_hashed_requirements(where: str, text: str) -> Lock:
    pins = []
    lines = []
    for number, line in logical_lines(text):
        if line.startswith("-"):
            continue  # index options and includes: verify uses the client's own configuration, not the lock's
        words = line.split(" ")
        cut = next((i for i, w in enumerate(words) if w.startswith("-")), len(words))
        spec, options = " ".join(words[:cut]).strip(), " ".join(words[cut:])
        try:
            requirement = Requirement(spec)
        except InvalidRequirement as exc:
            raise RequirementsFileError(where, number, explain(spec, exc)) from None
        pinned = [s for s in requirement.specifier if s.operator in ("==", "===") and "*" not in s.version]
        if requirement.url or len(pinned) != 1 or len(requirement.specifier) != 1:
            raise RequirementsFileError(where, number, f"{spec!r} is not pinned with == to one version")
        try:
            version = Version(pinned[0].version)
            words = shlex.split(options)
        except (InvalidVersion, ValueError) as exc:
            raise RequirementsFileError(where, number, f"bad pin {line!r}: {exc}") from None
        hashes = []
        for i, word in enumerate(words):
            value = word[len("--hash="):] if word.startswith("--hash=") else (
                words[i + 1] if word == "--hash" and i + 1 < len(words) else None)
            if value is None:
                continue
            algorithm, _, digest = value.partition(":")
            if algorithm == "sha256":
                hashes.append(digest.lower())
        if not hashes:
            raise RequirementsFileError(where, number, f"{spec!r} has no --hash=sha256:...")
        pins.append(LockedPin(canonicalize_name(requirement.name), version, hashes=hashes,
                              extras=frozenset(canonicalize_name(e) for e in requirement.extras)))
        lines.append(requirement)
    return Lock(where, pins, lines=lines)


def parse_requirements(texts: Iterable[str]) -> list[Requirement]:
    """PEP 508 strings (from the command line and ``-r`` files); bad ones raise :class:`RequirementsFileError`."""
    out = []
    for text in texts:
        try:
            out.append(Requirement(text))
        except InvalidRequirement as exc:
            raise RequirementsFileError("requirement", 0, explain(text, exc)) from None
    return out


def pins_from_proto(pins: Iterable) -> list[LockedPin]:
    """A server's wire pins (``venvsmith.v1.Pin``) as locked pins: the chosen file, and the sdist it is built from
    when there is one (its hash is checked too)."""
    out = []
    for pin in pins:
        files = [LockedFile(pin.filename, pin.sha256)]
        if pin.HasField("sdist") and pin.sdist.filename != pin.filename:
            files.append(LockedFile(pin.sdist.filename, pin.sdist.sha256))
        try:
            version = Version(pin.version)
        except InvalidVersion:
            raise RequirementsFileError("answer", 0, f"pin {pin.name} has an invalid version") from None
        out.append(LockedPin(canonicalize_name(pin.name), version, files, index=pin.index,
                             extras=frozenset(canonicalize_name(e) for e in pin.extras)))
    return out


# ---------------------------------------------------------------------------------------------- checks


def verify(lock: Lock, requirements: Sequence[Requirement], source: IndexSource,
           target: TargetEnvironment) -> Verdict:
    """Check (1) hashes against ``source`` (the client's own indexes) and (2) closure for ``target``."""
    verdict = Verdict()
    _check_environment(lock, target, verdict)
    markers = lock.markers
    pins = verdict.pins
    for pin in lock.pins:
        marker = markers.get(pin.name)
        if marker is not None and not _applies(marker, target, (), verdict, pin.label):
            continue
        if pin.name in pins:
            verdict.reasons.append(f"{pin.name}: pinned twice ({pins[pin.name].version} and {pin.version})")
            continue
        pins[pin.name] = pin

    def listed(pin: LockedPin) -> tuple[DistFile | None, list[str]]:
        """Check (1) of one pin, and its metadata read started as soon as its file is known: the pins' pages and
        metadata are all read in one parallel wave (a resolution reads them level by level of the graph)."""
        own = Verdict()
        chosen = _check_hashes(pin, source, target, own)
        if chosen is not None:
            source.prefetch_metadata([chosen])
        return chosen, own.reasons

    with ThreadPoolExecutor(max_workers=LISTING_WORKERS, thread_name_prefix="verify") as pool:
        for pin, (chosen, reasons) in zip(pins.values(), pool.map(listed, pins.values()), strict=True):
            verdict.reasons.extend(reasons)  # in lock order, whatever order the pages arrived in
            if chosen is not None:
                verdict.files[pin.name] = chosen
    roots = list(requirements) or _default_roots(lock)
    _check_closure(pins, roots, source, target, verdict)
    return verdict


def _check_environment(lock: Lock, target: TargetEnvironment, verdict: Verdict) -> None:
    python = target.markers.get("python_full_version", "")
    if lock.requires_python is not None and not lock.requires_python.contains(python, prereleases=True):
        verdict.reasons.append(f"the lock requires Python {lock.requires_python}; the target is {python}")
    if lock.environments and not any(_applies(m, target, (), verdict, "environments") for m in lock.environments):
        verdict.reasons.append("the target environment is none of the lock's environments: "
                               + "; ".join(str(m) for m in lock.environments))


def _applies(marker: Marker, target: TargetEnvironment, extras: Iterable[str], verdict: Verdict, what: str) -> bool:
    try:
        return target.evaluate(marker, extras)
    except ServiceError as exc:
        verdict.reasons.append(f"{what}: {exc.message}")
        return False


def _published(pin: LockedPin, source: IndexSource) -> list[DistFile]:
    return [f for f in source.files(pin.name) if f.version == pin.version]


def _sha256(file: DistFile) -> str | None:
    """The hash the index publishes; for a local find-links file listed without one, the file's own."""
    if file.sha256:
        return file.sha256.lower()
    if not file.is_local:
        return None
    digest = hashlib.sha256()
    try:
        with file_url_to_path(file.url).open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    except (OSError, ValueError):
        return None
    return digest.hexdigest()


def _installable(file: DistFile, target: TargetEnvironment) -> bool:
    return not file.is_wheel or target.best_tag_rank(file.tags) is not None


def _check_hashes(pin: LockedPin, source: IndexSource, target: TargetEnvironment,
                  verdict: Verdict) -> DistFile | None:
    """Check (1) for one pin; returns the index's file to read its metadata from (the best for the target)."""
    try:
        published = _published(pin, source)
    except ServiceError as exc:
        verdict.reasons.append(f"{pin.label}: cannot list {pin.name}: {exc.message}")
        return None
    if not published:
        where = ", ".join(sorted({f.index for f in source.files(pin.name)})) or "no configured index"
        verdict.reasons.append(f"{pin.label}: not published by the index that serves {pin.name} ({where})")
        return None
    by_hash = {h: f for f in published if (h := _sha256(f))}
    matched: list[DistFile] = []
    if pin.files:
        by_name = {f.filename: f for f in published}
        for locked in pin.files:
            file = by_name.get(locked.filename)
            if file is None:
                verdict.reasons.append(f"{pin.label}: {locked.filename} is not published by the index that serves "
                                       f"{pin.name} ({published[0].index})")
            elif _sha256(file) != locked.sha256.lower():
                verdict.reasons.append(f"{pin.label}: {locked.filename} sha256 {locked.sha256 or '(none)'} is not "
                                       f"the hash {file.index} publishes")
            else:
                matched.append(file)
        # Compared without user-info: a server is sent the index without the caller's credentials.
        lock_index = strip_userinfo(pin.index).rstrip("/")
        if lock_index and matched and lock_index != strip_userinfo(matched[0].index).rstrip("/"):
            verdict.reasons.append(f"{pin.label}: the lock names index {pin.index}; the index that serves "
                                   f"{pin.name} is {matched[0].index}")
    else:
        for digest in pin.hashes:
            if digest in by_hash:
                matched.append(by_hash[digest])
            else:
                verdict.reasons.append(f"{pin.label}: sha256 {digest} is not a hash the index that serves "
                                       f"{pin.name} ({published[0].index}) publishes for {pin.label}")
    if len(matched) < len(pin.files or pin.hashes):
        return None
    usable = [f for f in matched if _installable(f, target)]
    if not usable:
        verdict.reasons.append(f"{pin.label}: no locked file installs on the target environment")
        return None
    wheels = [f for f in usable if f.is_wheel]
    if wheels:
        return min(wheels, key=lambda f: target.best_tag_rank(f.tags) or 0)
    return usable[0]


def _default_roots(lock: Lock) -> list[Requirement]:
    """Without requirements: a requirements-file lock's own lines; for a pylock ``[]``, and
    :func:`_check_closure` takes the pins that no pin requires as the roots."""
    return list(lock.lines)


def _metadata(pin: LockedPin, file: DistFile | None, source: IndexSource, verdict: Verdict) -> CoreMetadata | None:
    if file is None:
        return None
    try:
        meta = source.metadata(file)
    except ServiceError as exc:
        verdict.reasons.append(f"{pin.label}: cannot read the metadata of {file.filename}: {exc.message}")
        return None
    if meta.name != pin.name or meta.version != pin.version:
        verdict.reasons.append(f"{pin.label}: the metadata of {file.filename} says {meta.name}=={meta.version}")
        return None
    return meta


def _check_closure(pins: dict[NormalizedName, LockedPin], roots: list[Requirement], source: IndexSource,
                   target: TargetEnvironment, verdict: Verdict) -> None:
    """Check (2): walk from the roots through each pin's Requires-Dist; every edge must hit a pin that satisfies
    it; every pin must be reached."""
    metas: dict[NormalizedName, CoreMetadata | None] = {}

    def meta_of(name: NormalizedName) -> CoreMetadata | None:
        if name not in metas:
            metas[name] = _metadata(pins[name], verdict.files.get(name), source, verdict)
        return metas[name]

    if not roots:  # a pylock and no requirements: the pins no other pin requires are the requirements
        required = {canonicalize_name(r.name) for name in pins if (m := meta_of(name)) is not None
                    for r in m.requires_dist}
        roots = [Requirement(f"{p.name}=={p.version}") for p in pins.values() if p.name not in required]
    extras: dict[NormalizedName, set[str]] = {}
    queue: list[NormalizedName] = []

    def need(requirement: Requirement, by: str) -> None:
        name = canonicalize_name(requirement.name)
        pin = pins.get(name)
        if pin is None:
            verdict.reasons.append(f"missing: {by} requires {requirement}, which no pin provides")
            return
        if not requirement.specifier.contains(pin.version, prereleases=True):
            verdict.reasons.append(f"{pin.label} does not satisfy {requirement} (required by {by})")
        wanted = {canonicalize_name(e) for e in requirement.extras}
        new = name not in extras or not wanted <= extras[name]
        extras.setdefault(name, set()).update(wanted)
        if new:
            queue.append(name)

    for requirement in roots:
        if requirement.marker is None or _applies(requirement.marker, target, (), verdict, str(requirement)):
            need(requirement, "you")
    done: dict[NormalizedName, frozenset[str]] = {}
    while queue:
        name = queue.pop()
        asked = frozenset(extras[name])
        if done.get(name) == asked:
            continue
        done[name] = asked
        pin = pins[name]
        meta = meta_of(name)
        if meta is None:
            continue
        python = target.markers.get("python_full_version", "")
        if meta.requires_python is not None and not meta.requires_python.contains(python, prereleases=True):
            verdict.reasons.append(f"{pin.label} requires Python {meta.requires_python}; the target is {python}")
        for requirement in meta.requires_dist:
            if requirement.marker is None or _applies(requirement.marker, target, sorted(asked), verdict, pin.label):
                need(requirement, pin.label)
    unknown = sorted(pins[name].label for name in done if metas.get(name) is None)
    if unknown:  # their dependencies are not known: a pin only they require would be reported as extra
        verdict.notes.append(f"not checked for pins that nothing requires: the dependencies of {', '.join(unknown)} "
                             "are unknown")
        return
    for name, pin in pins.items():
        if name not in done:
            verdict.reasons.append(f"extra: {pin.label} is pinned but nothing requires it")




def check_attestations(verdict: Verdict, names: frozenset[str], source: IndexSource) -> None:
    """Check (3), ``--require-attestations``: the index's file chosen for each named pin (:attr:`Verdict.files`)
    carries PEP 740 attestations that verify offline here (:mod:`venvsmith.core.attestations`), whatever the
    server that made the lock said. A pin whose file check (1) already refused is not checked again."""
    chosen = [(pin, verdict.files[name]) for name, pin in verdict.pins.items()
              if required(names, name) and name in verdict.files]
    try:
        documents = source.provenance_documents([file for _pin, file in chosen])
    except ServiceError as exc:
        verdict.reasons.append(f"cannot read provenance documents: {exc.message}")
        return
    for (pin, file), document in zip(chosen, documents, strict=True):
        try:
            verify_provenance(pin.name, file.filename, _sha256(file) or "", document)
        except AttestationUnverified as exc:
            verdict.reasons.append(f"{pin.label}: {file.filename} has no attestation that verifies: {exc.reason}")
