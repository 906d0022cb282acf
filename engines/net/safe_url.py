"""Every outbound fetch of a URL that came from a caller or a provider goes through here.

Rules (``engines.net.safe_address`` holds the address ones):

- http and https only;
- the host is resolved here, once per hop, and every address it resolves to must
  be public (not loopback, private, link-local, cloud metadata, multicast,
  reserved or unspecified; IPv4 or IPv6; any spelling: ``127.1``,
  ``0x7f000001``, ``[::ffff:127.0.0.1]``…) unless ``FETCH_ALLOWLIST`` admits it;
- the connection goes to a vetted address, never to a fresh DNS answer (DNS
  rebinding), and the peer actually connected to is checked again before a byte
  is sent;
- redirects are followed by hand, at most ``MAX_REDIRECTS``, each hop checked
  like the first;
- the body is streamed and dropped past ``max_bytes`` (also once decompressed),
  and the whole fetch, DNS included, ends within ``timeout_s``.

``FETCH_ALLOWLIST`` (comma-separated) admits host names (compared
case-insensitively; such a host skips the address check), IPs and CIDRs (by
containment). Every refusal is a ``ValidationFailed`` line naming the field, the
rule and what was seen: ``image: address 127.0.0.1 is not public``.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

from engines.errors import ValidationFailed
from engines.net.safe_address import Allowlist, IPAddress, ip_literal, parse_allowlist

__all__ = ["MAX_REDIRECTS", "check_forwarded_url", "check_public_url", "connect_tcp", "fetch_public",
           "parse_allowlist", "post_public", "resolve"]

MAX_REDIRECTS = 3
RESOLVE_TIMEOUT_S = 10.0  # for check_public_url alone; fetch_public's own deadline covers its DNS
REDIRECT_STATUSES = {301, 302, 303, 307, 308}
USER_AGENT = b"algo-mcp"


def _refuse(field: str, rule: str) -> ValidationFailed:
    return ValidationFailed([f"{field}: {rule}"])


def _shown(text: str, limit: int = 80) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "…")


async def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to, in resolver order (the seam tests replace)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    found: list[IPAddress] = []
    for info in infos:
        address = ip_literal(str(info[4][0]))
        if address is not None and address not in found:
            found.append(address)
    return found


_BACKEND = httpcore.AnyIOBackend()


async def connect_tcp(ip: str, port: int, timeout: float | None = None, local_address: str | None = None,
                      socket_options: Iterable[Any] | None = None) -> httpcore.AsyncNetworkStream:
    """Open a TCP connection to a vetted IP (the seam tests replace)."""
    return await _BACKEND.connect_tcp(ip, port, timeout=timeout, local_address=local_address,
                                      socket_options=socket_options)


@dataclass(frozen=True)
class _Hop:
    """One vetted URL: where it may connect to, and under which allowlist."""

    url: httpx.URL
    host: str
    port: int
    addresses: list[IPAddress]
    allowlist: Allowlist
    host_allowlisted: bool


async def _vet(field: str, url: str, allowlist: str | None, *, unresolved_ok: bool = False) -> _Hop:
    if not isinstance(url, str):
        raise _refuse(field, f"must be an http(s) URL (got {type(url).__name__})")
    try:
        parsed = httpx.URL(url)
        scheme, host, raw_host, port = parsed.scheme, parsed.host, parsed.raw_host, parsed.port
    except (httpx.InvalidURL, ValueError, TypeError, UnicodeError) as exc:
        seen = _address_in_unparseable(url)
        if seen is not None and not Allowlist.parse(allowlist).admits(seen):
            raise _refuse(field, f"address {seen} is not public") from None
        raise _refuse(field, f"is not a valid URL ({str(exc)[:100]})") from None
    if scheme not in ("http", "https"):
        raise _refuse(field, f"scheme {_shown(scheme, 20)} is not allowed, only http and https")
    if not host:
        raise _refuse(field, "URL has no host")
    port = port or (443 if scheme == "https" else 80)
    allow = Allowlist.parse(allowlist)
    literal = ip_literal(host)
    if literal is not None:
        addresses = [literal]
    else:
        try:
            async with asyncio.timeout(RESOLVE_TIMEOUT_S):
                addresses = await resolve(raw_host.decode("ascii"), port)
        except (OSError, UnicodeError, ValueError, TimeoutError):
            addresses = []
        if not addresses and not (unresolved_ok and not _local_name(host)):
            raise _refuse(field, f"host {_shown(host)} does not resolve")
    host_allowlisted = allow.admits_host(host)
    if not host_allowlisted:
        for address in addresses:
            if not allow.admits(address):
                raise _refuse(field, f"address {address} is not public")
    return _Hop(parsed, host, port, addresses, allow, host_allowlisted)


def _address_in_unparseable(url: str) -> IPAddress | None:
    """The address a URL httpx will not parse names in a spelling resolvers accept
    (``http://0177.0.0.1/``), so its refusal can say which address it was."""
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return None
    return ip_literal(host) if host else None


async def check_public_url(field: str, url: str, allowlist: str | None = None) -> None:
    """Raise ValidationFailed naming ``field`` unless ``url`` is http(s) to public addresses (or allowlisted)."""
    await _vet(field, url, allowlist)


async def check_forwarded_url(field: str, url: str, allowlist: str | None = None) -> None:
    """As :func:`check_public_url`, for a URL only passed on to a provider (it fetches it, never we): one
    whose name does not resolve here is let through, since the provider resolves it on its own network;
    one that resolves (or is an address) here must be public, and local names never pass."""
    await _vet(field, url, allowlist, unresolved_ok=True)


_LOCAL_SUFFIXES = (".localhost", ".local", ".internal", ".localdomain", ".home.arpa")


def _local_name(host: str) -> bool:
    name = host.lower().rstrip(".")
    return name == "localhost" or "." not in name or name.endswith(_LOCAL_SUFFIXES)


class _PinnedBackend(httpcore.AsyncNetworkBackend):
    """Connects only to the hop's vetted addresses, whatever host name httpcore asks for,
    and checks the peer it reached before handing the connection over."""

    def __init__(self, field: str, hop: _Hop) -> None:
        self.field, self.hop = field, hop

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: Iterable[Any] | None = None) -> httpcore.AsyncNetworkStream:
        failure: Exception | None = None
        for address in self.hop.addresses:
            try:
                stream = await connect_tcp(str(address), self.hop.port, timeout, local_address, socket_options)
            except (OSError, httpcore.ConnectError) as exc:
                failure = exc
                continue
            peer = _peer_address(stream)
            if not self.hop.host_allowlisted and (peer is None or not self.hop.allowlist.admits(peer)):
                await stream.aclose()
                seen = peer if peer is not None else "unknown"
                raise _refuse(self.field, f"address {seen} is not public")
            return stream
        shown = ", ".join(str(a) for a in self.hop.addresses)
        raise _refuse(self.field, f"could not connect to {shown} port {self.hop.port}") from failure

    async def connect_unix_socket(self, *args: Any, **kwargs: Any) -> httpcore.AsyncNetworkStream:
        raise _refuse(self.field, "unix sockets are not allowed")

    async def sleep(self, seconds: float) -> None:
        await _BACKEND.sleep(seconds)


