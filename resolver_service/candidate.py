"""What the resolver searches over: requirements (what is asked) and candidates (what may be picked).

Identifiers follow pip's cut: ``name`` for a project, ``name[a,b]`` for a project with extras (whose
candidate depends on the bare project at the same version), and ``<python>`` for the target interpreter,
so a Requires-Python mismatch is an ordinary conflict the resolver can backtrack on and explain.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from venvsmith.core.distfile import DistFile

PYTHON = "<python>"


def identifier(name: str, extras: frozenset[str] = frozenset()) -> str:
    """``name`` or ``name[a,b]`` with sorted canonical extras."""
    return f"{name}[{','.join(sorted(extras))}]" if extras else name


@dataclass(frozen=True)
class Candidate:
    """A (project, version, extras) the resolver may pick, backed by the best file of that version."""

    name: NormalizedName
    version: Version
    file: DistFile
    extras: frozenset[NormalizedName] = frozenset()

    @property
    def id(self) -> str:
        return identifier(self.name, self.extras)

    def __str__(self) -> str:
        return f"{self.id}=={self.version}"


@dataclass(frozen=True)
class PythonCandidate:
    """The target interpreter: the only candidate of ``<python>``."""

    version: Version
    id: str = PYTHON
    name: str = PYTHON

    def __str__(self) -> str:
        return f"Python {self.version}"


@dataclass(frozen=True)
class SpecRequirement:
    """A PEP 508 requirement on a project (markers already evaluated true for the target)."""

    name: NormalizedName
    extras: frozenset[NormalizedName]
    specifier: SpecifierSet
    #: The requirement as written (for explanations), e.g. ``"urllib3<3,>=1.21.1"``.
    text: str
    #: A direct URL file (``name @ url``), the only candidate it accepts.
    direct: DistFile | None = None
    #: ``id(candidate) -> (candidate, satisfied?)``, filled by the provider: resolvelib asks the same
    #: (requirement, pinned candidate) question on every round. Not part of equality or hashing.
    satisfied: dict = field(default_factory=dict, compare=False, hash=False, repr=False)

    @classmethod
    def from_requirement(cls, req: Requirement, direct: DistFile | None = None) -> SpecRequirement:
        text = str(req)
        if req.marker is not None:
            text = text.split(";", 1)[0].strip()
        return cls(
            name=canonicalize_name(req.name),
            extras=frozenset(canonicalize_name(e) for e in req.extras),
            specifier=req.specifier,
            text=text,
            direct=direct,
        )

    @property
    def id(self) -> str:
        return identifier(self.name, self.extras)

    @cached_property
    def exact(self) -> bool:
        """Pins one version (``==1.2``, ``===x``, not ``==1.*``) or one file: the search takes these first."""
        return self.direct is not None or any(
            s.operator in ("==", "===") and "*" not in s.version for s in self.specifier
        )

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class BaseRequirement:
    """What an extras candidate needs: the bare project at exactly its version."""

    name: NormalizedName
    version: Version
    #: ``id(candidate) -> (candidate, satisfied?)``, filled by the provider: resolvelib asks the same
    #: (requirement, pinned candidate) question on every round. Not part of equality or hashing.
    satisfied: dict = field(default_factory=dict, compare=False, hash=False, repr=False)

    @property
    def id(self) -> str:
        return self.name

    @property
    def specifier(self) -> SpecifierSet:
        return SpecifierSet(f"=={self.version}")

    #: Always one version.
    exact = True

    def __str__(self) -> str:
        return f"{self.name}=={self.version}"


@dataclass(frozen=True)
class PythonRequirement:
    """A Requires-Python clause of a candidate's metadata."""

    specifier: SpecifierSet
    id: str = PYTHON
    name: str = PYTHON
    #: ``id(candidate) -> (candidate, satisfied?)``, filled by the provider: resolvelib asks the same
    #: (requirement, pinned candidate) question on every round. Not part of equality or hashing.
    satisfied: dict = field(default_factory=dict, compare=False, hash=False, repr=False)

    def __str__(self) -> str:
        return f"Python{self.specifier}"


@dataclass(frozen=True)
class UnusableRequirement:
    """Stands for a reason a candidate cannot be used (broken metadata); nothing satisfies it."""

    name: str
    reason: str

    @property
    def id(self) -> str:
        return f"<unusable:{self.name}>"

    def __str__(self) -> str:
        return self.reason


#: What a candidate can satisfy (each has a ``specifier``).
UsableRequirement = SpecRequirement | BaseRequirement | PythonRequirement
AnyRequirement = UsableRequirement | UnusableRequirement
AnyCandidate = Candidate | PythonCandidate
