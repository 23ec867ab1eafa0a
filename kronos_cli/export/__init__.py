"""Deployable artifacts of a tokenizer + predictor pair, each verified by reloading it in a fresh process."""
