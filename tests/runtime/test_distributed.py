"""Worker start-up: how torch elastic starts the workers, and that a real gloo pair starts in well under 3 s."""

from __future__ import annotations

import os

import pytest
import torch

from kronos_cli.runtime import distributed
from kronos_cli.runtime.distributed import Launch, start_method, threads_per_worker


def report_start(_payload) -> tuple[float | None, int]:
    """A worker: its age once it joined the group, and its intra-op threads."""
    ctx = distributed.setup(torch.device("cpu"), "gloo")
    try:
        torch.ones(64, 64) @ torch.ones(64, 64)  # a first op: OpenMP works in the worker
        return distributed.process_age(), torch.get_num_threads()
    finally:
        distributed.teardown(ctx)


def test_the_cores_are_shared_out_unless_omp_num_threads_says(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert threads_per_worker(os.cpu_count() or 1) == 1
    assert threads_per_worker(1) == (os.cpu_count() or 1)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert threads_per_worker(2) == 3


def test_one_thread_cpu_workers_are_forked_others_come_from_a_fork_server(monkeypatch):
    """A fork inherits the imports; a worker of several threads in a child forked after the parent ran OpenMP
    would hang in its first parallel region, so those (and GPU workers) start from a clean fork server."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert start_method(report_start, Launch(nproc=2)) == "fork"
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert start_method(report_start, Launch(nproc=2)) == "forkserver"
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert start_method(report_start, Launch(gpus=2)) == "forkserver"


def test_process_age_counts_from_the_process_start():
    age = distributed.process_age()
    assert age is None or 0 < age < 24 * 3600


@pytest.mark.slow  # a real elastic launch of two gloo workers (a few seconds)
def test_two_gloo_workers_start_in_under_3_seconds(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    torch.ones(512, 512) @ torch.ones(512, 512)  # this process has run OpenMP before the fork
    results = distributed.launch(report_start, None, Launch(nproc=2))
    assert sorted(results) == [0, 1]
    for joined, threads in results.values():
        assert threads == 1
        if joined is not None:
            assert joined < 3.0, f"a worker took {joined:.1f} s from its start to joining the group"
