import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class IndexStrategy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INDEX_STRATEGY_UNSPECIFIED: _ClassVar[IndexStrategy]
    FIRST_INDEX: _ClassVar[IndexStrategy]
    UNSAFE_BEST_MATCH: _ClassVar[IndexStrategy]

class PrereleasePolicy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PRERELEASE_POLICY_UNSPECIFIED: _ClassVar[PrereleasePolicy]
    IF_NECESSARY_OR_EXPLICIT: _ClassVar[PrereleasePolicy]
    ALLOW: _ClassVar[PrereleasePolicy]
    DISALLOW: _ClassVar[PrereleasePolicy]

class ArtifactKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ARTIFACT_KIND_UNSPECIFIED: _ClassVar[ArtifactKind]
    WHEEL: _ClassVar[ArtifactKind]
    WHEELHOUSE: _ClassVar[ArtifactKind]
    VENV_ARCHIVE: _ClassVar[ArtifactKind]
    LOCK_FILE: _ClassVar[ArtifactKind]
    BUILD_LOG: _ClassVar[ArtifactKind]

class ErrorReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ERROR_REASON_UNSPECIFIED: _ClassVar[ErrorReason]
    INVALID_INPUT: _ClassVar[ErrorReason]
    NO_SOLUTION: _ClassVar[ErrorReason]
    TOO_MANY_BACKTRACKS: _ClassVar[ErrorReason]
    INDEX_UNAVAILABLE: _ClassVar[ErrorReason]
    DYNAMIC_METADATA: _ClassVar[ErrorReason]
    INVALID_DISTRIBUTION: _ClassVar[ErrorReason]
    DEADLINE_EXCEEDED: _ClassVar[ErrorReason]
    BUILD_FAILED: _ClassVar[ErrorReason]
    BUILD_TIMEOUT: _ClassVar[ErrorReason]
    BUILD_OUT_OF_MEMORY: _ClassVar[ErrorReason]
    BUILD_OUTPUT_TOO_LARGE: _ClassVar[ErrorReason]
    BUILD_REQUIREMENT_UNAVAILABLE: _ClassVar[ErrorReason]
    INVALID_SDIST: _ClassVar[ErrorReason]
    DIGEST_MISMATCH: _ClassVar[ErrorReason]
    INVALID_DIGEST: _ClassVar[ErrorReason]
    UNSAFE_WHEEL: _ClassVar[ErrorReason]
    UNSAFE_ARCHIVE: _ClassVar[ErrorReason]
    VENV_FAILED: _ClassVar[ErrorReason]
    NOT_RELOCATABLE: _ClassVar[ErrorReason]
    BLOB_NOT_FOUND: _ClassVar[ErrorReason]
    BLOB_TOO_LARGE: _ClassVar[ErrorReason]
    INVALID_RANGE: _ClassVar[ErrorReason]
    INVALID_BUILD_REQUEST: _ClassVar[ErrorReason]
    NO_INTERPRETER: _ClassVar[ErrorReason]
    WHEEL_INCOMPATIBLE: _ClassVar[ErrorReason]
    BUILD_PRECONDITION: _ClassVar[ErrorReason]
    STORE_FULL: _ClassVar[ErrorReason]
    AUTH_TOKEN_INVALID: _ClassVar[ErrorReason]
    AUTH_ROLE_INSUFFICIENT: _ClassVar[ErrorReason]
    URL_NOT_ALLOWED: _ClassVar[ErrorReason]
    SERVER_BUSY: _ClassVar[ErrorReason]
    CALL_CANCELLED: _ClassVar[ErrorReason]
    BUILDER_UNAVAILABLE: _ClassVar[ErrorReason]
    ATTESTATION_UNVERIFIED: _ClassVar[ErrorReason]
    REGISTRY_UNAVAILABLE: _ClassVar[ErrorReason]
