"""The dynamic batcher on its own: batch sizes, the wait window, and isolation of a failing item."""

from __future__ import annotations

import asyncio
import time

import pytest

from kronos_cli.serve.batcher import DynamicBatcher


class Recorder:
    """A run function that records every batch it sees; items named 'poison' make a whole batch fail."""

    def __init__(self, delay: float = 0.0):
        self.batches: list[list[str]] = []
        self.delay = delay

    def __call__(self, items: list[str]) -> list[str]:
        self.batches.append(list(items))
        time.sleep(self.delay)
        if "poison" in items:
            raise ValueError("poisoned item")
        return [it.upper() for it in items]


def _run(coro):
    return asyncio.run(coro)


async def _with(batcher: DynamicBatcher, body):
    await batcher.start()
    try:
        return await body()
    finally:
        await batcher.stop()


def test_items_arriving_together_share_a_batch_up_to_max_batch():
    rec = Recorder()
    b = DynamicBatcher(rec, max_batch=4, max_wait_s=0.2)

    async def body():
        return await asyncio.gather(*(b.submit([f"r{i}"]) for i in range(10)))

    results = _run(_with(b, body))
    assert [r[0] for r in results] == [f"R{i}" for i in range(10)]
    assert [len(x) for x in rec.batches] == [4, 4, 2]
    assert b.stats.largest == 4 and b.stats.items == 10


def test_max_batch_one_runs_every_item_alone():
    rec = Recorder()
    b = DynamicBatcher(rec, max_batch=1, max_wait_s=0.2)

    async def body():
        return await asyncio.gather(*(b.submit([f"r{i}"]) for i in range(5)))

    _run(_with(b, body))
    assert [len(x) for x in rec.batches] == [1] * 5


def test_a_lone_item_waits_no_longer_than_max_wait():
    rec = Recorder()
    b = DynamicBatcher(rec, max_batch=64, max_wait_s=0.05)

    async def body():
        t0 = time.monotonic()
        await b.submit(["solo"])
        return time.monotonic() - t0

    elapsed = _run(_with(b, body))
    assert 0.04 <= elapsed < 1.0
    assert rec.batches == [["solo"]]


def test_items_queued_behind_a_running_batch_form_the_next_one():
    rec = Recorder(delay=0.2)
    b = DynamicBatcher(rec, max_batch=64, max_wait_s=0.0)

    async def body():
        first = asyncio.create_task(b.submit(["a"]))
        await asyncio.sleep(0.05)  # "a" is running now
        rest = await asyncio.gather(*(b.submit([x]) for x in "bcd"))
        return await first, rest

    _run(_with(b, body))
    assert rec.batches == [["a"], ["b", "c", "d"]]


def test_a_failing_item_fails_alone_and_the_rest_of_its_batch_succeeds():
    rec = Recorder()
    b = DynamicBatcher(rec, max_batch=8, max_wait_s=0.2)

    async def body():
        return await asyncio.gather(*(b.submit([x]) for x in ("a", "poison", "c")), return_exceptions=True)

    a, poison, c = _run(_with(b, body))
    assert a == ["A"] and c == ["C"]
    assert isinstance(poison, ValueError)
    assert rec.batches[0] == ["a", "poison", "c"]  # tried together first, then one by one
    assert b.stats.failed_items == 1


def test_a_multi_item_submission_keeps_its_order():
    rec = Recorder()
    b = DynamicBatcher(rec, max_batch=3, max_wait_s=0.01)

    async def body():
        return await b.submit([f"s{i}" for i in range(7)])

    assert _run(_with(b, body)) == [f"S{i}" for i in range(7)]
    assert max(len(x) for x in rec.batches) <= 3


def test_submit_before_start_is_an_error():
    b = DynamicBatcher(Recorder(), max_batch=2, max_wait_s=0.0)
    with pytest.raises(RuntimeError):
        _run(b.submit(["x"]))


def test_weighted_items_fill_a_batch_up_to_max_batch_and_a_heavy_one_runs_alone():
    rec = Recorder()
    weights = {"a": 3, "b": 2, "c": 1, "heavy": 10, "d": 1}
    b = DynamicBatcher(rec, max_batch=4, max_wait_s=0.2, weight=weights.__getitem__)

    async def body():
        return await asyncio.gather(*(b.submit([x]) for x in ("a", "b", "c", "heavy", "d")))

    assert [r[0] for r in _run(_with(b, body))] == ["A", "B", "C", "HEAVY", "D"]
    assert rec.batches == [["a"], ["b", "c"], ["heavy"], ["d"]]
