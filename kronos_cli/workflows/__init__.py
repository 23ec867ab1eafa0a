"""Jobs that chain commands: the pipeline, the demo and rebuilding a run's report."""
