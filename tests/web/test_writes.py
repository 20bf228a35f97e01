"""Writes to a client merged per loop pass: what reaches the socket, and when."""

from __future__ import annotations

import asyncio
from typing import Any

from standby.web.writes import CoalescingTransport


class Recorded(asyncio.Transport):
    """A transport that keeps what it is given (the wrapper's neighbour, not under test)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False
        self.aborted = False

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def get_write_buffer_size(self) -> int:
        return 0


async def test_writes_of_one_pass_leave_in_one_write_at_its_end() -> None:
    inner = Recorded()
    outer = CoalescingTransport(inner, asyncio.get_running_loop())
    outer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    outer.write(b"")  # nothing: no write
    outer.write(memoryview(b"ok"))
    assert inner.writes == []
    assert outer.get_write_buffer_size() == 40
    await asyncio.sleep(0)  # the pass ends
    assert inner.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"]
    outer.write(b"next")
    await asyncio.sleep(0)
    assert inner.writes[1:] == [b"next"]


async def test_close_flushes_first_and_abort_drops() -> None:
    inner = Recorded()
    outer = CoalescingTransport(inner, asyncio.get_running_loop())
    outer.writelines([b"a", b"b"])
    outer.close()
    assert inner.writes == [b"ab"] and inner.closed
    await asyncio.sleep(0)  # the scheduled flush finds nothing left
    assert inner.writes == [b"ab"]

    inner = Recorded()
    outer = CoalescingTransport(inner, asyncio.get_running_loop())
    outer.write(b"lost")
    outer.abort()
    await asyncio.sleep(0)
    assert inner.writes == [] and inner.aborted


async def test_a_real_connection_gets_every_byte_in_order() -> None:
    received = bytearray()
    done = asyncio.Event()

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.extend(await reader.read())
        done.set()
        writer.close()

    server = await asyncio.start_server(client, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
    outer = CoalescingTransport(transport, loop)
    for n in range(100):
        outer.write(b"%d," % n)
        if n % 7 == 0:
            await asyncio.sleep(0)
    outer.close()
    await done.wait()
    server.close()
    await server.wait_closed()
    assert bytes(received) == b"".join(b"%d," % n for n in range(100))
