"""Outbound fetching: addresses, schemes, allowlist, redirects, size and time limits, DNS rebinding.

Every byte these tests send goes to loopback. Names other than ``localhost`` never reach
a real resolver (the ``no_outside_dns`` fixture answers them), and every refusal of a
non-loopback address is asserted to happen before any connection is opened.
"""

from __future__ import annotations

import asyncio
import datetime
import gzip
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest

from engines.errors import ValidationFailed
from engines.net import safe_url
from engines.net.safe_address import ipv4_numeric, is_public
from engines.net.safe_url import check_forwarded_url, check_public_url, fetch_public, post_public
from tests.polling import poll

PUBLIC_IP = "93.184.216.34"  # only ever handed to the code under test by a fake resolver; never connected to
FAKE_DNS: dict[str, list[str]] = {"public.example": [PUBLIC_IP], "private.example": [PUBLIC_IP, "10.0.0.7"],
                                  "tls.example": ["127.0.0.1"],
                                  "metadata.example": ["169.254.169.254"], "localhost.": ["127.0.0.1", "::1"]}


@pytest.fixture(autouse=True)
def no_outside_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only ``localhost`` is resolved for real (from the hosts file); other names come from FAKE_DNS,
    so no query ever leaves the machine."""
    real = safe_url.resolve

    async def resolve(host: str, port: int):
        if host == "localhost":
            return await real(host, port)
        if host in FAKE_DNS:
            return [safe_url.ip_literal(a) for a in FAKE_DNS[host]]
        raise socket.gaierror(socket.EAI_NONAME, "not in the test's fake DNS")

    monkeypatch.setattr(safe_url, "resolve", resolve)


def forbid_connections(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    attempts: list[str] = []

    async def connect(ip: str, port: int, *args, **kwargs):
        attempts.append(ip)
        raise AssertionError(f"connected to {ip}:{port} although it should have been refused first")

    monkeypatch.setattr(safe_url, "connect_tcp", connect)
    return attempts


async def refusal(call: Awaitable[object]) -> str:
    with pytest.raises(ValidationFailed) as caught:
        await call
    assert len(caught.value.problems) == 1
    return caught.value.problems[0]


async def fetch(url: str, *, allowlist: str | None = None, max_bytes: int = 10_000, timeout_s: float = 5.0):
    return await fetch_public("image", url, max_bytes=max_bytes, timeout_s=timeout_s, allowlist=allowlist)


# ---------------------------------------------------------------- a loopback server


@dataclass
class Server:
    port: int
    connections: int = 0
    requests: list[str] = field(default_factory=list)
    hosts: list[str] = field(default_factory=list)
    sni: list[str | None] = field(default_factory=list)

    def url(self, path: str = "/ok") -> str:
        return f"http://127.0.0.1:{self.port}{path}"


Handler = Callable[[asyncio.StreamWriter, str], Awaitable[None]]


def response(status: str, body: bytes = b"", headers: dict[str, str] | None = None) -> bytes:
    head = {"Content-Length": str(len(body)), "Connection": "close", **(headers or {})}
    lines = "".join(f"{k}: {v}\r\n" for k, v in head.items())
    return f"HTTP/1.1 {status}\r\n{lines}\r\n".encode() + body


async def chunked(writer: asyncio.StreamWriter, pieces, delay_s: float = 0.0) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
    for piece in pieces:
        writer.write(b"%x\r\n%b\r\n" % (len(piece), piece))
        await writer.drain()
        if delay_s:
            await asyncio.sleep(delay_s)
    writer.write(b"0\r\n\r\n")


def forever(piece: bytes):
    while True:
        yield piece


async def route(server: Server, writer: asyncio.StreamWriter, path: str) -> None:
    if path == "/ok":
        writer.write(response("200 OK", b"hello", {"Content-Type": "text/plain"}))
    elif path == "/missing":
        writer.write(response("404 Not Found"))
    elif path == "/big-declared":
        writer.write(response("200 OK", b"x" * 100_000))
    elif path == "/big-chunked":
        await chunked(writer, [b"x" * 1000] * 50)
    elif path == "/small-chunked":
        await chunked(writer, [b"ab"] * 10)
    elif path == "/gzip":
        writer.write(response("200 OK", gzip.compress(b"hello"), {"Content-Encoding": "gzip"}))
    elif path == "/gzip-bomb":
        writer.write(response("200 OK", gzip.compress(bytes(20_000_000)), {"Content-Encoding": "gzip"}))
    elif path == "/brotli":
        writer.write(response("200 OK", b"\x00", {"Content-Encoding": "br"}))
    elif path == "/dribble":
        await chunked(writer, forever(b"x"), delay_s=0.2)
    elif path == "/silent":
        await asyncio.sleep(3600)
    elif path == "/loop":
        writer.write(response("302 Found", headers={"Location": "/loop"}))
    elif path.startswith("/chain/"):
        left = int(path.rsplit("/", 1)[1])
        writer.write(response("302 Found", headers={"Location": f"/chain/{left - 1}" if left > 1 else "/ok"}))
    elif path.startswith("/to/"):
        target = path[len("/to/"):].replace("PORT", str(server.port))
        writer.write(response("307 Temporary Redirect", headers={"Location": target}))
    elif path == "/no-location":
        writer.write(response("302 Found"))
    else:
        writer.write(response("500 Internal Server Error"))


@asynccontextmanager
async def serving(tls: ssl.SSLContext | None = None) -> AsyncIterator[Server]:
    state = Server(0)
    if tls is not None:
        tls.sni_callback = lambda _sock, name, _ctx: state.sni.append(name)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        state.connections += 1
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            path = head.split(b" ", 2)[1].decode()
            state.requests.append(path)
            lines = head.split(b"\r\n")
            state.hosts += [line[5:].strip().decode() for line in lines if line.lower().startswith(b"host:")]
            await route(state, writer, path)
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    tcp = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=tls)
    state.port = tcp.sockets[0].getsockname()[1]
    try:
        yield state
    finally:
        tcp.close()


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    async with serving() as state:
        yield state


# ---------------------------------------------------------------- addresses, in every spelling

LOOPBACK_SPELLINGS = [
    "http://127.0.0.1/", "https://127.0.0.1:8443/x", "http://127.1/", "http://127.0.1/", "http://0x7f000001/",
    "http://0x7f.0.0.1/", "http://2130706433/", "http://017700000001/", "http://0177.0.0.1/",
    "http://127.0.0.1./", "http://[::ffff:127.0.0.1]/", "http://[::ffff:7f00:1]:8080/", "http://127.255.255.254/",
]


@pytest.mark.parametrize("url", LOOPBACK_SPELLINGS)
async def test_every_spelling_of_loopback_is_refused_before_connecting(url, monkeypatch):
    attempts = forbid_connections(monkeypatch)
    expected = "image: address 127.0.0.1 is not public"
    if "255.254" in url:
        expected = "image: address 127.255.255.254 is not public"
    assert await refusal(check_public_url("image", url)) == expected
    assert await refusal(fetch(url)) == expected
    assert attempts == []


@pytest.mark.parametrize(("url", "seen"), [
    ("http://[::1]/", "::1"),
    ("http://[0:0:0:0:0:0:0:1]:9/", "::1"),
    ("http://0.0.0.0/", "0.0.0.0"),
    ("http://0/", "0.0.0.0"),
    ("http://[::]/", "::"),
    ("http://10.0.0.7/", "10.0.0.7"),
    ("http://172.16.3.4/", "172.16.3.4"),
    ("http://192.168.1.1/", "192.168.1.1"),
    ("http://100.64.0.1/", "100.64.0.1"),
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254"),
    ("http://0xa9fea9fe/", "169.254.169.254"),
    ("http://100.100.100.200/", "100.100.100.200"),
    ("http://192.0.0.192/", "192.0.0.192"),
    ("http://[fd00:ec2::254]/", "fd00:ec2::254"),
    ("http://[fd00::1]/", "fd00::1"),
    ("http://[fe80::1]/", "fe80::1"),
    ("http://[fe80::1%25eth0]/", "fe80::1"),
    ("http://224.0.0.1/", "224.0.0.1"),
    ("http://[ff02::1]/", "ff02::1"),
    ("http://255.255.255.255/", "255.255.255.255"),
    ("http://240.0.0.1/", "240.0.0.1"),
    ("http://[::ffff:10.0.0.7]/", "10.0.0.7"),
    ("http://[::ffff:169.254.169.254]/", "169.254.169.254"),
    ("http://[64:ff9b::a00:7]/", "64:ff9b::a00:7"),
    ("http://[2002:a00:7::1]/", "2002:a00:7::1"),
    ("http://[::7f00:1]/", "::7f00:1"),
    ("http://metadata.example/", "169.254.169.254"),
    ("http://private.example/", "10.0.0.7"),
])
async def test_non_public_addresses_are_refused_before_connecting(url, seen, monkeypatch):
    attempts = forbid_connections(monkeypatch)
    assert await refusal(check_public_url("image", url)) == f"image: address {seen} is not public"
    assert await refusal(fetch(url)) == f"image: address {seen} is not public"
    assert attempts == []


@pytest.mark.parametrize("url", ["http://localhost/", "http://LocalHost:8080/x", "http://localhost./"])
async def test_names_resolving_to_loopback_are_refused(url, monkeypatch):
    attempts = forbid_connections(monkeypatch)
    message = await refusal(fetch(url))
    assert message in ("image: address 127.0.0.1 is not public", "image: address ::1 is not public")
    assert attempts == []


async def test_public_addresses_pass_the_check_without_any_connection(monkeypatch):
    attempts = forbid_connections(monkeypatch)
    for url in (f"https://{PUBLIC_IP}/a.png", "http://public.example:8080/x", "http://[2606:4700:4700::1111]/"):
        assert await check_public_url("image", url) is None
    assert attempts == []


def test_address_rules():
    assert ipv4_numeric("127.1") == ipv4_numeric("0x7f000001") == ipv4_numeric("2130706433")
    assert str(ipv4_numeric("0300.0250.1.1")) == "192.168.1.1"
    assert ipv4_numeric("1.2.3.4.5") is None and ipv4_numeric("example") is None and ipv4_numeric("256.1.1.1") is None
    assert is_public(safe_url.ip_literal("8.8.8.8")) and is_public(safe_url.ip_literal("2606:4700::1111"))
    assert not is_public(safe_url.ip_literal("::ffff:127.0.0.1"))


# ---------------------------------------------------------------- schemes and hostile input


@pytest.mark.parametrize(("url", "message"), [
    ("file:///etc/passwd", "image: scheme 'file' is not allowed, only http and https"),
    ("ftp://example.com/x", "image: scheme 'ftp' is not allowed, only http and https"),
    ("gopher://127.0.0.1:6379/_INFO", "image: scheme 'gopher' is not allowed, only http and https"),
    ("javascript:alert(1)", "image: scheme 'javascript' is not allowed, only http and https"),
    ("//127.0.0.1/x", "image: scheme '' is not allowed, only http and https"),
    ("http:///x", "image: URL has no host"),
    ("http://unknown.invalid/", "image: host 'unknown.invalid' does not resolve"),
])
async def test_bad_schemes_and_hosts_are_refused(url, message, monkeypatch):
    attempts = forbid_connections(monkeypatch)
    assert await refusal(check_public_url("image", url)) == message
    assert await refusal(fetch(url)) == message
    assert attempts == []


@pytest.mark.parametrize("url", [
    "", "not a url", "http://[::1", "http://127.0.0.1:99999/", "http://a b/", "http://\x00/", "http://%00/",
    "http://" + "a" * 5000 + "/", "http://" + ".".join(["a" * 70] * 5) + "/", "http://xn--/",
    "http://[fe80::1%eth0]/", "http://1.2.3.4.5.6/", "http://0x/", "HTTP://[::]/", "http://user:pw@10.0.0.1/",
    "https://" + "9" * 400 + "/", None, 12, b"http://127.0.0.1/",
])
async def test_hostile_input_is_refused_quickly_without_crashing(url, monkeypatch):
    attempts = forbid_connections(monkeypatch)
    started = time.monotonic()
    message = await refusal(fetch(url, timeout_s=2.0))
    assert message.startswith("image: ")
    assert await refusal(check_public_url("image", url)) == message
    assert time.monotonic() - started < 3.0
    assert attempts == []


# ---------------------------------------------------------------- the allowlist, against a real loopback server


async def test_loopback_server_is_refused_without_allowlist_and_fetched_with_it(server):
    assert await refusal(fetch(server.url())) == "image: address 127.0.0.1 is not public"
    assert server.connections == 0
    assert await fetch(server.url(), allowlist="127.0.0.1") == (b"hello", "text/plain")
    assert await fetch(server.url(), allowlist="10.0.0.0/8, 127.0.0.0/8") == (b"hello", "text/plain")
    assert await fetch(server.url("/small-chunked"), allowlist="127.0.0.1") == (b"ab" * 10, "application/octet-stream")
    assert await refusal(fetch(server.url(), allowlist="127.0.0.2")) == "image: address 127.0.0.1 is not public"


async def test_allowlisted_host_name_skips_the_address_check(server):
    url = f"http://LocalHost:{server.port}/ok"
    assert await fetch(url, allowlist="localhost") == (b"hello", "text/plain")
    assert await refusal(fetch(url, allowlist="otherhost")) in (
        "image: address 127.0.0.1 is not public", "image: address ::1 is not public")


async def test_http_errors_and_encodings(server):
    allow = "127.0.0.1"
    assert await refusal(fetch(server.url("/missing"), allowlist=allow)) == "image: fetching it answered HTTP 404"
    assert await fetch(server.url("/gzip"), allowlist=allow) == (b"hello", "application/octet-stream")
    assert await refusal(fetch(server.url("/brotli"), allowlist=allow)) == \
        "image: content encoding 'br' is not supported"


def self_signed(tmp_path, name: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a certificate for ``name`` and a client context trusting only it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    server_side = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_side.load_cert_chain(cert_file, key_file)
    return server_side, ssl.create_default_context(cafile=str(cert_file))


@pytest.mark.parametrize("cert_name", ["tls.example", "other.example"])
async def test_https_connects_to_the_vetted_ip_but_verifies_the_host_name(tmp_path, monkeypatch, cert_name):
    server_side, client_side = self_signed(tmp_path, cert_name)
    monkeypatch.setattr(safe_url, "_ssl_context", client_side)
    async with serving(server_side) as tls:
        url = f"https://tls.example:{tls.port}/ok"
        if cert_name == "tls.example":
            assert await fetch(url, allowlist="127.0.0.1") == (b"hello", "text/plain")
            assert tls.sni == ["tls.example"]
            assert tls.hosts == [f"tls.example:{tls.port}"]
        else:
            assert await refusal(fetch(url, allowlist="127.0.0.1")) == "image: could not fetch it (ConnectError)"
            assert tls.requests == []
        assert await refusal(fetch(url)) == "image: address 127.0.0.1 is not public"


# ---------------------------------------------------------------- redirects


async def test_redirects_are_followed_up_to_three(server):
    assert await fetch(server.url("/chain/3"), allowlist="127.0.0.1") == (b"hello", "text/plain")
    assert server.requests == ["/chain/3", "/chain/2", "/chain/1", "/ok"]


async def test_more_than_three_redirects_are_refused(server):
    assert await refusal(fetch(server.url("/chain/4"), allowlist="127.0.0.1")) == "image: more than 3 redirects"
    assert await refusal(fetch(server.url("/loop"), allowlist="127.0.0.1")) == "image: more than 3 redirects"
    assert server.requests.count("/loop") == 4


@pytest.mark.parametrize(("target", "message"), [
    ("http://[::1]:PORT/ok", "image: address ::1 is not public"),
    ("http://[::ffff:127.0.0.2]:PORT/ok", "image: address 127.0.0.2 is not public"),
    ("http://10.0.0.7/", "image: address 10.0.0.7 is not public"),
    ("http://169.254.169.254/latest/meta-data/", "image: address 169.254.169.254 is not public"),
    ("http://metadata.example/", "image: address 169.254.169.254 is not public"),
    ("file:///etc/passwd", "image: scheme 'file' is not allowed, only http and https"),
])
async def test_redirect_from_allowlisted_server_to_a_refused_address(server, target, message, monkeypatch):
    real_connect = safe_url.connect_tcp
    attempts: list[str] = []

    async def connect(ip: str, port: int, *args, **kwargs):
        attempts.append(ip)
        assert ip == "127.0.0.1", f"tried to connect to {ip}"
        return await real_connect(ip, port, *args, **kwargs)

    monkeypatch.setattr(safe_url, "connect_tcp", connect)
    assert await refusal(fetch(server.url("/to/" + target), allowlist="127.0.0.1")) == message
    assert attempts == ["127.0.0.1"]
    assert server.requests == ["/to/" + target]


async def test_redirect_without_location_is_refused(server):
    assert await refusal(fetch(server.url("/no-location"), allowlist="127.0.0.1")) == \
        "image: redirect (HTTP 302) has no Location"


# ---------------------------------------------------------------- size and time limits


async def test_declared_body_over_max_is_refused(server):
    assert await refusal(fetch(server.url("/big-declared"), allowlist="127.0.0.1", max_bytes=1000)) == \
        "image: 100000 bytes exceeds max 1000"


async def test_chunked_body_over_max_is_refused(server):
    assert await refusal(fetch(server.url("/big-chunked"), allowlist="127.0.0.1", max_bytes=1000)) == \
        "image: more than max 1000 bytes"


async def test_compressed_body_is_limited_once_decoded(server):
    assert await refusal(fetch(server.url("/gzip-bomb"), allowlist="127.0.0.1", max_bytes=1_000_000)) == \
        "image: more than max 1000000 bytes"


@pytest.mark.parametrize("path", ["/dribble", "/silent"])
async def test_endless_slow_stream_ends_within_the_time_limit(server, path):
    started = time.monotonic()
    message = await refusal(fetch(server.url(path), allowlist="127.0.0.1", max_bytes=1_000_000, timeout_s=1.0))
    elapsed = time.monotonic() - started
    assert message == "image: no complete answer within 1 s"
    assert 0.9 <= elapsed < 2.0


# ---------------------------------------------------------------- DNS rebinding


async def test_connects_to_the_vetted_address_not_a_fresh_dns_answer(monkeypatch):
    """The name is public when checked and loopback ever after: only the vetted address is dialled."""
    answers = iter([[PUBLIC_IP]])
    lookups: list[str] = []

    async def rebinding(host: str, port: int):
        lookups.append(host)
        return [safe_url.ip_literal(a) for a in next(answers, ["127.0.0.1"])]

    dialled: list[str] = []

    async def connect(ip: str, port: int, *args, **kwargs):
        dialled.append(ip)  # never really connects: no traffic leaves loopback
        raise ConnectionRefusedError(ip)

    monkeypatch.setattr(safe_url, "resolve", rebinding)
    monkeypatch.setattr(safe_url, "connect_tcp", connect)
    message = await refusal(fetch("http://rebind.example/x.png"))
    assert message == f"image: could not connect to {PUBLIC_IP} port 80"
    assert dialled == [PUBLIC_IP]
    assert lookups == ["rebind.example"]


async def test_connection_that_lands_on_loopback_is_refused_before_sending(server, monkeypatch):
    """The check sees a public address but the connection reaches 127.0.0.1: the peer is checked."""
    real_connect = safe_url.connect_tcp

    async def hijacked(ip: str, port: int, *args, **kwargs):
        assert ip == PUBLIC_IP
        return await real_connect("127.0.0.1", server.port, *args, **kwargs)

    monkeypatch.setattr(safe_url, "connect_tcp", hijacked)
    assert await check_public_url("image", "http://public.example/x.png") is None
    assert await refusal(fetch("http://public.example/x.png")) == "image: address 127.0.0.1 is not public"
    await poll(lambda: server.connections == 1, timeout_s=5)
    assert server.requests == []


async def test_callback_posts_refuse_private_addresses_before_connecting():
    with pytest.raises(ValidationFailed) as info:
        await post_public("callback_url", "http://10.0.0.7/hook", b"{}", {}, timeout_s=1)
    assert info.value.problems == ["callback_url: address 10.0.0.7 is not public"]


@pytest.mark.parametrize(("url", "problem"), [
    ("http://10.0.0.7/cat.png", "address 10.0.0.7 is not public"),
    ("http://private.example/cat.png", "address 10.0.0.7 is not public"),
    ("http://localhost/cat.png", "address 127.0.0.1 is not public"),
    ("http://printer.local/cat.png", "host 'printer.local' does not resolve"),
    ("http://intranet/cat.png", "host 'intranet' does not resolve"),
    ("ftp://public.example/cat.png", "scheme 'ftp' is not allowed, only http and https"),
])
async def test_urls_only_passed_on_to_a_provider_are_still_refused_when_local(url: str, problem: str):
    assert await refusal(check_forwarded_url("image_urls[0]", url)) == f"image_urls[0]: {problem}"


async def test_urls_only_passed_on_to_a_provider_pass_when_they_do_not_resolve_here():
    """The provider resolves them on its own network; we never connect to them (unlike check_public_url)."""
    assert await check_forwarded_url("image_urls[0]", "https://cdn.example.net/cat.png") is None
    assert await check_forwarded_url("image_urls[0]", "http://public.example/x.png") is None
    assert await refusal(check_public_url("image", "https://cdn.example.net/cat.png")) == \
        "image: host 'cdn.example.net' does not resolve"
