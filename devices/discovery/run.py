"""One discovery run: take the lease, read the tenant, evaluate, and record how the run ended."""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager

from django.utils import timezone

from autopatch_portal.tenant.connection import TenantConnection, connect
from autopatch_portal.tenant.graph import GraphError
from autopatch_portal.tenant.simulated import TenantFileError

from .. import registration_group
from ..models import DiscoveryRun
from ..remediation.results import ResultsRead, read_readiness_results
from .evaluation import apply_evaluation
from .lease import begin, release_lease
from .reading import clear_staging, read_tenant, record_ignored
from .state import DiscoveryAborted, RunState
from .writer import ConnectionThread, run_in, run_settings

log = logging.getLogger(__name__)


# A run makes and drops millions of short-lived objects (Graph pages, records, rows). Nearly all go when their last
# reference does, yet with CPython's default threshold (a collection every 700 allocations) the cyclic collector ran
# thousands of times in a first run at 100,000 devices and went over what the run held meanwhile again and again:
# 2.7 s of the interpreter's time in that run, under the GIL its threads share (gc.callbacks; bench/README.md).
# During a run it collects once every RUN_COLLECTION_EVERY allocations.
RUN_COLLECTION_EVERY = 100_000


class CollectionSpacing:
    """The cyclic collector's first threshold raised to RUN_COLLECTION_EVERY while a run goes (in this process: the
    worker's, or the command's), and put back when the last run under way ends."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.runs = 0
        self.before = gc.get_threshold()

    @contextmanager
    def __call__(self) -> Iterator[None]:
        with self.lock:
            if self.runs == 0:
                self.before = gc.get_threshold()
                gc.set_threshold(RUN_COLLECTION_EVERY, *self.before[1:])
            self.runs += 1
        try:
            yield
        finally:
            with self.lock:
                self.runs -= 1
                if self.runs == 0:
                    gc.set_threshold(*self.before)


collections_spaced = CollectionSpacing()


def run_discovery(run: DiscoveryRun, tenant: TenantConnection | None = None) -> DiscoveryRun:
    """Carry out one discovery run, recording how it ended on the run's row."""
    state = RunState(run=run, now=timezone.now())
    if not begin(run, state.now):  # another run does this one's work, and the run's row says which
        run.refresh_from_db()
        return run
    with collections_spaced():
        return discover(run, state, tenant)


def discover(run: DiscoveryRun, state: RunState, tenant: TenantConnection | None) -> DiscoveryRun:
    """The run whose lease `begin` took."""
    status = DiscoveryRun.Status.FAILED
    group_id = ""
    started = time.monotonic()
    run_settings(True)
    clear_staging()
    try:
        tenant = tenant or connect()
        with ReadinessRead(tenant, state) as readiness:
            group_id = read_tenant(tenant, state)
        readiness.record()
        read = time.monotonic()
        # The ignored members are listed (a query of the copy, and Graph for missing names) while the evaluation's
        # first queries run: after the reading, they held a run at 100,000 devices for 0.25 s with a core idle.
        graph = tenant.graph
        apply_evaluation(state, beside=lambda: record_ignored(graph, group_id, state))
        state.counts["seconds_reading"] = round(read - started, 1)
        state.counts["seconds_evaluating"] = round(time.monotonic() - read, 1)
        status = DiscoveryRun.Status.PARTIAL if state.errors else DiscoveryRun.Status.SUCCEEDED
    except (GraphError, DiscoveryAborted, TenantFileError) as exc:
        state.errors.append({"stage": "read", "message": str(exc)})
        log.warning("Discovery run %s failed: %s", run.pk, exc)
    except Exception as exc:  # recorded on the run, then raised for the worker's log
        state.errors.append({"stage": "internal", "message": f"{type(exc).__name__}: {exc}"})
        finish(run, state, status, requests_made(tenant))
        raise
    finish(run, state, status, requests_made(tenant))
    if status != DiscoveryRun.Status.FAILED:
        read_ahead(group_id)
    run.refresh_from_db()
    return run


def requests_made(tenant: TenantConnection | None) -> int:
    """The Graph requests the run made (none when it could not connect)."""
    return tenant.graph.requests_made if tenant is not None else 0


def read_ahead(group_id: str) -> None:
    """The pages' readings of the copy for the run that ended (registration_group.read_ahead). The run has ended
    and says so: a failure here is logged, and the first page view reads the copy itself."""
    try:
        registration_group.read_ahead(group_id)
    except Exception:
        log.exception("Reading the tenant copy ahead for the pages failed")


class ReadinessRead:
    """The readiness script's run states, read into readiness reports while the tenant's streams are read: a read
    that depends on none of them (a first run's 73,000 run states at 100,000 devices are 74 requests, which ran
    before the streams started). On PostgreSQL outside a transaction, in a thread with its own connection
    (writer.ConnectionThread); elsewhere before the streams, as before. Taken in (`record`) before the evaluation,
    which reads the reports."""

    def __init__(self, tenant: TenantConnection, state: RunState):
        self.tenant, self.state = tenant, state
        self.thread = ConnectionThread("discovery-readiness") if ConnectionThread.available() else None
        self.result: Future[ResultsRead] | None = None

    def __enter__(self) -> ReadinessRead:
        self.state.progress("Reading the readiness script's results")
        self.result = run_in(self.thread, read_readiness_results, self.tenant, self.state.now)
        return self

    def __exit__(self, *exc) -> None:
        if self.thread is not None:
            self.thread.close()  # once the read has ended: a run whose streams failed waits for it too

    def record(self) -> None:
        """What the read took, and what it could not, on the run."""
        assert self.result is not None, "record() comes after the read began"
        results, state = self.result.result(), self.state
        state.counts["read_run_states"] = results.read
        problems = results.rejected + results.ingest.rejected
        for problem in problems[:20]:
            state.errors.append({"stage": "readiness reports", "message": f"Report rejected: {problem}"})
        if len(problems) > 20:
            state.errors.append(
                {"stage": "readiness reports", "message": f"{len(problems) - 20} more reports rejected"}
            )
        if results.error:
            state.errors.append({"stage": "readiness reports", "message": results.error})


def finish(run: DiscoveryRun, state: RunState, status: str, graph_requests: int) -> None:
    clear_staging()
    run_settings(False)
    counts = dict(state.counts)
    counts.update({f"ignored_{kind}": n for kind, n in state.ignored_counts.items()})
    DiscoveryRun.objects.filter(pk=run.pk).update(
        status=status,
        finished_at=timezone.now(),
        progress="",
        counts=counts,
        errors=state.errors,
        ignored=state.ignored,
        graph_requests=graph_requests,
    )
    release_lease(run)
