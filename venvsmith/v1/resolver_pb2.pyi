from venvsmith.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ResolveRequest(_message.Message):
    __slots__ = ("requirements", "constraints", "target", "index", "options", "no_cache")
    REQUIREMENTS_FIELD_NUMBER: _ClassVar[int]
    CONSTRAINTS_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    NO_CACHE_FIELD_NUMBER: _ClassVar[int]
    requirements: _containers.RepeatedScalarFieldContainer[str]
    constraints: _containers.RepeatedScalarFieldContainer[str]
    target: _common_pb2.TargetSpec
    index: _common_pb2.IndexConfig
    options: _common_pb2.ResolutionOptions
    no_cache: bool
    def __init__(self, requirements: _Optional[_Iterable[str]] = ..., constraints: _Optional[_Iterable[str]] = ..., target: _Optional[_Union[_common_pb2.TargetSpec, _Mapping]] = ..., index: _Optional[_Union[_common_pb2.IndexConfig, _Mapping]] = ..., options: _Optional[_Union[_common_pb2.ResolutionOptions, _Mapping]] = ..., no_cache: _Optional[bool] = ...) -> None: ...

class ResolveStats(_message.Message):
    __slots__ = ("elapsed_ms", "resolution_cache_hit", "pages_fetched", "pages_cached", "metadata_fetched", "metadata_cached", "backtracks", "shared_in_flight")
    ELAPSED_MS_FIELD_NUMBER: _ClassVar[int]
    RESOLUTION_CACHE_HIT_FIELD_NUMBER: _ClassVar[int]
    PAGES_FETCHED_FIELD_NUMBER: _ClassVar[int]
    PAGES_CACHED_FIELD_NUMBER: _ClassVar[int]
    METADATA_FETCHED_FIELD_NUMBER: _ClassVar[int]
    METADATA_CACHED_FIELD_NUMBER: _ClassVar[int]
    BACKTRACKS_FIELD_NUMBER: _ClassVar[int]
    SHARED_IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    elapsed_ms: float
    resolution_cache_hit: bool
    pages_fetched: int
    pages_cached: int
    metadata_fetched: int
    metadata_cached: int
    backtracks: int
    shared_in_flight: bool
    def __init__(self, elapsed_ms: _Optional[float] = ..., resolution_cache_hit: _Optional[bool] = ..., pages_fetched: _Optional[int] = ..., pages_cached: _Optional[int] = ..., metadata_fetched: _Optional[int] = ..., metadata_cached: _Optional[int] = ..., backtracks: _Optional[int] = ..., shared_in_flight: _Optional[bool] = ...) -> None: ...

class ResolveResponse(_message.Message):
    __slots__ = ("pins", "lock_key", "requirements_txt", "pylock_toml", "environment", "stats", "expires_at", "signature", "notes")
    PINS_FIELD_NUMBER: _ClassVar[int]
    LOCK_KEY_FIELD_NUMBER: _ClassVar[int]
    REQUIREMENTS_TXT_FIELD_NUMBER: _ClassVar[int]
    PYLOCK_TOML_FIELD_NUMBER: _ClassVar[int]
    ENVIRONMENT_FIELD_NUMBER: _ClassVar[int]
    STATS_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    NOTES_FIELD_NUMBER: _ClassVar[int]
    pins: _containers.RepeatedCompositeFieldContainer[_common_pb2.Pin]
    lock_key: str
    requirements_txt: str
    pylock_toml: str
    environment: _common_pb2.TargetEnvironment
    stats: ResolveStats
    expires_at: str
    signature: _common_pb2.Signature
    notes: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, pins: _Optional[_Iterable[_Union[_common_pb2.Pin, _Mapping]]] = ..., lock_key: _Optional[str] = ..., requirements_txt: _Optional[str] = ..., pylock_toml: _Optional[str] = ..., environment: _Optional[_Union[_common_pb2.TargetEnvironment, _Mapping]] = ..., stats: _Optional[_Union[ResolveStats, _Mapping]] = ..., expires_at: _Optional[str] = ..., signature: _Optional[_Union[_common_pb2.Signature, _Mapping]] = ..., notes: _Optional[_Iterable[str]] = ...) -> None: ...

class ResolveProgress(_message.Message):
    __slots__ = ("kind", "name", "version", "detail")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        KIND_UNSPECIFIED: _ClassVar[ResolveProgress.Kind]
        PAGE_FETCHED: _ClassVar[ResolveProgress.Kind]
        METADATA_FETCHED: _ClassVar[ResolveProgress.Kind]
        PINNED: _ClassVar[ResolveProgress.Kind]
        BACKTRACKED: _ClassVar[ResolveProgress.Kind]
    KIND_UNSPECIFIED: ResolveProgress.Kind
    PAGE_FETCHED: ResolveProgress.Kind
    METADATA_FETCHED: ResolveProgress.Kind
    PINNED: ResolveProgress.Kind
    BACKTRACKED: ResolveProgress.Kind
    KIND_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    kind: ResolveProgress.Kind
    name: str
    version: str
    detail: str
    def __init__(self, kind: _Optional[_Union[ResolveProgress.Kind, str]] = ..., name: _Optional[str] = ..., version: _Optional[str] = ..., detail: _Optional[str] = ...) -> None: ...

class ResolveSummary(_message.Message):
    __slots__ = ("lock_key", "requirements_txt", "pylock_toml", "environment", "stats", "pin_count", "expires_at", "signature", "notes")
    LOCK_KEY_FIELD_NUMBER: _ClassVar[int]
    REQUIREMENTS_TXT_FIELD_NUMBER: _ClassVar[int]
    PYLOCK_TOML_FIELD_NUMBER: _ClassVar[int]
    ENVIRONMENT_FIELD_NUMBER: _ClassVar[int]
    STATS_FIELD_NUMBER: _ClassVar[int]
    PIN_COUNT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    NOTES_FIELD_NUMBER: _ClassVar[int]
    lock_key: str
    requirements_txt: str
    pylock_toml: str
    environment: _common_pb2.TargetEnvironment
    stats: ResolveStats
    pin_count: int
    expires_at: str
    signature: _common_pb2.Signature
    notes: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, lock_key: _Optional[str] = ..., requirements_txt: _Optional[str] = ..., pylock_toml: _Optional[str] = ..., environment: _Optional[_Union[_common_pb2.TargetEnvironment, _Mapping]] = ..., stats: _Optional[_Union[ResolveStats, _Mapping]] = ..., pin_count: _Optional[int] = ..., expires_at: _Optional[str] = ..., signature: _Optional[_Union[_common_pb2.Signature, _Mapping]] = ..., notes: _Optional[_Iterable[str]] = ...) -> None: ...

class ResolveEvent(_message.Message):
    __slots__ = ("progress", "pin", "summary")
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    PIN_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    progress: ResolveProgress
    pin: _common_pb2.Pin
    summary: ResolveSummary
    def __init__(self, progress: _Optional[_Union[ResolveProgress, _Mapping]] = ..., pin: _Optional[_Union[_common_pb2.Pin, _Mapping]] = ..., summary: _Optional[_Union[ResolveSummary, _Mapping]] = ...) -> None: ...

class DescribeEnvironmentRequest(_message.Message):
    __slots__ = ("target",)
    TARGET_FIELD_NUMBER: _ClassVar[int]
    target: _common_pb2.TargetSpec
    def __init__(self, target: _Optional[_Union[_common_pb2.TargetSpec, _Mapping]] = ...) -> None: ...
