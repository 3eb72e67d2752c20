from venvsmith.v1 import common_pb2 as _common_pb2
from venvsmith.v1 import resolver_pb2 as _resolver_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class BuildLimits(_message.Message):
    __slots__ = ("timeout_seconds", "memory_bytes", "max_output_bytes")
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_OUTPUT_BYTES_FIELD_NUMBER: _ClassVar[int]
    timeout_seconds: int
    memory_bytes: int
    max_output_bytes: int
    def __init__(self, timeout_seconds: _Optional[int] = ..., memory_bytes: _Optional[int] = ..., max_output_bytes: _Optional[int] = ...) -> None: ...

class BuildOptions(_message.Message):
    __slots__ = ("wheels", "wheelhouse", "venv_archive", "compile_bytecode", "limits", "config_settings", "index", "seed", "stream_build_log")
    class ConfigSettingsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    WHEELS_FIELD_NUMBER: _ClassVar[int]
    WHEELHOUSE_FIELD_NUMBER: _ClassVar[int]
    VENV_ARCHIVE_FIELD_NUMBER: _ClassVar[int]
    COMPILE_BYTECODE_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    CONFIG_SETTINGS_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    STREAM_BUILD_LOG_FIELD_NUMBER: _ClassVar[int]
    wheels: bool
    wheelhouse: bool
    venv_archive: bool
    compile_bytecode: bool
    limits: BuildLimits
    config_settings: _containers.ScalarMap[str, str]
    index: _common_pb2.IndexConfig
    seed: bool
    stream_build_log: bool
    def __init__(self, wheels: _Optional[bool] = ..., wheelhouse: _Optional[bool] = ..., venv_archive: _Optional[bool] = ..., compile_bytecode: _Optional[bool] = ..., limits: _Optional[_Union[BuildLimits, _Mapping]] = ..., config_settings: _Optional[_Mapping[str, str]] = ..., index: _Optional[_Union[_common_pb2.IndexConfig, _Mapping]] = ..., seed: _Optional[bool] = ..., stream_build_log: _Optional[bool] = ...) -> None: ...

class BuildHeader(_message.Message):
    __slots__ = ("target", "options")
    TARGET_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    target: _common_pb2.TargetSpec
    options: BuildOptions
    def __init__(self, target: _Optional[_Union[_common_pb2.TargetSpec, _Mapping]] = ..., options: _Optional[_Union[BuildOptions, _Mapping]] = ...) -> None: ...

class BuildEnd(_message.Message):
    __slots__ = ("pin_count", "lock_key")
    PIN_COUNT_FIELD_NUMBER: _ClassVar[int]
    LOCK_KEY_FIELD_NUMBER: _ClassVar[int]
    pin_count: int
    lock_key: str
    def __init__(self, pin_count: _Optional[int] = ..., lock_key: _Optional[str] = ...) -> None: ...

class BuildRequest(_message.Message):
    __slots__ = ("header", "pin", "end")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    PIN_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    header: BuildHeader
    pin: _common_pb2.Pin
    end: BuildEnd
    def __init__(self, header: _Optional[_Union[BuildHeader, _Mapping]] = ..., pin: _Optional[_Union[_common_pb2.Pin, _Mapping]] = ..., end: _Optional[_Union[BuildEnd, _Mapping]] = ...) -> None: ...

class PinProgress(_message.Message):
    __slots__ = ("name", "version", "state", "bytes_done", "bytes_total", "detail", "wheel", "log_lines", "build_log")
    class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATE_UNSPECIFIED: _ClassVar[PinProgress.State]
        QUEUED: _ClassVar[PinProgress.State]
        DOWNLOADING: _ClassVar[PinProgress.State]
        BUILDING: _ClassVar[PinProgress.State]
        CACHED: _ClassVar[PinProgress.State]
        DONE: _ClassVar[PinProgress.State]
        FAILED: _ClassVar[PinProgress.State]
    STATE_UNSPECIFIED: PinProgress.State
    QUEUED: PinProgress.State
    DOWNLOADING: PinProgress.State
    BUILDING: PinProgress.State
    CACHED: PinProgress.State
    DONE: PinProgress.State
    FAILED: PinProgress.State
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    BYTES_DONE_FIELD_NUMBER: _ClassVar[int]
    BYTES_TOTAL_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    WHEEL_FIELD_NUMBER: _ClassVar[int]
    LOG_LINES_FIELD_NUMBER: _ClassVar[int]
    BUILD_LOG_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    state: PinProgress.State
    bytes_done: int
    bytes_total: int
    detail: str
    wheel: _common_pb2.ArtifactRef
    log_lines: _containers.RepeatedScalarFieldContainer[str]
    build_log: _common_pb2.ArtifactRef
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ..., state: _Optional[_Union[PinProgress.State, str]] = ..., bytes_done: _Optional[int] = ..., bytes_total: _Optional[int] = ..., detail: _Optional[str] = ..., wheel: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ..., log_lines: _Optional[_Iterable[str]] = ..., build_log: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ...) -> None: ...

