"""Processes and shards: the machine a run is on, process groups, and forecasts split across workers."""
