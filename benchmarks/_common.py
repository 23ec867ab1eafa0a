"""What the benchmarks share: the default synthetic market's split ranges, and the best-of timer."""

import time

SPLITS = [
    "data.start_time=2021-01-01",
    "data.end_time=2024-12-31",
    "data.train_time_range=[2021-01-01,2023-06-30]",
    "data.val_time_range=[2023-07-01,2024-03-31]",
    "data.test_time_range=[2024-04-01,2024-12-31]",
]


def timed(fn, repeat: int) -> float:
    """The fastest of `repeat` calls of `fn`, in seconds (the least disturbed by the machine's other work)."""
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best
