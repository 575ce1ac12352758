"""An httpx transport that answers from an in-process AepSimulator, without sockets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx

from bot.demo.simulator import AepSimulator

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


def in_process_transport(
    sim: AepSimulator, *, drip_interval: float = DRIP_INTERVAL_S
) -> httpx.AsyncBaseTransport:
    """An `httpx.MockTransport` whose async handler is `sim.handle`.

    A 'hang' fault never answers: the request waits until the caller cancels it (httpx timeouts
    do not apply to a mock transport, so callers need their own deadline, e.g. asyncio.timeout).
    A 'drip' fault answers at once, then streams the body one byte every `drip_interval` seconds.
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
        if answer.drip:
            return httpx.Response(
                answer.status,
                headers=answer.headers,
                stream=_DripStream(answer.body, drip_interval),
            )
        return httpx.Response(answer.status, headers=answer.headers, content=answer.body)

    return httpx.MockTransport(handler)
