"""One HTTP connection: uvicorn's httptools protocol, with two changes.

- A response's head and body leave in one write. uvicorn writes them separately and uvloop sends each at once: two
  system calls and two wake-ups of the client per answer, a large share of a one-row request's cost.
- The idle timeout (--idle-timeout, uvicorn's keep-alive timeout) also holds before the first request: uvicorn arms
  it only after a response, so a connection that never sends anything would otherwise stay open for ever.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class OneWrite:
    """The connection's transport, except that a response's head is held until its body is written and both go
    out in one write (one system call, one wake-up of the client), at the latest by the end of the loop step."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._held: bytes | None = None
        self._loop = asyncio.get_running_loop()

    def write(self, data: bytes) -> None:
        if self._held is not None:
            head, self._held = self._held, None
            self._transport.writelines((head, data))  # one writev: a large body is not copied
        elif data.endswith(b"\r\n\r\n") and data.startswith(b"HTTP/1.1 "):
            self._held = data
            self._loop.call_soon(self.flush)  # a head with no body after it (100 Continue, HEAD) still goes out
        else:
            self._transport.write(data)

    def flush(self) -> None:
        head, self._held = self._held, None
        if head is not None and not self._transport.is_closing():  # the client may have left meanwhile
            self._transport.write(head)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class Connection(HttpToolsProtocol):
    """uvicorn's httptools protocol over OneWrite, its idle timer armed from the connection's first moment."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(OneWrite(transport))  # type: ignore[arg-type]
        self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive, self.timeout_keep_alive_handler)
