"""Writing evaluated chunks while the next one is evaluated.

A first run at 100,000 devices spent half its evaluation waiting for PostgreSQL to write each chunk (every row goes
into the device table's indexes), with the database's core idle while Python evaluated and Python idle while the
database wrote. On PostgreSQL a thread with its own connection writes chunk N while this thread evaluates chunk
N + 1: at most one write is in flight, and each write is one transaction, as before. The chunks hold different
devices, so the evaluation of one never reads what the write of another is changing; a write that an admin's action
got ahead of comes back here to be evaluated again (`written` returns it).

Elsewhere (SQLite, or inside a transaction such as a test's, which another connection could not see) each write is
made in this thread, in order.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Generic, TypeVar

from django.db import connection

T = TypeVar("T")
R = TypeVar("R")


def relaxed_commits(on: bool) -> None:
    """On PostgreSQL, a run's many small commits need not each wait for the disk: a crash loses at most the
    last moment of a run that the next run redoes anyway (no corruption, unlike fsync=off)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"SET synchronous_commit TO {'off' if on else 'DEFAULT'}")


class ConnectionThread:
    """A thread with its own database connection, which commits as the run's does, for work that can go on while
    this thread does other work. Only where another connection sees what this one committed and nothing waits on
    this one's open transaction: PostgreSQL, outside a transaction (`available`)."""

    def __init__(self, name: str):
        self.executor = ThreadPoolExecutor(1, thread_name_prefix=name)
        self.ready = False

    @staticmethod
    def available() -> bool:
        return connection.vendor == "postgresql" and not connection.in_atomic_block

    def submit(self, work: Callable[..., R], *args: Any) -> Future[R]:
        return self.executor.submit(self._run, work, *args)

    def _run(self, work: Callable[..., R], *args: Any) -> R:
        if not self.ready:
            relaxed_commits(True)
            self.ready = True
        return work(*args)

    def close(self) -> None:
        """End the thread and close its connection, once the work submitted has ended."""
        try:
            self.executor.submit(lambda: connection.close()).result()  # the thread's own connection
        finally:
            self.executor.shutdown()


def run_in(thread: ConnectionThread | None, work: Callable[..., R], *args: Any) -> Future[R]:
    """`work(*args)` in `thread`, or here and now without one (where none is `available`): a Future either way."""
    if thread is None:
        done: Future[R] = Future()
        done.set_result(work(*args))
        return done
    return thread.submit(work, *args)


class ChunkWriter(Generic[T, R]):
    """`write(item)` makes one chunk's write and returns what it wrote; `written(item, result)` takes that in (in
    this thread) and returns a chunk to write again, or None."""

    def __init__(self, write: Callable[[T], R], written: Callable[[T, R], T | None]):
        self.write, self.written = write, written
        self.thread = ConnectionThread("discovery-writer") if ConnectionThread.available() else None
        self.pending: tuple[T, Future[R]] | None = None

    def submit(self, item: T | None) -> None:
        """Write `item` once the write in flight has been taken in."""
        self.drain()
        if item is not None:
            self.pending = self._start(item)

    def drain(self) -> None:
        """Wait for the write in flight (and the writes again it leads to) and take them in."""
        while self.pending is not None:
            item, future = self.pending
            self.pending = None
            again = self.written(item, future.result())
            if again is not None:
                self.pending = self._start(again)

    def close(self) -> None:
        """End the thread and its connection; a write still in flight completes first (its result is dropped:
        the run failed)."""
        if self.thread is not None:
            self.thread.close()
            self.thread = None

    def _start(self, item: T) -> tuple[T, Future[R]]:
        return item, run_in(self.thread, self.write, item)

    def __enter__(self) -> ChunkWriter[T, R]:
        return self

    def __exit__(self, kind, exc, traceback) -> None:
        try:
            if kind is None:
                self.drain()
        finally:
            self.close()