class BuildStats(_message.Message):
    __slots__ = ("elapsed_ms", "cached", "wheels_downloaded", "wheels_built", "wheels_cached", "shared_in_flight", "venv_built")
    ELAPSED_MS_FIELD_NUMBER: _ClassVar[int]
    CACHED_FIELD_NUMBER: _ClassVar[int]
    WHEELS_DOWNLOADED_FIELD_NUMBER: _ClassVar[int]
    WHEELS_BUILT_FIELD_NUMBER: _ClassVar[int]
    WHEELS_CACHED_FIELD_NUMBER: _ClassVar[int]
    SHARED_IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    VENV_BUILT_FIELD_NUMBER: _ClassVar[int]
    elapsed_ms: float
    cached: bool
    wheels_downloaded: int
    wheels_built: int
    wheels_cached: int
    shared_in_flight: bool
    venv_built: bool
    def __init__(self, elapsed_ms: _Optional[float] = ..., cached: _Optional[bool] = ..., wheels_downloaded: _Optional[int] = ..., wheels_built: _Optional[int] = ..., wheels_cached: _Optional[int] = ..., shared_in_flight: _Optional[bool] = ..., venv_built: _Optional[bool] = ...) -> None: ...

class BuildResult(_message.Message):
    __slots__ = ("lock_key", "wheels", "wheelhouse", "venv_archive", "lock_file", "stats", "interpreter", "http_base_url", "target_digest", "signature")
    LOCK_KEY_FIELD_NUMBER: _ClassVar[int]
    WHEELS_FIELD_NUMBER: _ClassVar[int]
    WHEELHOUSE_FIELD_NUMBER: _ClassVar[int]
    VENV_ARCHIVE_FIELD_NUMBER: _ClassVar[int]
    LOCK_FILE_FIELD_NUMBER: _ClassVar[int]
    STATS_FIELD_NUMBER: _ClassVar[int]
    INTERPRETER_FIELD_NUMBER: _ClassVar[int]
    HTTP_BASE_URL_FIELD_NUMBER: _ClassVar[int]
    TARGET_DIGEST_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    lock_key: str
    wheels: _containers.RepeatedCompositeFieldContainer[_common_pb2.ArtifactRef]
    wheelhouse: _common_pb2.ArtifactRef
    venv_archive: _common_pb2.ArtifactRef
    lock_file: _common_pb2.ArtifactRef
    stats: BuildStats
    interpreter: BaseInterpreter
    http_base_url: str
    target_digest: str
    signature: _common_pb2.Signature
    def __init__(self, lock_key: _Optional[str] = ..., wheels: _Optional[_Iterable[_Union[_common_pb2.ArtifactRef, _Mapping]]] = ..., wheelhouse: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ..., venv_archive: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ..., lock_file: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ..., stats: _Optional[_Union[BuildStats, _Mapping]] = ..., interpreter: _Optional[_Union[BaseInterpreter, _Mapping]] = ..., http_base_url: _Optional[str] = ..., target_digest: _Optional[str] = ..., signature: _Optional[_Union[_common_pb2.Signature, _Mapping]] = ...) -> None: ...

class BaseInterpreter(_message.Message):
    __slots__ = ("path", "version", "implementation", "identity")
    PATH_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    IMPLEMENTATION_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    path: str
    version: str
    implementation: str
    identity: str
    def __init__(self, path: _Optional[str] = ..., version: _Optional[str] = ..., implementation: _Optional[str] = ..., identity: _Optional[str] = ...) -> None: ...

class BuildEvent(_message.Message):
    __slots__ = ("progress", "result")
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    progress: PinProgress
    result: BuildResult
    def __init__(self, progress: _Optional[_Union[PinProgress, _Mapping]] = ..., result: _Optional[_Union[BuildResult, _Mapping]] = ...) -> None: ...

class ResolveAndBuildRequest(_message.Message):
    __slots__ = ("resolve", "options")
    RESOLVE_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    resolve: _resolver_pb2.ResolveRequest
    options: BuildOptions
    def __init__(self, resolve: _Optional[_Union[_resolver_pb2.ResolveRequest, _Mapping]] = ..., options: _Optional[_Union[BuildOptions, _Mapping]] = ...) -> None: ...

class ResolveAndBuildEvent(_message.Message):
    __slots__ = ("resolve", "build")
    RESOLVE_FIELD_NUMBER: _ClassVar[int]
    BUILD_FIELD_NUMBER: _ClassVar[int]
    resolve: _resolver_pb2.ResolveEvent
    build: BuildEvent
    def __init__(self, resolve: _Optional[_Union[_resolver_pb2.ResolveEvent, _Mapping]] = ..., build: _Optional[_Union[BuildEvent, _Mapping]] = ...) -> None: ...

class ListEnvironmentsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListEnvironmentsResponse(_message.Message):
    __slots__ = ("environments",)
    ENVIRONMENTS_FIELD_NUMBER: _ClassVar[int]
    environments: _containers.RepeatedCompositeFieldContainer[_common_pb2.TargetEnvironment]
    def __init__(self, environments: _Optional[_Iterable[_Union[_common_pb2.TargetEnvironment, _Mapping]]] = ...) -> None: ...

class PrepareMetadataRequest(_message.Message):
    __slots__ = ("pin", "target", "options")
    PIN_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    pin: _common_pb2.Pin
    target: _common_pb2.TargetSpec
    options: BuildOptions
    def __init__(self, pin: _Optional[_Union[_common_pb2.Pin, _Mapping]] = ..., target: _Optional[_Union[_common_pb2.TargetSpec, _Mapping]] = ..., options: _Optional[_Union[BuildOptions, _Mapping]] = ...) -> None: ...

class PrepareMetadataResponse(_message.Message):
    __slots__ = ("metadata", "ref")
    METADATA_FIELD_NUMBER: _ClassVar[int]
    REF_FIELD_NUMBER: _ClassVar[int]
    metadata: bytes
    ref: _common_pb2.ArtifactRef
    def __init__(self, metadata: _Optional[bytes] = ..., ref: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ...) -> None: ...
