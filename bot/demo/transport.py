"""An httpx transport that answers from an in-process AepSimulator, without sockets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx

from bot.demo.simulator import AepSimulator, flood_pieces

DRIP_INTERVAL_S = 0.2


class _DripStream(httpx.AsyncByteStream):
    """A response body that arrives one byte every `interval` seconds."""

    def __init__(self, body: bytes, interval: float) -> None:
        self._body = body
        self._interval = interval

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for index in range(len(self._body)):
            await asyncio.sleep(self._interval)
            yield self._body[index : index + 1]


class _FloodStream(httpx.AsyncByteStream):
    """A body that goes on for `size` bytes after `head`, counted in `sim.flood_sent` as the
    client takes each piece: a client that stops reading stops the flood."""

    def __init__(self, sim: AepSimulator, head: bytes, size: int) -> None:
        self._sim = sim
        self._head = head
        self._size = size

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self._head
        for piece in flood_pieces(self._size):
            self._sim.flood_sent += len(piece)
            yield piece
            await asyncio.sleep(0)


def in_process_transport(
    sim: AepSimulator, *, drip_interval: float = DRIP_INTERVAL_S
) -> httpx.AsyncBaseTransport:
    """An `httpx.MockTransport` whose async handler is `sim.handle`.

    A 'hang' fault never answers: the request waits until the caller cancels it (httpx timeouts
    do not apply to a mock transport, so callers need their own deadline, e.g. asyncio.timeout).
    A 'drip' fault answers at once, then streams the body one byte every `drip_interval` seconds.
    A 'flood' fault streams its body only as fast as the client reads it.
    """

    async def handler(request: httpx.Request) -> httpx.Response:
        answer = await sim.handle(
            request.method,
            request.url.path,
            request.url.params.multi_items(),
            request.headers,
            request.content,
        )
        if answer.hang:
            await asyncio.Event().wait()
        if answer.flood:
            return httpx.Response(
                answer.status,
                headers=answer.headers,
                stream=_FloodStream(sim, answer.body, answer.flood),
            )
        if answer.drip:
            return httpx.Response(
                answer.status,
                headers=answer.headers,
                stream=_DripStream(answer.body, drip_interval),
            )
        return httpx.Response(answer.status, headers=answer.headers, content=answer.body)

    return httpx.MockTransport(handler)
