"""Group commit: the concurrent writes of one process's threads in one transaction.

A webhook delivery is answered only once it is durably stored, so under load each
request thread used to pay a commit (a WAL flush) and a handful of statements of its
own — more database and driver work than the whole request besides. ``GroupCommit``
lets the threads that are storing at the same moment share that work: the first thread
to arrive becomes the *leader* and writes every item queued so far in one call of
``write`` (one transaction, multi-row statements), while threads that arrive meanwhile
queue up behind it. When the leader is done it wakes the threads whose items it wrote
and hands the lead to the first thread still queued, whose group is whatever queued
while the leader was writing. Nothing waits for a group to fill: a thread alone writes
at once, a group of one, exactly as before.

A failed group never fails its members for another's fault: ``write`` is called again
for each item alone, and only an item that fails alone raises, in its own thread.
Every item is written by exactly one successful ``write`` or raises: a caller that
returns from ``submit`` knows its item is committed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class _Slot(Generic[T]):
    __slots__ = ("error", "item", "lead", "wake", "written")

    def __init__(self, item: T) -> None:
        self.item = item
        self.wake = threading.Event()
        self.lead = False
        self.written = False
        self.error: BaseException | None = None


class GroupCommit(Generic[T]):
    def __init__(self, write: Callable[[list[T]], None], *, max_group: int = 64) -> None:
        self._write = write
        self._max_group = max_group
        self._lock = threading.Lock()
        self._queue: list[_Slot[T]] = []
        self._leading = False

    def submit(self, item: T) -> None:
        """Return once ``item`` is written (committed with its group); raise what
        writing it alone raised."""
        slot = _Slot(item)
        with self._lock:
            self._queue.append(slot)
            follow = self._leading
            self._leading = True
        if follow:
            slot.wake.wait()
            if not slot.lead:
                if slot.error is not None:
                    raise slot.error
                return
        self._lead(slot)

    def _lead(self, own: _Slot[T]) -> None:
        with self._lock:
            group = self._queue[: self._max_group]
            del self._queue[: self._max_group]
        # ``own`` is first in the queue when it leads: it is in its own group.
        try:
            self._write_group(group)
        finally:
            for slot in group:
                if not slot.written and slot.error is None:  # the leader was interrupted
                    slot.error = RuntimeError("group commit interrupted; nothing was written")
            with self._lock:
                successor = self._queue[0] if self._queue else None
                if successor is None:
                    self._leading = False
            for slot in group:
                if slot is not own:
                    slot.wake.set()
            if successor is not None:
                successor.lead = True
                successor.wake.set()
        if own.error is not None:
            raise own.error

    def _write_group(self, group: list[_Slot[T]]) -> None:
        try:
            self._write([slot.item for slot in group])
        except Exception as error:
            if len(group) == 1:
                group[0].error = error
                return
            for slot in group:
                try:
                    self._write([slot.item])
                except Exception as alone:
                    slot.error = alone
                else:
                    slot.written = True
            return
        for slot in group:
            slot.written = True
