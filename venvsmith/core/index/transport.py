"""TLS and proxy set-up of the HTTP client: the trust store and client certificate (pip's ``cert`` and
``client-cert``), the proxy a URL goes through (``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``ALL_PROXY`` /
``NO_PROXY``, as pip honours them), and the urllib3 manager that sends it (direct or through that proxy).

The proxy rules are pure functions of an environment mapping; urllib3 is imported only when managers are made.
"""

from __future__ import annotations

import ipaddress
import os
import ssl
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from .auth import redact
from .budget import watch_pools

if TYPE_CHECKING:
    import urllib3

#: Environment variables naming a CA bundle, in pip's order of precedence.
CA_BUNDLE_ENV = ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")


class TrustStoreError(Exception):
    """The CA bundle or the client certificate could not be loaded."""


class ProxyConfigError(Exception):
    """A configured proxy cannot be used (e.g. SOCKS without PySocks)."""


# ------------------------------------------------------------------------------------------------- TLS


def ssl_context(ca_bundle: str | None = None, client_cert: str | None = None) -> ssl.SSLContext:
    """TLS trust as pip configures it: an explicit CA bundle (file or directory), else the one named by
    ``PIP_CERT`` / ``REQUESTS_CA_BUNDLE`` / ``SSL_CERT_FILE``, else the system store (``truststore`` if
    installed, else OpenSSL's default paths plus ``certifi``). ``client_cert`` is a PEM file holding the
    client certificate and its private key (pip's ``--client-cert``)."""
    path = ca_bundle or next((os.environ[v] for v in CA_BUNDLE_ENV if os.environ.get(v)), None)
    if path:
        if os.path.isdir(path):
            ctx = ssl.create_default_context(capath=path)
        else:
            ctx = ssl.create_default_context(cafile=path)
    else:
        ctx = _system_context()
    if client_cert:
        ctx.load_cert_chain(client_cert)
    return ctx


def _system_context() -> ssl.SSLContext:
    try:
        import truststore
    except ImportError:
        ctx = ssl.create_default_context()
        try:
            import certifi

            ctx.load_verify_locations(cafile=certifi.where())
        except (ImportError, OSError):
            pass
        return ctx
    return truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


