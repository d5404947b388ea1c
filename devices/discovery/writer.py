"""Writing evaluated chunks while the next ones are evaluated.

A first run at 100,000 devices spent half its evaluation waiting for PostgreSQL to write each chunk (every row goes
into the device table's indexes), with the database's core idle while Python evaluated and Python idle while the
database wrote. On PostgreSQL threads with connections of their own write the chunks evaluated while this thread
evaluates the next: up to WRITES_IN_FLIGHT writes at once, each one transaction, as before. (With one in flight, a
first run's evaluation still waited 1.3 s of its 7.8 s for the write before, at 2,000 devices a chunk: a chunk's
write is as long as its evaluation.) The chunks hold different devices, so neither the evaluation of one nor the
write of another changes what a write reads or locks; a write that an admin's action got ahead of comes back here
to be evaluated again (`written` returns it), in the order the chunks were submitted.

Elsewhere (SQLite, or inside a transaction such as a test's, which another connection could not see) each write is
made in this thread, in order.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, Generic, TypeVar

from django.db import connection

T = TypeVar("T")
R = TypeVar("R")


# What a run's connections set on PostgreSQL, each for the connection's life (or until the run ends):
RUN_SETTINGS = {
    # A run's many small commits need not each wait for the disk: a crash loses at most the last moment of a run
    # that the next run redoes anyway (no corruption, unlike fsync=off).
    "synchronous_commit": "off",
    # A run plans its large statements on tables it has just filled, whose estimates can run to hundreds of
    # millions of rows: JIT then compiled the shared serial numbers' query with full optimisation, 0.23 s of its
    # 0.87 s in a first run at 100,000 devices, to run it once.
    "jit": "off",
    # The candidates' staging sorts up to a group's members (60,000 rows and 8 MB there): with the default 4 MB
    # it sorted them on disk.
    "work_mem": "32MB",
}


def run_settings(on: bool) -> None:
    """Set RUN_SETTINGS on this thread's connection (PostgreSQL), or back to the server's defaults."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            for name, value in RUN_SETTINGS.items():
                if on:
                    cursor.execute("SELECT set_config(%s, %s, false)", [name, value])
                else:
                    cursor.execute(f"RESET {name}")  # names from RUN_SETTINGS only


@contextmanager
def commits_waiting_for_disk() -> Iterator[None]:
    """While the block runs, this connection's commits wait for the disk, as they do outside a run (RUN_SETTINGS).
    VACUUM marks a page all-visible only once its rows' commits are on disk, and PostgreSQL keeps one commit LSN for
    each group of 32 transaction IDs: a commit made without waiting (an ANALYZE) beside a VACUUM keeps it from
    marking the pages whose rows' transactions share the group."""
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit TO on")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT set_config('synchronous_commit', %s, false)", [RUN_SETTINGS["synchronous_commit"]]
            )


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
            run_settings(True)
            self.ready = True
        return work(*args)

    def close(self) -> None:
        """End the thread and close its connection, once the work submitted has ended."""
        try:
            self.executor.submit(lambda: connection.close()).result()  # the thread's own connection
        finally:
            self.executor.shutdown()


@contextmanager
def meanwhile(name: str, work: Callable[..., Any], *args: Any) -> Iterator[None]:
    """`work(*args)` in a ConnectionThread while the block runs (where none is `available`, before it); what it
    raised is raised once the block has ended."""
    thread = ConnectionThread(name) if ConnectionThread.available() else None
    done = run_in(thread, work, *args)
    try:
        yield
    finally:
        if thread is not None:
            thread.close()  # once the work has ended
    done.result()


def run_in(thread: ConnectionThread | None, work: Callable[..., R], *args: Any) -> Future[R]:
    """`work(*args)` in `thread`, or here and now without one (where none is `available`): a Future either way."""
    if thread is None:
        done: Future[R] = Future()
        done.set_result(work(*args))
        return done
    return thread.submit(work, *args)


# Chunk writes at once: two keep the database writing while this thread evaluates (a first run's writes and
# evaluations take about as long each); more would only queue behind each other on two cores.
WRITES_IN_FLIGHT = 2


class ChunkWriter(Generic[T, R]):
    """`write(item)` makes one chunk's write and returns what it wrote; `written(item, result)` takes that in (in
    this thread, in the order the items were submitted) and returns a chunk to write again, or None."""

    def __init__(self, write: Callable[[T], R], written: Callable[[T, R], T | None]):
        self.write, self.written = write, written
        available = ConnectionThread.available()
        self.threads = [
            ConnectionThread(f"discovery-writer-{n}") for n in range(WRITES_IN_FLIGHT if available else 0)
        ]
        self.pending: deque[tuple[T, Future[R], ConnectionThread | None]] = deque()

    def submit(self, item: T | None) -> None:
        """Write `item` once fewer writes than the threads are in flight (taking in those that ended)."""
        while len(self.pending) >= max(len(self.threads), 1):
            self._take_in()
        if item is not None:
            self._start(item)

    def drain(self) -> None:
        """Wait for the writes in flight (and the writes again they lead to) and take them in."""
        while self.pending:
            self._take_in()

    def close(self) -> None:
        """End the threads and their connections; a write still in flight completes first (its result is dropped:
        the run failed)."""
        threads, self.threads = self.threads, []
        for thread in threads:
            thread.close()

    def _take_in(self) -> None:
        item, future, _ = self.pending.popleft()
        again = self.written(item, future.result())
        if again is not None:
            self._start(again)

    def _start(self, item: T) -> None:
        busy = [thread for _, _, thread in self.pending]
        idle = [thread for thread in self.threads if thread not in busy]
        # Without an idle thread (a write again, started while the others are in flight) it queues behind the oldest.
        thread = idle[0] if idle else busy[0] if busy else None
        self.pending.append((item, run_in(thread, self.write, item), thread))

    def __enter__(self) -> ChunkWriter[T, R]:
        return self

    def __exit__(self, kind, exc, traceback) -> None:
        try:
            if kind is None:
                self.drain()
        finally:
            self.close()
