"""A run spaces out CPython's cyclic collections while it goes (devices.discovery.run.collections_spaced) and puts the
collector's thresholds back after it: the worker's process outlives the run and runs other tasks."""

from __future__ import annotations

import gc
import threading

import pytest

from devices.discovery.reading import MANAGED
from devices.discovery.run import RUN_COLLECTION_EVERY, CollectionSpacing
from devices.models import DiscoveryRun
from devices.runs import discover_now


class ThresholdsSeen:
    """The collector's first threshold, sampled in a thread of its own while the block runs."""

    def __init__(self) -> None:
        self.seen: set[int] = set()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.sample, daemon=True)

    def sample(self) -> None:
        while not self.done.is_set():
            self.seen.add(gc.get_threshold()[0])
            self.done.wait(0.001)

    def __enter__(self) -> ThresholdsSeen:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.done.set()
        self.thread.join()


@pytest.mark.django_db(transaction=True)
def test_a_run_spaces_out_collections_and_puts_the_thresholds_back(builder, use_tenant):
    for _ in range(20):
        builder.device(report=True)
    tenant = use_tenant(builder)
    before = gc.get_threshold()
    assert before[0] != RUN_COLLECTION_EVERY

    with ThresholdsSeen() as sampled:
        assert discover_now().status == DiscoveryRun.Status.SUCCEEDED
    assert RUN_COLLECTION_EVERY in sampled.seen
    assert gc.get_threshold() == before

    tenant.inject(MANAGED, 403, times=1)  # a run that fails puts them back too
    assert discover_now().status == DiscoveryRun.Status.FAILED
    assert gc.get_threshold() == before


def test_overlapping_runs_keep_collections_spaced_until_the_last_one_ends():
    spaced = CollectionSpacing()
    before = gc.get_threshold()
    first, second = spaced(), spaced()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    assert gc.get_threshold()[0] == RUN_COLLECTION_EVERY  # the second is still under way
    second.__exit__(None, None, None)
    assert gc.get_threshold() == before
