"""The webhook sender's HTTP/1.1 client: keep-alive connections per destination over
asyncio, with h11 doing the protocol.

Why not httpx: on the 2-core development machine an ``httpx.AsyncClient`` posting to a
local sink tops out at 400-800 requests/s whatever its ``Limits`` (its pool re-examines
every connection, with a system call each, on every request, and each request pays for
a failed ``import sniffio``), while this client, on the same h11 parser, does
4,500-7,000/s. A webhook needs little of a general client: one POST, the status, the
first bytes of the answer; no redirects, cookies, proxies or HTTP/2.

Deadlines are the caller's (``asyncio.timeout`` around ``post``); a connection whose
exchange did not finish cleanly is closed, never reused.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

import h11
import httpx

USER_AGENT = "Escalator-Notifier/0.1"
#: How much of an answer is kept (for the error log); a longer body ends the connection
#: rather than being read.
SNIPPET = 300
_DEFAULT_PORTS = {"http": 80, "https": 443}


class HttpError(Exception):
    """The exchange failed before a whole answer arrived: worth retrying."""


class ConnectError(HttpError):
    """The destination could not be reached."""


class BadDestination(Exception):
    """The request cannot be made at all (malformed URL or header): retrying won't help."""


@dataclass(frozen=True)
class Response:
    status: int
    retry_after: str | None
    snippet: str


class _Connection(asyncio.Protocol):
    """One connection; received bytes go straight into its h11 state machine, so the
    pool can tell, before reusing it, whether the server closed it or spoke out of turn."""

    def __init__(self) -> None:
        self.h11 = h11.Connection(h11.CLIENT)
        self.idle_since = 0.0
        self._transport: asyncio.WriteTransport | None = None
        self._arrived = asyncio.Event()
        self._lost: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A cast, not isinstance: uvloop's transports do not subclass asyncio's.
        self._transport = cast(asyncio.WriteTransport, transport)

    def data_received(self, data: bytes) -> None:
        self.h11.receive_data(data)
        self._arrived.set()

    def eof_received(self) -> bool:
        self.h11.receive_data(b"")
        self._arrived.set()
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = f"connection lost: {exc}" if exc else "connection closed"
        self._arrived.set()

    def clean(self) -> bool:
        """Still open, and nothing (not even an EOF) arrived since the last answer."""
        return self._lost is None and self.h11.trailing_data == (b"", False)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    async def exchange(self, request: h11.Request, body: bytes) -> tuple[Response, bool]:
        """Send one request and read the answer; also says whether the connection may
        carry another request."""
        assert self._transport is not None
        try:
            data = b"".join(self.h11.send(event) or b"" for event in (
                request, h11.Data(data=body), h11.EndOfMessage()))
        except h11.LocalProtocolError as exc:
            raise BadDestination(f"cannot form the request: {exc}") from None
        self._transport.write(data)
        status, retry_after, body = 0, None, b""
        while True:
            try:
                event = self.h11.next_event()
            except h11.RemoteProtocolError as exc:
                reason = str(exc)
                if status == 0 and self.h11.trailing_data[1]:  # EOF before any answer
                    reason = "server disconnected without answering"
                raise HttpError(f"RemoteProtocolError: {reason}") from None
            if event is h11.NEED_DATA:
                if self._lost is not None:
                    raise HttpError(f"ReadError: {self._lost}")
                self._arrived.clear()
                await self._arrived.wait()
            elif isinstance(event, h11.Response):
                status = event.status_code
                retry_after = next((v.decode("latin-1") for k, v in event.headers
                                    if k == b"retry-after"), None)
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) >= SNIPPET:  # the rest is never read
                    return Response(status, retry_after, _text(body)), False
            elif isinstance(event, h11.EndOfMessage):
                break
        reusable = self.h11.our_state is h11.DONE and self.h11.their_state is h11.DONE
        if reusable:
            self.h11.start_next_cycle()
        return Response(status, retry_after, _text(body)), reusable


class Client:
    """POSTs with keep-alive: idle connections are kept per origin and reused for up to
    ``keepalive_seconds`` (below the usual server idle timeouts, so a server rarely
    closes one under us). How many run at once is the caller's to bound."""

    def __init__(self, *, keepalive_seconds: float = 4.0) -> None:
        self._keepalive = keepalive_seconds
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._ssl: ssl.SSLContext | None = None

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> Response:
        scheme, host, port, target = _parse(url)
        idle = self._idle.setdefault((scheme, host, port), [])
        try:
            authority = f"[{host}]" if ":" in host else host.encode("idna").decode()
            if port != _DEFAULT_PORTS[scheme]:
                authority += f":{port}"
            request = h11.Request(method="POST", target=target, headers=[
                ("Host", authority), ("User-Agent", USER_AGENT),
                ("Content-Length", str(len(body))), *headers.items()])
        except (UnicodeError, h11.LocalProtocolError) as exc:
            raise BadDestination(f"cannot form the request: {exc}") from None
        connection = self._reuse(idle) or await self._connect(scheme, host, port)
        reusable = False
        try:
            response, reusable = await connection.exchange(request, body)
        finally:
            if reusable:
                connection.idle_since = time.monotonic()
                idle.append(connection)
            else:
                connection.close()
        return response

    def _reuse(self, idle: list[_Connection]) -> _Connection | None:
        expired = time.monotonic() - self._keepalive
        while idle and idle[0].idle_since < expired:  # the oldest, left over from a burst
            idle.pop(0).close()
        while idle:
            connection = idle.pop()  # the most recent is the likeliest still open
            if connection.clean():
                return connection
            connection.close()
        return None

    async def _connect(self, scheme: str, host: str, port: int) -> _Connection:
        context = None
        if scheme == "https":
            # httpx's context: the certifi bundle and SSL_CERT_FILE, as before this client.
            context = self._ssl = self._ssl or httpx.create_ssl_context()
        try:
            _, connection = await asyncio.get_running_loop().create_connection(
                _Connection, host, port, ssl=context, server_hostname=host if context else None)
        except (OSError, ssl.SSLError) as exc:
            raise ConnectError(f"ConnectError: {exc}") from None
        return connection

    def close(self) -> None:
        for idle in self._idle.values():
            for connection in idle:
                connection.close()
        self._idle.clear()


def _parse(url: str) -> tuple[str, str, int, str]:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise BadDestination(str(exc)) from None
    scheme, host = parts.scheme.lower(), parts.hostname
    if scheme not in ("http", "https") or not host:
        raise BadDestination(f"not an http(s) URL: {url}")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return scheme, host, port or _DEFAULT_PORTS[scheme], target


def _text(body: bytes) -> str:
    return body[:SNIPPET].decode(errors="replace")
