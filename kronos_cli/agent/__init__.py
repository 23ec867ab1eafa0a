"""Agents' access to the model: a Model Context Protocol server over the forecasting service."""
