"""Loaded estimators, bounded by bytes, least recently used out; one load per key at a time."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

V = TypeVar("V")


@dataclass
class _Entry(Generic[V]):
    value: V
    size: int


class ByteBudgetCache(Generic[V]):
    """An LRU cache whose capacity is a byte budget.

    `get_or_load` runs the loader once per key even when many callers ask at once (they all
    await the same future); a failed load is not cached.
    """

    def __init__(self, max_bytes: int, on_evict: Callable[[Hashable], None] | None = None) -> None:
        self.max_bytes = max_bytes
        self.on_evict = on_evict  # told of each key dropped to make room
        self.bytes = 0
        self._entries: OrderedDict[Hashable, _Entry[V]] = OrderedDict()
        self._loading: dict[Hashable, asyncio.Future[tuple[V, int]]] = {}
        self.loads = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        self._entries.move_to_end(key)
        return entry.value

    async def get_or_load(self, key: Hashable, load: Callable[[], Awaitable[tuple[V, int]]]) -> V:
        found = self.get(key)
        if found is not None:
            return found
        pending = self._loading.get(key)
        if pending is None:
            pending = asyncio.get_running_loop().create_future()
            self._loading[key] = pending
            try:
                value, size = await load()
            except BaseException as exc:
                pending.set_exception(exc)
                pending.exception()  # retrieved here, so a load nobody else awaits logs nothing
                raise
            finally:
                self._loading.pop(key, None)
            pending.set_result((value, size))
            self._put(key, value, size)
            self.loads += 1
            return value
        value, _ = await asyncio.shield(pending)
        return value

    def _put(self, key: Hashable, value: V, size: int) -> None:
        if size > self.max_bytes:
            return  # larger than the whole budget: serve it, don't keep it
        old = self._entries.pop(key, None)
        if old is not None:
            self.bytes -= old.size
        self._entries[key] = _Entry(value, size)
        self.bytes += size
        while self.bytes > self.max_bytes and self._entries:
            evicted_key, evicted = self._entries.popitem(last=False)
            self.bytes -= evicted.size
            if self.on_evict is not None:
                self.on_evict(evicted_key)

    def discard(self, predicate: Callable[[Hashable], bool]) -> int:
        stale = [k for k in self._entries if predicate(k)]
        for key in stale:
            self.bytes -= self._entries.pop(key).size
        return len(stale)

    def clear(self) -> None:
        self._entries.clear()
        self.bytes = 0
