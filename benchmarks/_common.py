"""What the benchmarks share: the default synthetic market's split ranges."""

SPLITS = [
    "data.start_time=2021-01-01",
    "data.end_time=2024-12-31",
    "data.train_time_range=[2021-01-01,2023-06-30]",
    "data.val_time_range=[2023-07-01,2024-03-31]",
    "data.test_time_range=[2024-04-01,2024-12-31]",
]
