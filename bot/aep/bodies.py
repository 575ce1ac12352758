"""Reading IMS and Platform answers into memory, never past a size limit."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from bot.aep.errors import ResponseTooLarge
from bot.settings import DEFAULT_AEP_MAX_RESPONSE_BYTES

DEFAULT_MAX_RESPONSE_BYTES = DEFAULT_AEP_MAX_RESPONSE_BYTES


@dataclass(frozen=True, slots=True)
class Answer:
    """An answer read whole: its status, headers and (decoded) body."""

    status: int
    headers: httpx.Headers
    body: bytes


async def fetch(
    http: httpx.AsyncClient, request: httpx.Request, *, limit: int, source: str
) -> Answer:
    """Send `request` and read its answer, at most `limit` bytes of body.

    Past the limit (or when Content-Length announces more) reading stops, the connection is
    dropped with the rest unread, and ResponseTooLarge names `source` ("Adobe Experience
    Platform"). The limit counts decoded bytes, so a compressed body cannot hide its size.
    httpx's errors (timeouts, broken connections) pass through unchanged.
    """
    response = await http.send(request, stream=True)
    try:
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise _too_large(response, request, limit, source)
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > limit:
                raise _too_large(response, request, limit, source)
            chunks.append(chunk)
        return Answer(status=response.status_code, headers=response.headers, body=b"".join(chunks))
    finally:
        # Closing a half-read answer closes its connection: the unread rest is never fetched.
        await response.aclose()


def _too_large(
    response: httpx.Response, request: httpx.Request, limit: int, source: str
) -> ResponseTooLarge:
    return ResponseTooLarge(
        f"{source} answered with more than {_size(limit)}, too large for the bot to read "
        "(the limit is AEP_MAX_RESPONSE_BYTES). If the answer is a profile, narrow the card's "
        "fields; otherwise raise the limit.",
        status=response.status_code,
        request_id=request.headers.get("x-request-id"),
    )


def _size(count: int) -> str:
    if count >= 1024 * 1024:
        return f"{count / (1024 * 1024):.3g} MB"
    if count >= 1024:
        return f"{count / 1024:.3g} KB"
    return f"{count} bytes"
