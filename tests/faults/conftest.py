"""Fault tests reuse the training tests' overrides."""

from tests.train.conftest import train_overrides  # noqa: F401 (a fixture, made available here)
