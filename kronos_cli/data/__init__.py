"""Market data: sources (Qlib providers, CSV and Parquet files), pool membership, splits, the on-disk dataset."""
