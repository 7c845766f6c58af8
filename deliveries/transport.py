"""The one outbound HTTP module: every request to a tenant's URL goes through `post`.

One pooled keep-alive session per worker process; no redirects; connect and read timeouts plus a
wall-clock deadline while the body streams; the body read only up to a cap; the target's addresses
checked against the network policy as each connection opens, and the connection made to the
address that was checked, directly or through a CONNECT tunnel of the egress proxy.
"""

from __future__ import annotations

import email.utils
import enum
import http.client
import os
import re
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import certifi
import urllib3
import urllib3.response
import urllib3.util.connection
from django.conf import settings
from django.utils import timezone

from deliveries.watchdog import watchdog
from subscriptions.addresses import BlockedAddressError, IPAddress, resolve_allowed
from subscriptions.validators import url_points_at_hookline

STORED_BODY_CHARS = 4096
MAX_CONNECT_TIMEOUT = 5.0


@dataclass(frozen=True)
class TransportResult:
    """What one HTTP attempt produced: a response, or an error kind with a message."""

    duration_ms: float
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""
    error_kind: str = ""
    error_message: str = ""

    @property
    def retry_after(self) -> float | None:
        return parse_retry_after(self.headers.get("retry-after"), now=timezone.now())


_DELAY_SECONDS = re.compile(r"\d+(\.\d+)?", re.ASCII)


def parse_retry_after(value: str | None, *, now: datetime) -> float | None:
    """Seconds to wait from a `Retry-After` header, as of `now`; None when absent or garbage.

    Both forms of RFC 9110 count: delay-seconds (`120`) and an HTTP-date
    (`Wed, 21 Oct 2026 07:28:00 GMT`). A date already past means "now" (0). The retry policy
    caps whatever comes out of here.
    """
    if not value:
        return None
    value = value.strip()
    if _DELAY_SECONDS.fullmatch(value):
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000": an HTTP-date is always GMT
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


if TYPE_CHECKING:
    _Connection = urllib3.connection.HTTPConnection  # what the mixins below are mixed into
else:
    _Connection = object


class _CheckedConnectionMixin(_Connection):
    """Connect only to addresses the network policy allows, checked as the socket is opened.

    The name is resolved here, once, and the socket goes to the address that was checked, so a
    DNS answer that changes between a check and the connection (rebinding) cannot slip through.
    The Host header, TLS SNI and certificate checks still use the name.
    """

    def _new_conn(self) -> socket.socket:
        addresses = resolve_allowed(self._dns_host, self.port)
        last_error: OSError | None = None
        for address in addresses:
            try:
                sock = urllib3.util.connection.create_connection(
                    (str(address), self.port),
                    self.timeout,
                    source_address=self.source_address,
                    socket_options=self.socket_options,
                )
            except TimeoutError as error:
                raise urllib3.exceptions.ConnectTimeoutError(
                    self, f"Connection to {self.host} timed out."
                ) from error
            except OSError as error:
                last_error = error
                continue
            return sock
        raise urllib3.exceptions.NewConnectionError(
            self, f"Failed to establish a new connection: {last_error}"
        )

    def getresponse(self) -> urllib3.response.HTTPResponse:  # type: ignore[override]  # as urllib3
        # The status line and headers must arrive before the attempt's deadline, however slowly
        # they drip; the body has its own check in _read_capped.
        deadline = getattr(_attempt_deadline, "at", None)
        if deadline is None or self.sock is None:
            return super().getresponse()
        alarm = watchdog.arm(self.sock, deadline)
        try:
            return super().getresponse()
        finally:
            watchdog.disarm(alarm)


class _CheckedHTTPConnection(_CheckedConnectionMixin, urllib3.connection.HTTPConnection):
    pass


class _CheckedHTTPSConnection(_CheckedConnectionMixin, urllib3.connection.HTTPSConnection):
    pass


class _CheckedHTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _CheckedHTTPConnection


class _CheckedHTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _CheckedHTTPSConnection


