"""Waiting on events, not on time: a thread-safe list whose readers can wait for it to grow."""
from __future__ import annotations

import threading
from typing import Generic, TypeVar

T = TypeVar("T")


class Tally(Generic[T]):
    """Items appended by worker threads; `wait_for(n)` returns once n are in (the timeout only bounds a hang)."""

    def __init__(self) -> None:
        self._items: list[T] = []
        self._grown = threading.Condition()

    def append(self, item: T) -> None:
        with self._grown:
            self._items.append(item)
            self._grown.notify_all()

    def __len__(self) -> int:
        with self._grown:
            return len(self._items)

    def items(self) -> list[T]:
        with self._grown:
            return list(self._items)

    def wait_for(self, count: int, timeout: float = 120.0) -> None:
        with self._grown:
            if not self._grown.wait_for(lambda: len(self._items) >= count, timeout):
                raise AssertionError(f"waited {timeout:.0f} s for {count} items, got {len(self._items)}")
