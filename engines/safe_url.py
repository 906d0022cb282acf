"""Outbound URLs that come from callers or providers go only to public addresses.

Every such URL (callback URLs now; image and provider URLs next) is checked
here: http(s) only, and every address the host resolves to must be public —
not loopback, private, link-local (cloud metadata), multicast, reserved or
unspecified, IPv4 or IPv6 (IPv4-mapped included). ``FETCH_ALLOWLIST`` admits
named hosts, IPs or CIDRs, for tests and internal services.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

import httpx

from engines.errors import ValidationFailed

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_allowlist(text: str | None) -> tuple[set[str], list[ipaddress.IPv4Network | ipaddress.IPv6Network]]:
    hosts, networks = set(), []
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            hosts.add(item.lower())
    return hosts, networks


def _public(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


async def check_public_url(field: str, url: str, allowlist: str | None = None) -> None:
    """Raise ValidationFailed naming ``field`` unless ``url`` is http(s) to public addresses (or allowlisted)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationFailed([f"{field}: must be an http(s) URL (got {url[:80]!r})"])
    host = parts.hostname.lower()
    hosts, networks = parse_allowlist(allowlist)
    if host in hosts:
        return
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, parts.port or 443, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise ValidationFailed([f"{field}: host {host!r} does not resolve"]) from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%")[0])
        if any(address in net for net in networks):
            continue
        if not _public(address):
            raise ValidationFailed([f"{field}: address {address} is not public"])


MAX_REDIRECTS = 3


async def fetch_public(field: str, url: str, *, max_bytes: int, timeout_s: float,
                       allowlist: str | None = None) -> tuple[bytes, str]:
    """GET a public URL, re-checking every redirect, streaming at most ``max_bytes``.

    Returns the body and its content type; every refusal names ``field``.
    """
    async with httpx.AsyncClient(timeout=timeout_s, follow_redirects=False) as http:
        for _ in range(MAX_REDIRECTS + 1):
            await check_public_url(field, url, allowlist)
            try:
                async with http.stream("GET", url) as response:
                    if response.is_redirect:
                        url = str(response.next_request.url) if response.next_request else ""
                        continue
                    if not response.is_success:
                        raise ValidationFailed([f"{field}: fetching it answered HTTP {response.status_code}"])
                    declared = response.headers.get("content-length", "")
                    if declared.isdigit() and int(declared) > max_bytes:
                        raise ValidationFailed([f"{field}: {declared} bytes exceeds max {max_bytes}"])
                    body = bytearray()
                    async for chunk in response.aiter_bytes():
                        body += chunk
                        if len(body) > max_bytes:
                            raise ValidationFailed([f"{field}: more than max {max_bytes} bytes"])
                    return bytes(body), response.headers.get("content-type", "application/octet-stream")
            except httpx.TimeoutException:
                raise ValidationFailed([f"{field}: no answer within {timeout_s:g} s"]) from None
            except httpx.TransportError as exc:
                raise ValidationFailed([f"{field}: could not fetch it ({type(exc).__name__})"]) from None
    raise ValidationFailed([f"{field}: more than {MAX_REDIRECTS} redirects"])