class _TunnelledConnectionMixin(_CheckedConnectionMixin):
    """Through WEBHOOKS_EGRESS_PROXY: the proxy is asked to CONNECT to the checked address.

    The name is resolved and checked here, as for a direct connection, and the proxy is given the
    address, never the name: a proxy that resolved the name again could be steered to a private
    address by DNS rebinding. The tunnel then carries the request as a direct socket would, plain
    http included: the Host header, TLS SNI and certificate checks use the name.
    """

    def _new_conn(self) -> socket.socket:
        addresses = resolve_allowed(self._dns_host, self.port)
        proxy = urllib3.util.parse_url(settings.WEBHOOKS_EGRESS_PROXY)
        refusals: list[str] = []
        for address in addresses:
            sock = self._connect_to_proxy(proxy)
            try:
                status_line = _open_tunnel(sock, address, self.port, proxy, self.timeout)
            except TimeoutError as error:
                sock.close()
                raise urllib3.exceptions.ConnectTimeoutError(
                    self, f"The egress proxy did not open a tunnel to {self.host} in time."
                ) from error
            except OSError as error:
                sock.close()
                raise urllib3.exceptions.NewConnectionError(
                    self, f"Failed to open a tunnel through the egress proxy: {error}"
                ) from error
            if status_line is None:
                sock.settimeout(self.timeout)  # the TLS handshake gets the connect timeout afresh
                return sock
            sock.close()
            refusals.append(f"{_authority(address, self.port)}: {status_line}")
        raise urllib3.exceptions.NewConnectionError(
            self, f"The egress proxy refused the tunnel to {'; '.join(refusals)}"
        )

    def _connect_to_proxy(self, proxy: urllib3.util.Url) -> socket.socket:
        try:
            return urllib3.util.connection.create_connection(
                (proxy.host or "", proxy.port or 80),
                self.timeout,
                source_address=self.source_address,
                socket_options=self.socket_options,
            )
        except TimeoutError as error:
            raise urllib3.exceptions.ConnectTimeoutError(
                self, "Connection to the egress proxy timed out."
            ) from error
        except OSError as error:
            raise urllib3.exceptions.NewConnectionError(
                self, f"Failed to connect to the egress proxy: {error}"
            ) from error


class _TunnelledHTTPConnection(_TunnelledConnectionMixin, urllib3.connection.HTTPConnection):
    pass


class _TunnelledHTTPSConnection(_TunnelledConnectionMixin, urllib3.connection.HTTPSConnection):
    pass


class _TunnelledHTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _TunnelledHTTPConnection


class _TunnelledHTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _TunnelledHTTPSConnection


# A proxy's answer to CONNECT is a status line and a few headers.
MAX_TUNNEL_REPLY = 16 * 1024


def _open_tunnel(
    sock: socket.socket,
    address: IPAddress,
    port: int,
    proxy: urllib3.util.Url,
    timeout: float | None,
) -> str | None:
    """Ask the proxy on `sock` to CONNECT to `address`; None once open, else its status line.

    Raises OSError (TimeoutError included) when the proxy does not answer in HTTP in time.
    """
    authority = _authority(address, port)
    request = f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n"
    if proxy.auth:
        credentials = urllib3.util.make_headers(proxy_basic_auth=urllib.parse.unquote(proxy.auth))
        request += f"Proxy-Authorization: {credentials['proxy-authorization']}\r\n"
    give_up = time.monotonic() + (timeout or MAX_CONNECT_TIMEOUT)
    sock.settimeout(max(0.001, give_up - time.monotonic()))
    sock.sendall((request + "\r\n").encode("latin-1"))
    reply = _read_tunnel_reply(sock, give_up)
    status_line = reply.split(b"\r\n", 1)[0].decode("latin-1")
    version, _, rest = status_line.partition(" ")
    if not version.startswith("HTTP/1.") or not rest[:3].isdigit():
        raise OSError(f"the egress proxy did not answer in HTTP: {status_line[:80]!r}")
    return None if rest[:3] == "200" else status_line


def _read_tunnel_reply(sock: socket.socket, give_up: float) -> bytes:
    """The reply's head, read up to its blank line and not a byte past it: what follows belongs
    to the tunnel (peeked first, so the TLS handshake finds its bytes where it expects them)."""
    head = b""
    while True:
        remaining = give_up - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no answer to CONNECT in time")
        sock.settimeout(remaining)
        peeked = sock.recv(4096, socket.MSG_PEEK)
        if not peeked:
            raise OSError("the egress proxy closed the connection")
        end = (head + peeked).find(b"\r\n\r\n")
        if end != -1:
            return head + sock.recv(end + 4 - len(head))
        head += sock.recv(len(peeked))
        if len(head) > MAX_TUNNEL_REPLY:
            raise OSError("the egress proxy's answer to CONNECT is too long")