INDEX_STRATEGY_UNSPECIFIED: IndexStrategy
FIRST_INDEX: IndexStrategy
UNSAFE_BEST_MATCH: IndexStrategy
PRERELEASE_POLICY_UNSPECIFIED: PrereleasePolicy
IF_NECESSARY_OR_EXPLICIT: PrereleasePolicy
ALLOW: PrereleasePolicy
DISALLOW: PrereleasePolicy
ARTIFACT_KIND_UNSPECIFIED: ArtifactKind
WHEEL: ArtifactKind
WHEELHOUSE: ArtifactKind
VENV_ARCHIVE: ArtifactKind
LOCK_FILE: ArtifactKind
BUILD_LOG: ArtifactKind
ERROR_REASON_UNSPECIFIED: ErrorReason
INVALID_INPUT: ErrorReason
NO_SOLUTION: ErrorReason
TOO_MANY_BACKTRACKS: ErrorReason
INDEX_UNAVAILABLE: ErrorReason
DYNAMIC_METADATA: ErrorReason
INVALID_DISTRIBUTION: ErrorReason
DEADLINE_EXCEEDED: ErrorReason
BUILD_FAILED: ErrorReason
BUILD_TIMEOUT: ErrorReason
BUILD_OUT_OF_MEMORY: ErrorReason
BUILD_OUTPUT_TOO_LARGE: ErrorReason
BUILD_REQUIREMENT_UNAVAILABLE: ErrorReason
INVALID_SDIST: ErrorReason
DIGEST_MISMATCH: ErrorReason
INVALID_DIGEST: ErrorReason
UNSAFE_WHEEL: ErrorReason
UNSAFE_ARCHIVE: ErrorReason
VENV_FAILED: ErrorReason
NOT_RELOCATABLE: ErrorReason
BLOB_NOT_FOUND: ErrorReason
BLOB_TOO_LARGE: ErrorReason
INVALID_RANGE: ErrorReason
INVALID_BUILD_REQUEST: ErrorReason
NO_INTERPRETER: ErrorReason
WHEEL_INCOMPATIBLE: ErrorReason
BUILD_PRECONDITION: ErrorReason
STORE_FULL: ErrorReason
AUTH_TOKEN_INVALID: ErrorReason
AUTH_ROLE_INSUFFICIENT: ErrorReason
URL_NOT_ALLOWED: ErrorReason
SERVER_BUSY: ErrorReason
CALL_CANCELLED: ErrorReason
BUILDER_UNAVAILABLE: ErrorReason
ATTESTATION_UNVERIFIED: ErrorReason
REGISTRY_UNAVAILABLE: ErrorReason

class TargetEnvironment(_message.Message):
    __slots__ = ("markers", "tags", "python_version", "platform", "interpreter", "metadata_builder")
    class MarkersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    MARKERS_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    PYTHON_VERSION_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    INTERPRETER_FIELD_NUMBER: _ClassVar[int]
    METADATA_BUILDER_FIELD_NUMBER: _ClassVar[int]
    markers: _containers.ScalarMap[str, str]
    tags: _containers.RepeatedScalarFieldContainer[str]
    python_version: str
    platform: str
    interpreter: str
    metadata_builder: str
    def __init__(self, markers: _Optional[_Mapping[str, str]] = ..., tags: _Optional[_Iterable[str]] = ..., python_version: _Optional[str] = ..., platform: _Optional[str] = ..., interpreter: _Optional[str] = ..., metadata_builder: _Optional[str] = ...) -> None: ...

class TargetShorthand(_message.Message):
    __slots__ = ("python_version", "platform", "implementation")
    PYTHON_VERSION_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    IMPLEMENTATION_FIELD_NUMBER: _ClassVar[int]
    python_version: str
    platform: str
    implementation: str
    def __init__(self, python_version: _Optional[str] = ..., platform: _Optional[str] = ..., implementation: _Optional[str] = ...) -> None: ...

class TargetSpec(_message.Message):
    __slots__ = ("environment", "shorthand")
    ENVIRONMENT_FIELD_NUMBER: _ClassVar[int]
    SHORTHAND_FIELD_NUMBER: _ClassVar[int]
    environment: TargetEnvironment
    shorthand: TargetShorthand
    def __init__(self, environment: _Optional[_Union[TargetEnvironment, _Mapping]] = ..., shorthand: _Optional[_Union[TargetShorthand, _Mapping]] = ...) -> None: ...

