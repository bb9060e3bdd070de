"""Which model server an episode talks to: the one mechanism for a single process and for a collection.

An episode keeps the server it is given for its whole run: consecutive requests of an episode share
their prefix, which that server has cached (SGLang's router routes on text and ignores images, so the
client side must do the pinning). A new episode goes to the server with the fewest episodes, then the
fewest requests in flight, the first listed among equals.

A :class:`ModelClient` holds a pool and pins each episode it is asked about; ``collect``'s driver
leases a server per episode before it hands the episode to a worker or a Ray actor, which then talks
to that server alone.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

#: Pins kept at most; the oldest are forgotten first (an episode that never released its server).
MAX_PINS = 4096


class ServerPool:
    """Model server URLs, the episodes pinned to each and the requests in flight on each."""

    def __init__(self, urls: Sequence[str] = ()) -> None:
        self.urls = list(dict.fromkeys(u.rstrip("/") for u in urls))
        self._episodes = dict.fromkeys(self.urls, 0)
        self._inflight = dict.fromkeys(self.urls, 0)
        self._pins: OrderedDict[str, str] = OrderedDict()
        self._anonymous = itertools.count()

    @property
    def load(self) -> dict[str, int]:
        """Episodes pinned to each server."""
        return dict(self._episodes)

    def pick(self, episode: str | None = None) -> str:
        """The server for ``episode``: the one it is pinned to, else the least loaded (and pin it).
        Without an episode, the least loaded, pinning nothing."""
        if not self.urls:
            raise ValueError("the pool has no model servers")
        if episode is not None and episode in self._pins:
            self._pins.move_to_end(episode)
            return self._pins[episode]
        url = min(self.urls, key=lambda u: (self._episodes[u], self._inflight[u]))
        if episode is not None:
            self._pins[episode] = url
            self._episodes[url] += 1
            if len(self._pins) > MAX_PINS:
                _, old = self._pins.popitem(last=False)
                self._episodes[old] -= 1
        return url

    def release(self, episode: str) -> None:
        """Unpin ``episode`` (it ended), so that its server counts as less loaded."""
        url = self._pins.pop(episode, None)
        if url is not None:
            self._episodes[url] -= 1

    @contextmanager
    def lease(self, episode: str | None = None) -> Iterator[str | None]:
        """A server for one episode, pinned until the block ends; None when the pool is empty."""
        if not self.urls:
            yield None
            return
        key = episode if episode is not None else f"\0lease-{next(self._anonymous)}"
        try:
            yield self.pick(key)
        finally:
            self.release(key)

    @contextmanager
    def request(self, url: str) -> Iterator[None]:
        """Count one request in flight on ``url`` while the block runs."""
        self._inflight[url] += 1
        try:
            yield
        finally:
            self._inflight[url] -= 1
