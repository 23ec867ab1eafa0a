"""Experiment tracking beside the local metrics file: MLflow (a local file store by default, or a server)."""
