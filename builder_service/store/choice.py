"""``serve builder --store URL`` (config key ``store``, ``VENVSMITH_STORE``) and ``--store-ca FILE``: which store
the builder keeps its artifacts in.

* unset, or ``file:///PATH``: the filesystem store (unset: ``$VENVSMITH_HOME/store``, the embedded default);
* ``oci://[USER:PASSWORD@]HOST:PORT/REPO-PREFIX``: an OCI registry (:mod:`.oci`), the filesystem store at
  ``$VENVSMITH_HOME/store`` as its bounded local cache. HTTPS, verified with the system trust store or
  ``--store-ca``; plain HTTP only for a loopback host without ``--store-ca``. Give credentials through
  ``VENVSMITH_STORE`` from a Secret, never in a config file.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from .disk_guard import FreeSpaceFloor

if TYPE_CHECKING:
    from .filesystem import FilesystemStore

__all__ = ["add_store_options", "check_store_url", "open_store"]


def check_store_url(text: str) -> str:
    """The URL as given when it is a ``file://`` or a well-formed ``oci://`` one, else ValueError."""
    text = text.strip()
    if not text:
        return text
    scheme = urlsplit(text).scheme
    if scheme == "file":
        if not urlsplit(text).path.startswith("/"):
            raise ValueError(f"{text!r}: a file:// store needs an absolute path")
        return text
    if scheme == "oci":
        from .registry import RegistryURL

        RegistryURL.parse(text)
        return text
    raise ValueError(f"store URL must be file:///PATH or oci://HOST:PORT/REPO-PREFIX, got a {scheme or 'bare'} one")


def open_store(url: str, home: Path, *, ca_file: str = "", max_bytes: int | None = None,
               min_free: FreeSpaceFloor | None = None) -> FilesystemStore:
    """The store ``url`` names (see the module docstring); an oci one's pending-push thread is started by its
    user (:meth:`~.oci.RegistryStore.start_pusher`, once its publication hooks are in place)."""
    url = check_store_url(url)
    if urlsplit(url).scheme == "oci":
        from .oci import RegistryStore
        from .registry import RegistryClient

        return RegistryStore(home / "store", RegistryClient(url, ca_file=ca_file or None), max_bytes=max_bytes,
                             min_free=min_free)
    root = Path(unquote(urlsplit(url).path)) if url else home / "store"
    from .filesystem import FilesystemStore  # not at import: the CLI's parser reads add_store_options

    return FilesystemStore(root, max_bytes=max_bytes, min_free=min_free)


def _store_flag(text: str) -> str:
    import argparse

    try:
        return check_store_url(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_store_options(serve) -> None:
    """``serve builder --store URL --store-ca FILE`` (they reach the store as ``VENVSMITH_STORE``/``_STORE_CA``)."""
    serve.add_argument("--store", type=_store_flag, default="", metavar="URL",
                       help="builder: where artifacts are kept: file:///PATH (default: $VENVSMITH_HOME/store) or "
                            "oci://HOST:PORT/REPO-PREFIX, an OCI registry shared by replicas, with the local store "
                            "as its cache (https; http only for 127.0.0.1 without --store-ca; credentials as "
                            "oci://USER:PASSWORD@...). Refused on serve resolver's command line (exit 2): the resolver "
                            "keeps no artifacts; a config file shared with builders may hold it")
    serve.add_argument("--store-ca", default="", metavar="FILE",
                       help="builder: CA bundle verifying an oci:// store's HTTPS (default: the system's; refused "
                            "by serve resolver, as --store)")
