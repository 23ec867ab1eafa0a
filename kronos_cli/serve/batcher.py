"""Dynamic batching with admission control: items that arrive within `max_wait` of the first run together.

Items may weigh more than one (a forecast with 20 sample paths is 20 rows of the model's batch); a batch
takes items of one lane in arrival order while their total weight fits `max_batch`, and an item heavier than
`max_batch` runs alone.

- **Queue limit**: `max_queue` bounds the weight waiting (not yet running). A submission that would pass it is
  refused at once with `QueueFull` (the HTTP layer answers 429 with its `retry_after_s`), unless nothing is
  waiting, so that any call the request limits allow can run.
- **Deadline**: a submission that is not answered within `timeout_s` (waiting plus running) raises
  `DeadlineExceeded`; its items leave the queue, and a running batch whose items were all abandoned stops at
  its next decode step (the run's `abandoned()` says so).
- **Abandonment**: a caller that goes away (a cancelled submission) leaves the queue the same way; an item
  abandoned before its batch starts never reaches the model.
- **Lanes** (no starvation): items go to lane 0 or 1 by `lane(item)` (the service puts long horizons in lane
  1). When both lanes have work the worker alternates between them, so a short request waits behind at most
  one long batch, however many long ones are queued.

Runs happen one at a time on a single worker thread, so the event loop keeps accepting requests while the
model works. A run that fails is retried item by item, so one bad item never fails the others of its batch.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")
LANES = (0, 1)


class QueueFull(Exception):
    """The queue cannot take the submission now; try again in `retry_after_s` seconds."""

    def __init__(self, waiting: int, weight: int, limit: int, retry_after_s: int):
        super().__init__(
            f"the server is busy: {waiting} sample paths are queued and this request adds {weight} "
            f"(the server queues at most {limit}); retry in {retry_after_s} s"
        )
        self.retry_after_s = retry_after_s


class DeadlineExceeded(Exception):
    """A submission was not answered within its deadline; its work was dropped."""


class Abandoned(Exception):
    """Raised inside a run whose every item was abandoned, to stop the model early."""


@dataclass(eq=False)  # identity: a queue removes exactly this submission
class _Pending(Generic[T]):
    item: T
    future: asyncio.Future
    arrived: float
    weight: int
    lane: int


@dataclass
class BatchStats:
    batches: int = 0
    items: int = 0
    failed_items: int = 0
    largest: int = 0
    rejected_full: int = 0  # submissions refused because the queue was full
    timed_out: int = 0  # submissions past their deadline
    abandoned: int = 0  # items whose caller left before they ran (timeouts and disconnects)
    stopped_runs: int = 0  # runs stopped early because every item of them was abandoned
    sizes: dict[int, int] = field(default_factory=dict)  # batch size -> how many batches had it

    def record(self, size: int) -> None:
        self.batches += 1
        self.items += size
        self.largest = max(self.largest, size)
        self.sizes[size] = self.sizes.get(size, 0) + 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "batches": self.batches,
            "items": self.items,
            "failed_items": self.failed_items,
            "largest_batch": self.largest,
            "mean_batch": round(self.items / self.batches, 3) if self.batches else 0.0,
            "batch_sizes": {str(k): v for k, v in sorted(self.sizes.items())},
            "rejected_queue_full": self.rejected_full,
            "timed_out": self.timed_out,
            "abandoned_items": self.abandoned,
            "stopped_runs": self.stopped_runs,
        }


class DynamicBatcher(Generic[T, R]):
    """Collects submitted items into batches for `run(items, abandoned) -> results` (one result per item, in
    order); `abandoned()` turns true when every item of the running batch has lost its caller."""

    def __init__(
        self,
        run: Callable[[list[T], Callable[[], bool]], Sequence[R]],
        max_batch: int,
        max_wait_s: float,
        weight: Callable[[T], int] = lambda _item: 1,
        lane: Callable[[T], int] = lambda _item: 0,
        max_queue: int | None = None,
        timeout_s: float | None = None,
    ):
        if max_batch < 1:
            raise ValueError("max_batch must be >= 1")
        self._run, self.max_batch, self.max_wait_s = run, max_batch, max(0.0, max_wait_s)
        self._weight, self._lane = weight, lane
        self.max_queue, self.timeout_s = max_queue, timeout_s
        self._lanes: dict[int, deque[_Pending[T]]] = {k: deque() for k in LANES}
        self._arrived: asyncio.Event | None = None
        self._last_lane = LANES[-1]
        self._task: asyncio.Task | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kronos-batch")
        self.waiting_weight = 0
        self._rate = 0.0  # weight per second of finished runs (moving average), for Retry-After
        self.stats = BatchStats()

    @property
    def queued(self) -> int:
        return sum(len(q) for q in self._lanes.values())

    async def start(self) -> None:
        self._arrived = asyncio.Event()
        self._task = asyncio.create_task(self._loop(), name="kronos-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self._executor.shutdown(wait=True)

    def retry_after_s(self) -> int:
        """Seconds until the waiting work should have run, at the recent speed (1 to 60)."""
        if self._rate <= 0:
            return 1
        return int(min(60, max(1, math.ceil(self.waiting_weight / self._rate))))

    def _admit(self, pending: list[_Pending[T]]) -> None:
        weight = sum(p.weight for p in pending)
        if self.max_queue is not None and self.waiting_weight and self.waiting_weight + weight > self.max_queue:
            self.stats.rejected_full += 1
            raise QueueFull(self.waiting_weight, weight, self.max_queue, self.retry_after_s())
        for p in pending:
            self._lanes[p.lane].append(p)
        self.waiting_weight += weight
        assert self._arrived is not None
        self._arrived.set()

    def _withdraw(self, pending: list[_Pending[T]]) -> None:
        """Take abandoned items out of the queue (those already running finish or stop on their own)."""
        for p in pending:
            queue = self._lanes[p.lane]
            if p in queue:
                queue.remove(p)
                self.waiting_weight -= p.weight
                self.stats.abandoned += 1

    async def submit(self, items: Sequence[T]) -> list[R]:
        """Results of `items` (each may land in a different batch); an item's failure raises its exception."""
        if self._arrived is None:
            raise RuntimeError("the batcher is not running")
        loop = asyncio.get_running_loop()
        now = time.monotonic()
        pending = [_Pending(it, loop.create_future(), now, self._weight(it), self._lane(it)) for it in items]
        self._admit(pending)
        gathered = asyncio.gather(*(p.future for p in pending))
        # a cancelled submission leaves the gather with a CancelledError nobody reads, which asyncio would log
        gathered.add_done_callback(lambda g: g.cancelled() or g.exception())
        try:
            return list(await asyncio.wait_for(gathered, self.timeout_s))
        except asyncio.TimeoutError:
            self.stats.timed_out += 1
            self._withdraw(pending)
            raise DeadlineExceeded(f"no answer within {self.timeout_s:g} s (the server's request timeout)") from None
        except asyncio.CancelledError:
            self._withdraw(pending)
            raise

    def _pick_lane(self) -> int | None:
        """The lane to serve next: the other one than last time when both have work."""
        ready = [k for k in LANES if self._lanes[k]]
        if not ready:
            return None
        others = [k for k in ready if k != self._last_lane]
        return others[0] if others else ready[0]

    async def _collect(self) -> list[_Pending[T]]:
        """The next batch: the first item of a lane, then more of that lane until full or its wait ends."""
        assert self._arrived is not None
        lane = self._pick_lane()
        while lane is None:
            self._arrived.clear()
            await self._arrived.wait()
            lane = self._pick_lane()
        self._last_lane = lane
        queue = self._lanes[lane]
        first = queue.popleft()
        batch, load = [first], first.weight
        # Wait for company until max_wait after the first item arrived (not after it was dequeued: an item that
        # waited behind a running batch has waited long enough).
        deadline = first.arrived + self.max_wait_s
        while load < self.max_batch:
            if queue:
                if load + queue[0].weight > self.max_batch:
                    break
                nxt = queue.popleft()
                batch.append(nxt)
                load += nxt.weight
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except asyncio.TimeoutError:
                break
        self.waiting_weight -= load
        return batch

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._collect()
            live = [p for p in batch if not p.future.done()]  # a caller that went away needs no result
            if not live:
                continue
            started = time.monotonic()
            outcomes = await loop.run_in_executor(self._executor, self._run_isolated, live)
            weight = sum(p.weight for p in live)
            speed = weight / max(time.monotonic() - started, 1e-6)
            self._rate = speed if self._rate <= 0 else 0.8 * self._rate + 0.2 * speed
            self.stats.record(len(live))
            for p, (ok, value) in zip(live, outcomes):
                if p.future.done():
                    continue
                if ok:
                    p.future.set_result(value)
                else:
                    self.stats.failed_items += 1
                    p.future.set_exception(value)

    def _run_isolated(self, live: list[_Pending[T]]) -> list[tuple[bool, Any]]:
        """(ok, result or exception) per item; when the batch fails, each item runs alone."""
        items = [p.item for p in live]

        def abandoned() -> bool:
            return all(p.future.done() for p in live)

        try:
            results = list(self._run(items, abandoned))
            if len(results) != len(items):
                raise RuntimeError(f"batch run returned {len(results)} results for {len(items)} items")
            return [(True, r) for r in results]
        except Abandoned as exc:
            self.stats.stopped_runs += 1
            return [(False, exc)] * len(items)
        except Exception as exc:
            if len(items) == 1:
                return [(False, exc)]
            log.warning(
                "a batch of %d failed (%s: %s); running its items one by one", len(items), type(exc).__name__, exc
            )
        out: list[tuple[bool, Any]] = []
        for p in live:
            try:
                out.append((True, self._run([p.item], lambda p=p: p.future.done())[0]))
            except Exception as exc:
                out.append((False, exc))
        return out
