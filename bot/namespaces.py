"""Identity namespace names as the sandbox's Identity Service gives them, kept in memory and read
again now and then, so cards name an organisation's custom namespaces as it named them."""

from __future__ import annotations

import asyncio
import logging
import time

from bot.aep.client import AepClient
from bot.aep.errors import AepError

log = logging.getLogger(__name__)

#: After a failed read, the names are asked for again after this many seconds (or the refresh
#: interval, when shorter).
_RETRY_AFTER = 300.0


class NamespaceNames:
    """Names of identity namespaces by lower-case code, from `GET /idnamespace/identities`.

    `names` is one dict for the process's life, filled in place: the card renderer holds it and
    reads whatever has arrived. Until the first read (or when Platform cannot say) it is empty
    and cards use the bot's own names (bot.cards), then the code. The list is small and names
    are not personal, so it is kept in memory, not in the cache."""

    def __init__(self, *, client: AepClient, refresh: float, deadline: float) -> None:
        self._client = client
        self._refresh = max(refresh, 1.0)
        self._deadline = deadline
        self._warned = False
        self.names: dict[str, str] = {}

    async def load(self) -> bool:
        """Read the names once; True when Platform gave them. A failure is logged once (the
        kind of error, never a value) and leaves the names as they were."""
        try:
            fresh = await self._client.namespace_names(deadline=time.monotonic() + self._deadline)
        except AepError as exc:
            if not self._warned:
                self._warned = True
                log.warning(
                    "Identity namespace names could not be read (%s); cards use the bot's own "
                    "names for the standard namespaces and codes for the others",
                    exc.kind,
                )
            return False
        self.names.clear()
        self.names.update(fresh)
        return True

    async def keep_loaded(self) -> None:
        """Read the names now and again every refresh interval, until cancelled."""
        while True:
            loaded = await self.load()
            await asyncio.sleep(self._refresh if loaded else min(self._refresh, _RETRY_AFTER))
