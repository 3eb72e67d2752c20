"""The fault suite: each fault's exact gRPC status (and ``ErrorInfo`` reason), and a good request answered after it.

Here:

- ``test_malformed.py`` -- undecodable request bytes on every RPC of both real servers: INVALID_ARGUMENT; a
  request over 4 MiB: RESOURCE_EXHAUSTED (gRPC's own refusal).
- ``test_garbage_requests.py`` -- hypothesis-made requirements, constraints, target environments and options over
  gRPC to both servers: never INTERNAL, never UNKNOWN.
- ``test_index_faults.py`` -- a dead, 5xx/429 or slow index: retried (the tries counted by the index, backoff),
  then UNAVAILABLE ``INDEX_UNAVAILABLE`` naming it without credentials; a passed deadline: DEADLINE_EXCEEDED.
- ``test_deadlines.py`` -- the builder's DEADLINE_EXCEEDED while resolving and while downloading.
- ``test_builder_down.py`` -- a resolver server's ``--builder`` down: UNAVAILABLE ``BUILDER_UNAVAILABLE`` naming it.
- ``test_kill9.py`` -- SIGKILL of either server at seeded-random moments, restarted on the same home: nothing
  reported done is lost, no partial blob, no temp file outside the temp directories.

Elsewhere (not repeated here):

- field bounds (oversized names/versions, 1001 requirements, too many pins): ``tests/e2e/test_bad_input.py``,
  ``test_bounded.py``, ``test_builder_bad_input.py``, ``test_builder_failures.py`` (malformed Build streams);
- admission (SERVER_BUSY + RetryInfo): ``tests/e2e/test_bounded.py``;
- tokens (UNAUTHENTICATED ``AUTH_TOKEN_INVALID``, PERMISSION_DENIED ``AUTH_ROLE_INSUFFICIENT``):
  ``tests/e2e/test_auth_e2e.py``; TLS (a plaintext client: UNAVAILABLE, the server keeps serving):
  ``tests/e2e/test_tls.py``;
- corrupt SQLite caches moved aside and rebuilt: ``tests/e2e/test_cache_corruption.py``; the store's index:
  ``tests/builder/test_store.py``; corrupt blobs (DATA_LOSS): ``tests/e2e/test_artifact_integrity.py``;
- cancellation: ``tests/e2e/test_cancellation.py``; SIGTERM with a stuck worker: ``test_hostile_shutdown.py``;
  a builder killed mid sdist build: ``tests/e2e/test_builder_failures.py``;
- the retry policy's jitter and bounds: ``tests/index/test_http_retry.py``.
"""