class IndexCredential(_message.Message):
    __slots__ = ("url_prefix", "username", "password", "token")
    URL_PREFIX_FIELD_NUMBER: _ClassVar[int]
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    url_prefix: str
    username: str
    password: str
    token: str
    def __init__(self, url_prefix: _Optional[str] = ..., username: _Optional[str] = ..., password: _Optional[str] = ..., token: _Optional[str] = ...) -> None: ...

class IndexConfig(_message.Message):
    __slots__ = ("index_url", "extra_index_urls", "find_links", "no_index", "strategy", "package_index", "credentials", "isolated")
    class PackageIndexEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    INDEX_URL_FIELD_NUMBER: _ClassVar[int]
    EXTRA_INDEX_URLS_FIELD_NUMBER: _ClassVar[int]
    FIND_LINKS_FIELD_NUMBER: _ClassVar[int]
    NO_INDEX_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    PACKAGE_INDEX_FIELD_NUMBER: _ClassVar[int]
    CREDENTIALS_FIELD_NUMBER: _ClassVar[int]
    ISOLATED_FIELD_NUMBER: _ClassVar[int]
    index_url: str
    extra_index_urls: _containers.RepeatedScalarFieldContainer[str]
    find_links: _containers.RepeatedScalarFieldContainer[str]
    no_index: bool
    strategy: IndexStrategy
    package_index: _containers.ScalarMap[str, str]
    credentials: _containers.RepeatedCompositeFieldContainer[IndexCredential]
    isolated: bool
    def __init__(self, index_url: _Optional[str] = ..., extra_index_urls: _Optional[_Iterable[str]] = ..., find_links: _Optional[_Iterable[str]] = ..., no_index: _Optional[bool] = ..., strategy: _Optional[_Union[IndexStrategy, str]] = ..., package_index: _Optional[_Mapping[str, str]] = ..., credentials: _Optional[_Iterable[_Union[IndexCredential, _Mapping]]] = ..., isolated: _Optional[bool] = ...) -> None: ...

class ResolutionOptions(_message.Message):
    __slots__ = ("prereleases", "no_binary", "only_binary", "exclude_newer", "disallow_yanked", "max_backtracks", "ignore_requires_python_upper_bound", "no_build", "require_attestations")
    PRERELEASES_FIELD_NUMBER: _ClassVar[int]
    NO_BINARY_FIELD_NUMBER: _ClassVar[int]
    ONLY_BINARY_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_NEWER_FIELD_NUMBER: _ClassVar[int]
    DISALLOW_YANKED_FIELD_NUMBER: _ClassVar[int]
    MAX_BACKTRACKS_FIELD_NUMBER: _ClassVar[int]
    IGNORE_REQUIRES_PYTHON_UPPER_BOUND_FIELD_NUMBER: _ClassVar[int]
    NO_BUILD_FIELD_NUMBER: _ClassVar[int]
    REQUIRE_ATTESTATIONS_FIELD_NUMBER: _ClassVar[int]
    prereleases: PrereleasePolicy
    no_binary: _containers.RepeatedScalarFieldContainer[str]
    only_binary: _containers.RepeatedScalarFieldContainer[str]
    exclude_newer: str
    disallow_yanked: bool
    max_backtracks: int
    ignore_requires_python_upper_bound: bool
    no_build: bool
    require_attestations: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, prereleases: _Optional[_Union[PrereleasePolicy, str]] = ..., no_binary: _Optional[_Iterable[str]] = ..., only_binary: _Optional[_Iterable[str]] = ..., exclude_newer: _Optional[str] = ..., disallow_yanked: _Optional[bool] = ..., max_backtracks: _Optional[int] = ..., ignore_requires_python_upper_bound: _Optional[bool] = ..., no_build: _Optional[bool] = ..., require_attestations: _Optional[_Iterable[str]] = ...) -> None: ...

