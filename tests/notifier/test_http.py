"""The webhook HTTP client against a real socket server that answers scripted bytes:
keep-alive reuse, what ends a connection, and which failures are worth a retry."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from escalator.notifier.http import SNIPPET, BadDestination, Client, ConnectError, HttpError
from tests.support import free_port

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


@dataclass
class Server:
    """Answers each request with the next scripted reply (raw bytes; ``None`` closes the
    connection without answering), counting connections and requests."""

    replies: list[bytes | None] = field(default_factory=list)
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)
    port: int = field(default_factory=free_port)

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
                     ) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:"))
                self.requests.append(head + await reader.readexactly(length))
                reply = self.replies.pop(0) if self.replies else OK
                if reply is None:
                    break
                writer.write(reply)
                await writer.drain()
        except asyncio.IncompleteReadError:
            pass  # the client hung up
        finally:
            writer.close()


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    script = Server()
    listener = await asyncio.start_server(script.handle, "127.0.0.1", script.port)
    yield script
    listener.close()


async def test_one_connection_carries_many_posts_until_the_server_ends_it(server: Server
                                                                          ) -> None:
    server.replies = [OK, b"HTTP/1.1 503 Busy\r\nRetry-After: 7\r\nContent-Length: 4\r\n\r\nbusy",
                      b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", OK]
    client = Client()
    try:
        first = await client.post(server.url("/hook?x=1"), b'{"a": 1}',
                                  {"Content-Type": "application/json", "webhook-id": "msg_1"})
        busy = await client.post(server.url(), b"{}", {})
        closing = await client.post(server.url(), b"{}", {})
        assert server.connections == 1
        after = await client.post(server.url(), b"{}", {})
    finally:
        client.close()
    assert (first.status, first.snippet) == (200, "ok")
    assert (busy.status, busy.retry_after, busy.snippet) == (503, "7", "busy")
    assert closing.status == 200 and after.status == 200
    assert server.connections == 2  # "Connection: close" was honoured
    head = server.requests[0].decode()
    assert head.startswith("POST /hook?x=1 HTTP/1.1\r\n")
    assert f"host: 127.0.0.1:{server.port}\r\n" in head.lower()
    assert "webhook-id: msg_1\r\n" in head and head.endswith('\r\n\r\n{"a": 1}')


async def test_long_and_chunked_answers(server: Server) -> None:
    long_body = b"x" * 10_000
    server.replies = [
        b"HTTP/1.1 400 Bad\r\nContent-Length: %d\r\n\r\n" % len(long_body) + long_body,
        b"HTTP/1.1 500 Oops\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"4\r\nfail\r\n3\r\ned!\r\n0\r\n\r\n",
        OK,
    ]
    client = Client()
    try:
        long = await client.post(server.url(), b"{}", {})
        chunked = await client.post(server.url(), b"{}", {})
        await client.post(server.url(), b"{}", {})
    finally:
        client.close()
    assert long.status == 400 and long.snippet == "x" * SNIPPET
    assert chunked.status == 500 and chunked.snippet == "failed!"
    # The long answer was not read to its end, so its connection was not reused; the
    # chunked one was read whole, so the next request went on the same connection.
    assert server.connections == 2


async def test_failures_say_whether_a_retry_can_help(server: Server) -> None:
    server.replies = [None]
    client = Client()
    try:
        with pytest.raises(HttpError, match="disconnected without answering"):
            await client.post(server.url(), b"{}", {})
        with pytest.raises(ConnectError, match="ConnectError"):
            await client.post(f"http://127.0.0.1:{free_port()}/hook", b"{}", {})
        with pytest.raises(BadDestination):
            await client.post("ftp://127.0.0.1/hook", b"{}", {})
        with pytest.raises(BadDestination):
            await client.post("http://127.0.0.1:99999/hook", b"{}", {})
        with pytest.raises(BadDestination):
            await client.post(server.url(), b"{}", {"X-Injected": "a\r\nEvil: 1"})
        assert (await client.post(server.url(), b"{}", {})).status == 200
    finally:
        client.close()
    assert not issubclass(BadDestination, HttpError)
