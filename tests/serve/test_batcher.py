"""The dynamic batcher on its own: batch sizes, the wait window, isolation of a failing item, the queue limit,
deadlines, abandoned callers and the two lanes."""

from __future__ import annotations

import asyncio
import time

import pytest

from kronos_cli.serve.batcher import Abandoned, DeadlineExceeded, DynamicBatcher, QueueFull


class Recorder:
    """A run function that records every batch it sees; items named 'poison' make a whole batch fail. It works
    in `steps` slices of `delay / steps` and, like the model's decode loop, stops when every caller left."""

    def __init__(self, delay: float = 0.0, steps: int = 1):
        self.batches: list[list[str]] = []
        self.delay, self.steps = delay, steps
        self.stopped = 0

    def __call__(self, items: list[str], abandoned=lambda: False) -> list[str]:
        self.batches.append(list(items))
        for _ in range(self.steps):
            time.sleep(self.delay / self.steps)
            if abandoned():
                self.stopped += 1
                raise Abandoned("gone")
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


def test_a_full_queue_refuses_at_once_with_a_retry_hint_and_an_empty_one_takes_any_call():
    rec = Recorder(delay=0.3)
    b = DynamicBatcher(rec, max_batch=2, max_wait_s=0.0, weight=lambda it: 3 if it == "heavy" else 1, max_queue=3)

    async def body():
        running = asyncio.ensure_future(b.submit(["a", "b"]))  # taken at once: the queue is empty again
        await asyncio.sleep(0.05)
        queued = asyncio.ensure_future(b.submit(["c", "d", "e"]))  # waits: 3 paths, the limit
        await asyncio.sleep(0.01)
        with pytest.raises(QueueFull) as full:
            await b.submit(["f"])
        assert full.value.retry_after_s >= 1 and "the server queues at most 3" in str(full.value)
        assert b.waiting_weight == 3 and b.stats.rejected_full == 1
        await asyncio.gather(running, queued)
        return await b.submit(["heavy"])  # heavier than the whole queue, admitted to an empty one

    assert _run(_with(b, body)) == ["HEAVY"]


def test_a_queued_request_past_its_deadline_is_withdrawn_unrun():
    rec = Recorder(delay=0.6)  # one step: it cannot stop early
    b = DynamicBatcher(rec, max_batch=1, max_wait_s=0.0, timeout_s=0.3)

    async def body():
        first = asyncio.ensure_future(b.submit(["slow"]))
        await asyncio.sleep(0.01)
        with pytest.raises(DeadlineExceeded, match="request timeout"):
            await b.submit(["queued"])
        assert b.waiting_weight == 0
        with pytest.raises(DeadlineExceeded):
            await first
        await asyncio.sleep(0.4)

    _run(_with(b, body))
    assert rec.batches == [["slow"]]
    assert b.stats.timed_out == 2 and b.stats.abandoned == 1


def test_a_running_batch_whose_callers_all_left_stops_at_its_next_step():
    rec = Recorder(delay=2.0, steps=40)
    b = DynamicBatcher(rec, max_batch=4, max_wait_s=0.0, timeout_s=0.2)

    async def body():
        with pytest.raises(DeadlineExceeded):
            await b.submit(["slow"])
        await asyncio.sleep(0.2)

    t0 = time.monotonic()
    _run(_with(b, body))
    assert time.monotonic() - t0 < 1.0  # far less than the 2 s the run would take
    assert rec.stopped == 1 and b.stats.stopped_runs == 1


def test_a_caller_that_goes_away_before_its_batch_starts_never_reaches_the_model():
    rec = Recorder(delay=0.3)
    b = DynamicBatcher(rec, max_batch=1, max_wait_s=0.0)

    async def body():
        first = asyncio.ensure_future(b.submit(["first"]))
        await asyncio.sleep(0.01)
        gone = asyncio.ensure_future(b.submit(["gone"]))
        await asyncio.sleep(0.01)
        gone.cancel()
        await asyncio.sleep(0.01)
        assert b.waiting_weight == 0
        return await first, await b.submit(["after"])

    assert _run(_with(b, body)) == (["FIRST"], ["AFTER"])
    assert rec.batches == [["first"], ["after"]]


def test_short_requests_wait_behind_at_most_one_long_batch():
    rec = Recorder(delay=0.05)
    b = DynamicBatcher(rec, max_batch=1, max_wait_s=0.0, lane=lambda it: int(it.startswith("long")))

    async def body():
        longs = [asyncio.ensure_future(b.submit([f"long{i}"])) for i in range(6)]
        await asyncio.sleep(0.01)
        shorts = [asyncio.ensure_future(b.submit([f"short{i}"])) for i in range(2)]
        await asyncio.gather(*longs, *shorts)

    _run(_with(b, body))
    order = [x[0] for x in rec.batches]
    assert order[:5] == ["long0", "short0", "long1", "short1", "long2"]