def _authority(address: IPAddress, port: int) -> str:
    return f"[{address}]:{port}" if address.version == 6 else f"{address}:{port}"


# Hosts kept with open connections, and idle connections kept per host.
POOLED_HOSTS = 100
CONNECTIONS_PER_HOST = 10

_attempt_deadline = threading.local()
_pools: urllib3.PoolManager | None = None
_pools_key: tuple[int, str] | None = None


def _pool_manager() -> urllib3.PoolManager:
    """The process's keep-alive connection pools, one per target host.

    urllib3 directly rather than through `requests`: measured on loopback, `requests`' own
    per-request work (merging settings, hooks, cookies, building its response) took more time
    than the rest of the delivery.
    """
    # Pools must not cross a fork: their sockets would be shared between processes.
    global _pools, _pools_key
    key = (os.getpid(), settings.WEBHOOKS_EGRESS_PROXY)
    if _pools is None or _pools_key != key:
        options: dict[str, Any] = {
            "num_pools": POOLED_HOSTS,
            "maxsize": CONNECTIONS_PER_HOST,
            "cert_reqs": "CERT_REQUIRED",
            "ca_certs": certifi.where(),
        }
        _pools = urllib3.PoolManager(**options)
        if settings.WEBHOOKS_EGRESS_PROXY:
            # Pools per target host, as without a proxy: each connection is a tunnel to one.
            _pools.pool_classes_by_scheme = {
                "http": _TunnelledHTTPPool,
                "https": _TunnelledHTTPSPool,
            }
        else:
            _pools.pool_classes_by_scheme = {"http": _CheckedHTTPPool, "https": _CheckedHTTPSPool}
        _pools_key = key
    return _pools


def forget_connections() -> None:
    """Close every pooled connection; the next request opens a fresh one."""
    global _pools
    if _pools is not None:
        _pools.clear()
    _pools = None


def post(
    url: str, body: bytes, headers: dict[str, str], *, timeout: float | None = None
) -> TransportResult:
    """POST `body` to `url` once. Never raises for network trouble: it is in the result.

    `timeout` (seconds for the whole request) defaults to WEBHOOKS_TIMEOUT.
    """
    started = time.monotonic()
    timeout = settings.WEBHOOKS_TIMEOUT if timeout is None else timeout
    try:
        _check_target(url)
        return _send(url, body, headers, started, timeout)
    except BlockedAddressError as error:
        return _failure(started, "blocked", str(error))
    except urllib3.exceptions.SSLError as error:
        return _failure(started, "tls", f"TLS error: {_root_cause(error)}")
    except urllib3.exceptions.NewConnectionError as error:  # before its base, ConnectTimeoutError
        return _failure(started, "connection", f"connection failed: {_root_cause(error)}")
    except urllib3.exceptions.TimeoutError:
        return _failure(started, "timeout", f"no response within {timeout:g} s")
    except (urllib3.exceptions.ProtocolError, urllib3.exceptions.ProxyError) as error:
        if time.monotonic() - started >= timeout:
            # The watchdog cut a response that was still dripping in at the deadline.
            return _failure(started, "timeout", f"no response within {timeout:g} s")
        if _caused_by(error, _malformed_response):  # e.g. too many or too long headers
            return _failure(started, "invalid_response", f"invalid response: {_root_cause(error)}")
        return _failure(started, "connection", f"connection failed: {_root_cause(error)}")
    except urllib3.exceptions.HTTPError as error:
        return _failure(started, "invalid_response", f"invalid response: {_root_cause(error)}")
    except (UnicodeError, ValueError) as error:
        return _failure(started, "invalid_request", f"the request cannot be sent: {error}")


def _check_target(url: str) -> None:
    # Parsed by urllib3, the parser that picks the host the connection goes to.
    try:
        parts = urllib3.util.parse_url(url)
    except urllib3.exceptions.LocationParseError as error:
        raise BlockedAddressError(f"not a valid URL: {error}") from None
    if parts.scheme not in ("http", "https") or not parts.host:
        raise BlockedAddressError(f"not an http(s) URL with a host: {url}")
    if parts.scheme == "http" and settings.WEBHOOKS_REQUIRE_HTTPS:
        raise BlockedAddressError("plain http:// is refused while WEBHOOKS_REQUIRE_HTTPS is on")
    if url_points_at_hookline(url):
        # Stored before the check at registration existed, or ALLOWED_HOSTS changed since.
        raise BlockedAddressError(
            f"{parts.host} is one of Hookline's own ALLOWED_HOSTS: only its test inbox may be "
            "a target there"
        )


