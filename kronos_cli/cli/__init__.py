"""The command-line layer: the only package that imports Typer and prints."""
