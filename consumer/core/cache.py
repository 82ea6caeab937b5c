"""The processor's state cache: least recently used entries go first. Pure."""

from __future__ import annotations

from collections.abc import Container, Iterable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class LruCache(Generic[K, V]):
    """A dict that forgets its least recently used entries beyond a capacity, or idle ones.

    `now` is set by the owner (the processor's clock); each use stamps the entry with it.
    Recency is the order of `_used`, a plain dict: a use takes the key out and puts it back
    at the end, which costs half of an OrderedDict's `move_to_end` beside a second dict of
    times (two uses per record: its session and its page-minute).
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.now = 0.0
        self._entries: dict[K, V] = {}
        self._used: dict[K, float] = {}
        """Key -> when it was last used, least recently used first."""

    def get(self, key: K) -> V | None:
        value = self._entries.get(key)
        if value is not None:
            used = self._used
            del used[key]
            used[key] = self.now
        return value

    def put(self, key: K, value: V) -> None:
        self._entries[key] = value
        self._used.pop(key, None)
        self._used[key] = self.now

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def absent(self, keys: Iterable[K]) -> set[K]:
        """Those of `keys` not here (one call for a delivery's keys, not one per key)."""
        entries = self._entries
        return {key for key in keys if key not in entries}

    def __len__(self) -> int:
        return len(self._entries)

    def trim(self, pinned: Container[K] = (), idle_before: float | None = None) -> int:
        """Forget the least recently used entries beyond capacity, and those unused since
        `idle_before`, never a pinned one (a state not written yet); returns how many went."""
        excess = len(self._entries) - self.capacity
        victims: list[K] = []
        for key, used_at in self._used.items():  # least recently used first
            idle = idle_before is not None and used_at < idle_before
            if len(victims) >= excess and not idle:
                break
            if key not in pinned:
                victims.append(key)
        for key in victims:
            self.discard(key)
        return len(victims)

    def discard(self, key: K) -> None:
        self._entries.pop(key, None)
        self._used.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()
        self._used.clear()