def _send(
    url: str, body: bytes, headers: dict[str, str], started: float, timeout: float
) -> TransportResult:
    _attempt_deadline.at = started + timeout
    try:
        response = _pool_manager().urlopen(
            "POST",
            url,
            body=body,
            headers=headers,
            timeout=urllib3.Timeout(connect=min(MAX_CONNECT_TIMEOUT, timeout), read=timeout),
            redirect=False,
            retries=False,
            preload_content=False,
            decode_content=False,
        )
    finally:
        _attempt_deadline.at = None
    state = _Read.CUT_BY_DEADLINE
    try:
        excerpt, state = _read_capped(response, deadline=started + timeout)
    finally:
        if state is not _Read.TO_THE_END:
            # Bytes left unread would be taken for the next response on this connection.
            response.close()
        response.release_conn()
    if state is _Read.CUT_BY_DEADLINE:
        return _failure(started, "timeout", f"response body not received within {timeout:g} s")
    return _response_result(response, excerpt, started)


class _Read(enum.Enum):
    TO_THE_END = "to the end"
    UP_TO_THE_CAP = "up to the cap"
    CUT_BY_DEADLINE = "cut by the deadline"


def _read_capped(response: urllib3.BaseHTTPResponse, *, deadline: float) -> tuple[bytes, _Read]:
    """Read the body up to the cap, each read returning as soon as any bytes arrive.

    A read may wait only until the deadline, so a receiver that drips one byte at a time cannot
    hold the worker past it.
    """
    limit = settings.WEBHOOKS_RESPONSE_BODY_LIMIT
    sock = getattr(response.connection, "sock", None)
    received = bytearray()
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return bytes(received), _Read.CUT_BY_DEADLINE
        if sock is not None:
            sock.settimeout(remaining)
        try:
            # One byte past the cap tells a body that ends there from a longer one.
            chunk = response.read1(min(8192, limit + 1 - len(received)))
        except (TimeoutError, urllib3.exceptions.ReadTimeoutError):
            return bytes(received), _Read.CUT_BY_DEADLINE
        if not chunk:
            return bytes(received), _Read.TO_THE_END
        received += chunk
        if len(received) > limit:
            return bytes(received[:limit]), _Read.UP_TO_THE_CAP


def _response_result(
    response: urllib3.BaseHTTPResponse, body: bytes, started: float
) -> TransportResult:
    status = response.status
    error_kind, error_message = "", ""
    if not 200 <= status < 300:
        error_kind = "http_status"
        error_message = f"HTTP {status}"
        if 300 <= status < 400:
            location = response.headers.get("location", "")
            error_message = f"HTTP {status}: redirect to {location or '(no location)'} not followed"
    return TransportResult(
        duration_ms=_elapsed_ms(started),
        status=status,
        headers={name.lower(): response.headers[name] for name in response.headers},
        # PostgreSQL text cannot hold NUL, and a receiver's body may.
        body=body.decode("utf-8", errors="replace")[:STORED_BODY_CHARS].replace("\x00", "\ufffd"),
        error_kind=error_kind,
        error_message=error_message,
    )


def _failure(started: float, kind: str, message: str) -> TransportResult:
    return TransportResult(
        duration_ms=_elapsed_ms(started), error_kind=kind, error_message=message.replace("\x00", "")
    )


def _elapsed_ms(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 3)


def _malformed_response(error: BaseException) -> bool:
    # RemoteDisconnected is an HTTPException too, but a dropped connection is not malformed.
    return isinstance(error, http.client.HTTPException) and not isinstance(error, ConnectionError)


def _caused_by(error: BaseException, matches: Callable[[BaseException], bool]) -> bool:
    """Whether a cause in the chain `matches` (requests and urllib3 wrap causes in args)."""
    seen: BaseException | None = error
    for _ in range(20):  # chains are short; a cycle must not loop forever
        if seen is None:
            return False
        if matches(seen):
            return True
        wrapped = seen.args[0] if seen.args and isinstance(seen.args[0], BaseException) else None
        seen = seen.__context__ or wrapped
    return False


def _root_cause(error: BaseException) -> str:
    while error.__context__ is not None and error.__context__ is not error:
        error = error.__context__
    return str(error) or type(error).__name__