class Pin(_message.Message):
    __slots__ = ("name", "version", "extras", "url", "filename", "sha256", "size", "index", "is_wheel", "requires_python", "required_by", "upload_time", "dependencies", "sdist", "attestation_identities")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    EXTRAS_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    IS_WHEEL_FIELD_NUMBER: _ClassVar[int]
    REQUIRES_PYTHON_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_BY_FIELD_NUMBER: _ClassVar[int]
    UPLOAD_TIME_FIELD_NUMBER: _ClassVar[int]
    DEPENDENCIES_FIELD_NUMBER: _ClassVar[int]
    SDIST_FIELD_NUMBER: _ClassVar[int]
    ATTESTATION_IDENTITIES_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    extras: _containers.RepeatedScalarFieldContainer[str]
    url: str
    filename: str
    sha256: str
    size: int
    index: str
    is_wheel: bool
    requires_python: str
    required_by: _containers.RepeatedScalarFieldContainer[str]
    upload_time: _timestamp_pb2.Timestamp
    dependencies: _containers.RepeatedScalarFieldContainer[str]
    sdist: DistFileRef
    attestation_identities: _containers.RepeatedCompositeFieldContainer[AttestationIdentity]
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ..., extras: _Optional[_Iterable[str]] = ..., url: _Optional[str] = ..., filename: _Optional[str] = ..., sha256: _Optional[str] = ..., size: _Optional[int] = ..., index: _Optional[str] = ..., is_wheel: _Optional[bool] = ..., requires_python: _Optional[str] = ..., required_by: _Optional[_Iterable[str]] = ..., upload_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., dependencies: _Optional[_Iterable[str]] = ..., sdist: _Optional[_Union[DistFileRef, _Mapping]] = ..., attestation_identities: _Optional[_Iterable[_Union[AttestationIdentity, _Mapping]]] = ...) -> None: ...

class DistFileRef(_message.Message):
    __slots__ = ("url", "filename", "sha256", "size", "upload_time", "requires_python")
    URL_FIELD_NUMBER: _ClassVar[int]
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    UPLOAD_TIME_FIELD_NUMBER: _ClassVar[int]
    REQUIRES_PYTHON_FIELD_NUMBER: _ClassVar[int]
    url: str
    filename: str
    sha256: str
    size: int
    upload_time: _timestamp_pb2.Timestamp
    requires_python: str
    def __init__(self, url: _Optional[str] = ..., filename: _Optional[str] = ..., sha256: _Optional[str] = ..., size: _Optional[int] = ..., upload_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., requires_python: _Optional[str] = ...) -> None: ...

class AttestationIdentity(_message.Message):
    __slots__ = ("kind", "claims")
    class ClaimsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    KIND_FIELD_NUMBER: _ClassVar[int]
    CLAIMS_FIELD_NUMBER: _ClassVar[int]
    kind: str
    claims: _containers.ScalarMap[str, str]
    def __init__(self, kind: _Optional[str] = ..., claims: _Optional[_Mapping[str, str]] = ...) -> None: ...

class Digest(_message.Message):
    __slots__ = ("hash", "size_bytes")
    HASH_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    hash: str
    size_bytes: int
    def __init__(self, hash: _Optional[str] = ..., size_bytes: _Optional[int] = ...) -> None: ...

class ArtifactRef(_message.Message):
    __slots__ = ("digest", "media_type", "kind", "filename", "http_url", "lock_key")
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    MEDIA_TYPE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    HTTP_URL_FIELD_NUMBER: _ClassVar[int]
    LOCK_KEY_FIELD_NUMBER: _ClassVar[int]
    digest: Digest
    media_type: str
    kind: ArtifactKind
    filename: str
    http_url: str
    lock_key: str
    def __init__(self, digest: _Optional[_Union[Digest, _Mapping]] = ..., media_type: _Optional[str] = ..., kind: _Optional[_Union[ArtifactKind, str]] = ..., filename: _Optional[str] = ..., http_url: _Optional[str] = ..., lock_key: _Optional[str] = ...) -> None: ...

class Signature(_message.Message):
    __slots__ = ("key_id", "ed25519")
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    ED25519_FIELD_NUMBER: _ClassVar[int]
    key_id: str
    ed25519: bytes
    def __init__(self, key_id: _Optional[str] = ..., ed25519: _Optional[bytes] = ...) -> None: ...
