"""What a pin carries for lock files besides its chosen file: the release's sdist and PEP 740 publisher
identities, across the wire and without changing the lock key."""

from __future__ import annotations

import tomllib
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from packaging.pylock import Pylock

from resolver_service.render import pylock_toml
from venvsmith.core.convert import pin_from_proto, pin_to_proto
from venvsmith.core.distfile import DistFile
from venvsmith.core.errors import InvalidInput
from venvsmith.core.pin import Pin, lock_key
from venvsmith.core.target import TargetEnvironment

INDEX = "http://127.0.0.1:1/simple/"
TARGET = TargetEnvironment.from_shorthand("3.12", "x86_64-manylinux_2_28")


def _file(filename: str, digit: str, **info) -> DistFile:
    file = DistFile.from_listing(filename, f"http://127.0.0.1:1/files/{filename}", INDEX,
                                 hashes={"sha256": digit * 64}, **info)
    assert file is not None
    return file


WHEEL = _file("pkg-1.0-py3-none-any.whl", "a", size=100, upload_time=datetime(2024, 1, 1, tzinfo=UTC))
SDIST = _file("pkg-1.0.tar.gz", "b", size=50, upload_time=datetime(2024, 1, 2, tzinfo=UTC), requires_python=">=3.8")
IDENTITY = {"kind": "GitHub", "repository": "org/pkg", "workflow": "release.yml"}


def _pin() -> Pin:
    return Pin(name=WHEEL.name, version=WHEEL.version, file=WHEEL, sdist=SDIST, attestation_identities=(IDENTITY,))


def test_the_sdist_and_identities_cross_the_wire_and_render_the_same_lock():
    pin = _pin()
    back = pin_from_proto(pin_to_proto(pin))
    assert back.sdist is not None
    assert (back.sdist.filename, back.sdist.url, back.sdist.sha256) == (SDIST.filename, SDIST.url, SDIST.sha256)
    assert (back.sdist.size, back.sdist.upload_time, back.sdist.requires_python) == (50, SDIST.upload_time, ">=3.8")
    assert back.attestation_identities == (IDENTITY,)
    assert pylock_toml([back], TARGET) == pylock_toml([pin], TARGET)
    package = Pylock.from_dict(tomllib.loads(pylock_toml([pin], TARGET))).packages[0]
    assert package.sdist is not None and package.sdist.size == 50
    assert package.attestation_identities == [IDENTITY]


def test_the_sdist_and_identities_leave_the_lock_key_alone():
    bare = Pin(name=WHEEL.name, version=WHEEL.version, file=WHEEL)
    assert lock_key([_pin()], TARGET) == lock_key([bare], TARGET)


@pytest.mark.parametrize(
    "change",
    [
        {"filename": "other-1.0.tar.gz"},  # another project
        {"filename": "pkg-2.0.tar.gz"},  # another version
        {"filename": "pkg-1.0-py3-none-any.whl"},  # not an sdist
        {"sha256": "B" * 64},  # not lowercase hex
    ],
)
def test_a_malformed_wire_sdist_is_invalid_input(change):
    msg = pin_to_proto(_pin())
    for key, value in change.items():
        setattr(msg.sdist, key, value)
    with pytest.raises(InvalidInput):
        pin_from_proto(msg)


def test_a_yanked_or_unusable_sdist_is_not_the_release_sdist():
    from resolver_service.selection import SelectionPolicy, release_sdist

    zipped = _file("pkg-1.0.zip", "c")
    assert release_sdist(WHEEL, [zipped, SDIST], TARGET, SelectionPolicy()) == SDIST  # .tar.gz preferred
    assert release_sdist(WHEEL, [replace(SDIST, yanked="")], TARGET, SelectionPolicy()) is None
    assert release_sdist(WHEEL, [replace(SDIST, requires_python=">=3.13")], TARGET, SelectionPolicy()) is None
    assert release_sdist(SDIST, [SDIST], TARGET, SelectionPolicy()) is None


def test_the_resolver_pins_the_release_sdist_next_to_the_wheel_as_the_policy_allows():
    from packaging.requirements import Requirement

    from resolver_service.resolve import ResolutionRequest, resolve
    from resolver_service.selection import BinaryPolicy, SelectionPolicy
    from tests.resolver.memory import MemorySource

    src = MemorySource()
    src.add("pkg", "1.0", ["dep"])
    sdist = src.add("pkg", "1.0", ["dep"], sdist=True)
    src.add("dep", "1.0")
    src.add("dep", "1.0", sdist=True, yanked="broken")

    def run(**policy) -> dict[str, DistFile | None]:
        request = ResolutionRequest((Requirement("pkg"),), TARGET, policy=SelectionPolicy(**policy))
        return {p.name: p.sdist for p in resolve(request, src).pins}

    assert run() == {"pkg": sdist, "dep": None}  # dep's only sdist is yanked
    assert run(binary=BinaryPolicy(only_binary=frozenset({"pkg"}))) == {"pkg": None, "dep": None}


def test_a_direct_url_pin_asks_no_listing_for_an_sdist():
    from packaging.requirements import Requirement

    from resolver_service.resolve import ResolutionRequest, resolve
    from tests.resolver.memory import MemorySource

    class DirectSource(MemorySource):
        def resolve_file_url(self, url: str) -> DistFile:
            return replace(super().resolve_file_url(url), origin="direct")

    src = DirectSource()
    wheel = src.add("pkg", "1.0", index="memory://elsewhere/")
    src.add("pkg", "1.0", sdist=True, index="memory://elsewhere/")
    (pin,) = resolve(ResolutionRequest((Requirement(f"pkg @ {wheel.url}"),), TARGET), src).pins
    assert pin.file.origin == "direct" and pin.sdist is None
    assert ("files", "pkg") not in src.calls


def test_an_unreadable_local_sdist_is_left_out_and_a_readable_one_is_hashed():
    from packaging.requirements import Requirement

    from resolver_service.resolve import ResolutionRequest, resolve
    from tests.resolver.memory import MemorySource
    from venvsmith.core.errors import IndexUnavailable

    class LocalSource(MemorySource):
        def resolve_file_url(self, url: str) -> DistFile:
            if "gone" in url:
                raise IndexUnavailable("file:///links/", f"cannot read {url}")
            return replace(self.unhashed[url], hashes={"sha256": "d" * 64}, size=7)

    src = LocalSource()
    src.add("pkg", "1.0")
    src.add("other", "1.0")
    src.unhashed = {}
    for name, where in (("pkg", "file:///links/"), ("other", "file:///gone/")):
        listed = src.add(name, "1.0", sdist=True)
        local = replace(listed, url=f"{where}{listed.filename}", hashes={})
        src._files[listed.name] = [f if f != listed else local for f in src._files[listed.name]]
        src.unhashed[local.url] = local
    found = {p.name: p.sdist for p in resolve(ResolutionRequest((Requirement("pkg"), Requirement("other")),
                                                                TARGET), src).pins}
    assert found["other"] is None
    assert found["pkg"] is not None and (found["pkg"].sha256, found["pkg"].size) == ("d" * 64, 7)