def unverified_context() -> ssl.SSLContext:
    """A context that checks neither the certificate nor the host name (``verify=False``)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def load_context(
    verify: ssl.SSLContext | bool | None, ca_bundle: str | None, client_cert: str | None
) -> ssl.SSLContext:
    """The context a client uses; a bundle or certificate that cannot be read is :class:`TrustStoreError`."""
    if isinstance(verify, ssl.SSLContext):
        return verify
    try:
        if verify is False:
            ctx = unverified_context()
            if client_cert:
                ctx.load_cert_chain(client_cert)
            return ctx
        return ssl_context(ca_bundle, client_cert)
    except OSError as exc:  # ssl.SSLError is one too
        raise TrustStoreError(f"cannot load the TLS trust store: {exc}") from None


# ----------------------------------------------------------------------------------------------- proxies


def proxies_from_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """Scheme (``http``, ``https``, ``all``, ``no``) -> value of ``<scheme>_proxy``; the lower-case spelling
    wins, as in ``urllib.request.getproxies_environment`` (which requests and so pip use). ``HTTP_PROXY`` is
    ignored under CGI (``REQUEST_METHOD`` set), where a client could have sent it as a header (httpoxy)."""
    found: dict[str, str] = {}
    for key, value in environ.items():
        if value and key.lower().endswith("_proxy"):
            found[key[:-6].lower()] = value.strip()
    if "REQUEST_METHOD" in environ:
        found.pop("http", None)
    for key, value in environ.items():  # a lower-case variable overrides, and an empty one unsets
        if key.endswith("_proxy"):
            if value.strip():
                found[key[:-6].lower()] = value.strip()
            else:
                found.pop(key[:-6].lower(), None)
    return {scheme: value for scheme, value in found.items() if value}


def bypasses_proxy(host: str, port: int | None, no_proxy: str) -> bool:
    """Whether ``NO_PROXY`` names ``host``: ``*``, a domain (``example.com`` / ``.example.com`` match it and
    its subdomains), ``host:port``, an IP address, or a CIDR network for an IP host."""
    host = host.strip("[]").lower().rstrip(".")
    if not host:
        return False
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(host)
    except ValueError:
        address = None
    for entry in (part.strip().lower() for part in no_proxy.replace(";", ",").split(",")):
        if not entry:
            continue
        if entry == "*":
            return True
        entry_host, entry_port = _split_host_port(entry)
        if entry_port is not None and entry_port != port:
            continue
        if address is not None:
            try:
                if address in ipaddress.ip_network(entry_host, strict=False):
                    return True
            except ValueError:
                pass
            continue
        domain = entry_host.lstrip(".").rstrip(".")
        if domain and (host == domain or host.endswith("." + domain)):
            return True
    return False


def _split_host_port(entry: str) -> tuple[str, int | None]:
    if entry.startswith("["):  # [v6]:port
        inside, _, rest = entry[1:].partition("]")
        return inside, int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else None
    if entry.count(":") == 1:
        name, _, port = entry.partition(":")
        return name, int(port) if port.isdigit() else None
    return entry, None


def proxy_for(url: str, proxies: Mapping[str, str]) -> str | None:
    """The proxy URL that ``url`` goes through, or ``None`` for a direct connection."""
    parts = urlsplit(url)
    proxy = proxies.get(parts.scheme.lower()) or proxies.get("all")
    if not proxy:
        return None
    try:
        port = parts.port
    except ValueError:
        port = None
    if bypasses_proxy(parts.hostname or "", port, proxies.get("no", "")):
        return None
    return proxy if "://" in proxy else f"http://{proxy}"  # as requests: a bare host:port is an HTTP proxy


# ---------------------------------------------------------------------------------------------- managers


class Managers:
    """The urllib3 managers of one client: one direct :class:`urllib3.PoolManager`, and one
    :class:`urllib3.ProxyManager` (or SOCKS manager) per proxy in use, made on first need."""

    def __init__(self, options: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> None:
        import urllib3

        self._options = dict(options)
        self._proxies = proxies_from_environment(os.environ if environ is None else environ)
        self._direct = urllib3.PoolManager(**self._options)
        watch_pools(self._direct)
        self._by_proxy: dict[str, urllib3.PoolManager] = {}
        self._lock = threading.Lock()

    def for_url(self, url: str) -> urllib3.PoolManager:
        """The manager that sends ``url``."""
        proxy = proxy_for(url, self._proxies) if self._proxies else None
        if proxy is None:
            return self._direct
        with self._lock:
            manager = self._by_proxy.get(proxy)
            if manager is None:
                manager = self._by_proxy[proxy] = _proxy_manager(proxy, self._options)
                watch_pools(manager)
            return manager

    def clear(self) -> None:
        """Close every pooled connection."""
        with self._lock:
            managers = [self._direct, *self._by_proxy.values()]
            self._by_proxy.clear()
        for manager in managers:
            manager.clear()


def _proxy_manager(proxy: str, options: Mapping[str, Any]) -> urllib3.PoolManager:
    if proxy.lower().startswith("socks"):
        try:
            from urllib3.contrib.socks import SOCKSProxyManager
        except ImportError:
            raise ProxyConfigError(f"the SOCKS proxy {redact(proxy)} needs PySocks installed") from None
        return SOCKSProxyManager(proxy, **options)
    import urllib3

    parts = urlsplit(proxy)
    headers = {}
    if parts.username is not None:  # credentials in the proxy URL: Proxy-Authorization, as requests sends
        userinfo = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        headers = urllib3.make_headers(proxy_basic_auth=userinfo)
    return urllib3.ProxyManager(proxy, proxy_headers=headers, **options)