def _peer_address(stream: httpcore.AsyncNetworkStream) -> IPAddress | None:
    peer = stream.get_extra_info("server_addr")
    if not isinstance(peer, tuple) or not peer:
        return None
    return ip_literal(str(peer[0]))


_ssl_context: ssl.SSLContext | None = None


def _tls() -> ssl.SSLContext:
    global _ssl_context
    if _ssl_context is None:
        _ssl_context = httpx.create_ssl_context()
    return _ssl_context


def _decoder(field: str, encoding: str) -> Callable[[bytes, int], bytes] | None:
    """A bounded decompressor for ``Content-Encoding`` (None for identity): it never yields
    more than the limit it is given, so a compression bomb cannot fill memory."""
    if encoding in ("", "identity"):
        return None
    if encoding in ("gzip", "x-gzip", "deflate"):
        inflater = zlib.decompressobj(wbits=31 if "gzip" in encoding else 15)

        def decode(chunk: bytes, limit: int) -> bytes:
            try:
                return inflater.decompress(chunk, limit)
            except zlib.error:
                raise _refuse(field, f"body is not valid {encoding}") from None
        return decode
    raise _refuse(field, f"content encoding {_shown(encoding, 30)} is not supported")


async def _get(field: str, hop: _Hop, *, max_bytes: int, timeout_s: float) -> tuple[str | None, bytes, str]:
    """One GET: (redirect location, b"", "") or (None, body, content type)."""
    url = hop.url
    request_url = httpcore.URL(scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path)
    headers = [(b"Host", url.netloc), (b"Accept", b"*/*"), (b"Accept-Encoding", b"identity"),
               (b"User-Agent", USER_AGENT)]
    extensions = {"timeout": dict.fromkeys(("connect", "read", "write", "pool"), timeout_s)}
    pool = httpcore.AsyncConnectionPool(ssl_context=_tls(), network_backend=_PinnedBackend(field, hop),
                                        max_keepalive_connections=0, retries=0)
    async with pool, pool.stream("GET", request_url, headers=headers, extensions=extensions) as response:
        fields = {name.lower(): value.decode("latin-1").strip() for name, value in response.headers}
        if response.status in REDIRECT_STATUSES:
            if not fields.get(b"location"):
                raise _refuse(field, f"redirect (HTTP {response.status}) has no Location")
            return fields[b"location"], b"", ""
        if not 200 <= response.status < 300:
            raise _refuse(field, f"fetching it answered HTTP {response.status}")
        declared = fields.get(b"content-length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            raise _refuse(field, f"{declared} bytes exceeds max {max_bytes}")
        decode = _decoder(field, fields.get(b"content-encoding", "").lower())
        body, received = bytearray(), 0
        async for chunk in response.aiter_stream():
            received += len(chunk)
            body += decode(chunk, max_bytes - len(body) + 1) if decode else chunk
            if received > max_bytes or len(body) > max_bytes:
                raise _refuse(field, f"more than max {max_bytes} bytes")
        return None, bytes(body), fields.get(b"content-type") or "application/octet-stream"


async def _fetch(field: str, url: str, *, max_bytes: int, timeout_s: float,
                 allowlist: str | None) -> tuple[bytes, str]:
    for _ in range(MAX_REDIRECTS + 1):
        hop = await _vet(field, url, allowlist)
        try:
            location, body, content_type = await _get(field, hop, max_bytes=max_bytes, timeout_s=timeout_s)
        except httpcore.TimeoutException:
            raise _refuse(field, f"no complete answer within {timeout_s:g} s") from None
        except (httpcore.NetworkError, httpcore.ProtocolError, httpcore.UnsupportedProtocol,
                httpcore.ProxyError, ssl.SSLError, OSError) as exc:
            raise _refuse(field, f"could not fetch it ({type(exc).__name__})") from None
        if location is None:
            return body, content_type
        try:
            url = str(hop.url.join(location))
        except (httpx.InvalidURL, ValueError, TypeError, UnicodeError):
            raise _refuse(field, f"redirect to an invalid URL {_shown(location)}") from None
    raise _refuse(field, f"more than {MAX_REDIRECTS} redirects")


async def fetch_public(field: str, url: str, *, max_bytes: int, timeout_s: float,
                       allowlist: str | None = None) -> tuple[bytes, str]:
    """GET a public URL, re-checking every redirect, streaming at most ``max_bytes``,
    all within ``timeout_s``. Returns the body and its content type; every refusal names ``field``.
    """
    try:
        async with asyncio.timeout(timeout_s):
            return await _fetch(field, url, max_bytes=max_bytes, timeout_s=timeout_s, allowlist=allowlist)
    except TimeoutError:
        raise _refuse(field, f"no complete answer within {timeout_s:g} s") from None


async def post_public(field: str, url: str, body: bytes, headers: dict[str, str], *, timeout_s: float,
                      allowlist: str | None = None) -> int:
    """POST ``body`` to a public URL over a connection pinned to the vetted address; no redirects.

    Returns the HTTP status; a refused address or a failed connection raises
    ValidationFailed naming ``field``.
    """
    hop = await _vet(field, url, allowlist)
    url_ = hop.url
    request_url = httpcore.URL(scheme=url_.raw_scheme, host=url_.raw_host, port=url_.port, target=url_.raw_path)
    sent = [(b"Host", url_.netloc), (b"User-Agent", USER_AGENT), (b"Content-Length", str(len(body)).encode()),
            *((k.encode(), v.encode()) for k, v in headers.items())]
    extensions = {"timeout": dict.fromkeys(("connect", "read", "write", "pool"), timeout_s)}
    pool = httpcore.AsyncConnectionPool(ssl_context=_tls(), network_backend=_PinnedBackend(field, hop),
                                        max_keepalive_connections=0, retries=0)
    try:
        async with asyncio.timeout(timeout_s), pool:
            response = await pool.request("POST", request_url, headers=sent, content=body, extensions=extensions)
    except (TimeoutError, httpcore.TimeoutException):
        raise _refuse(field, f"no answer within {timeout_s:g} s") from None
    except (httpcore.NetworkError, httpcore.ProtocolError, httpcore.UnsupportedProtocol, ssl.SSLError,
            OSError) as exc:
        raise _refuse(field, f"could not reach it ({type(exc).__name__})") from None
    return response.status
