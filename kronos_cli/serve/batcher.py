"""Dynamic batching: items that arrive within `max_wait` of the first run together, up to `max_batch`.

Items may weigh more than one (a forecast with 20 sample paths is 20 rows of the model's batch); a batch
takes items in arrival order while their total weight fits, and an item heavier than `max_batch` runs alone.

Runs happen one at a time on a single worker thread, so the event loop keeps accepting requests while the
model works, and requests that arrive meanwhile form the next batch. A run that fails is retried item by
item, so one bad item never fails the others of its batch.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class _Pending(Generic[T]):
    item: T
    future: asyncio.Future
    arrived: float


@dataclass
class BatchStats:
    batches: int = 0
    items: int = 0
    failed_items: int = 0
    largest: int = 0
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
        }


class DynamicBatcher(Generic[T, R]):
    """Collects submitted items into batches for `run(items) -> results` (one result per item, in order)."""

    def __init__(
        self,
        run: Callable[[list[T]], Sequence[R]],
        max_batch: int,
        max_wait_s: float,
        weight: Callable[[T], int] = lambda _item: 1,
    ):
        if max_batch < 1:
            raise ValueError("max_batch must be >= 1")
        self._run, self.max_batch, self.max_wait_s = run, max_batch, max(0.0, max_wait_s)
        self._weight = weight
        self._queue: asyncio.Queue[_Pending[T]] | None = None
        self._carry: _Pending[T] | None = None  # taken from the queue but did not fit the last batch
        self._task: asyncio.Task | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kronos-batch")
        self.stats = BatchStats()

    @property
    def queued(self) -> int:
        return (self._queue.qsize() if self._queue is not None else 0) + (self._carry is not None)

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.create_task(self._loop(), name="kronos-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self._executor.shutdown(wait=True)

    async def submit(self, items: Sequence[T]) -> list[R]:
        """Results of `items` (each may land in a different batch); an item's failure raises its exception."""
        if self._queue is None:
            raise RuntimeError("the batcher is not running")
        loop = asyncio.get_running_loop()
        pending = [_Pending(it, loop.create_future(), time.monotonic()) for it in items]
        for p in pending:
            self._queue.put_nowait(p)
        return list(await asyncio.gather(*(p.future for p in pending)))

    async def _loop(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        while True:
            if self._carry is not None:
                first, self._carry = self._carry, None
            else:
                first = await self._queue.get()
            batch, load = [first], self._weight(first.item)
            # Wait for company until max_wait after the first item arrived (not after it was dequeued: an
            # item that waited behind a running batch has waited long enough).
            deadline = first.arrived + self.max_wait_s
            while load < self.max_batch:
                if not self._queue.empty():
                    nxt = self._queue.get_nowait()
                else:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    try:
                        nxt = await asyncio.wait_for(self._queue.get(), remaining)
                    except asyncio.TimeoutError:
                        break
                w = self._weight(nxt.item)
                if load + w > self.max_batch:
                    self._carry = nxt  # first of the next batch
                    break
                batch.append(nxt)
                load += w
            live = [p for p in batch if not p.future.done()]  # a caller that went away needs no result
            if not live:
                continue
            outcomes = await loop.run_in_executor(self._executor, self._run_isolated, [p.item for p in live])
            self.stats.record(len(live))
            for p, (ok, value) in zip(live, outcomes):
                if p.future.done():
                    continue
                if ok:
                    p.future.set_result(value)
                else:
                    self.stats.failed_items += 1
                    p.future.set_exception(value)

    def _run_isolated(self, items: list[T]) -> list[tuple[bool, Any]]:
        """(ok, result or exception) per item; when the batch fails, each item runs alone."""
        try:
            results = list(self._run(items))
            if len(results) != len(items):
                raise RuntimeError(f"batch run returned {len(results)} results for {len(items)} items")
            return [(True, r) for r in results]
        except Exception as exc:
            if len(items) == 1:
                return [(False, exc)]
            log.warning(
                "a batch of %d failed (%s: %s); running its items one by one", len(items), type(exc).__name__, exc
            )
        out: list[tuple[bool, Any]] = []
        for it in items:
            try:
                out.append((True, self._run([it])[0]))
            except Exception as exc:
                out.append((False, exc))
        return out
