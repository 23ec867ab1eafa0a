"""The one error type for a user's mistakes (its message says what is wrong and what to do), and the signal
that a worker's share of a distributed job is done."""

from __future__ import annotations


class KronosError(ValueError):
    """A mistake the user can fix (bad input, bad config, missing file).

    The CLI prints the message as one line and exits with code 2. It subclasses ValueError so that code
    written against the reference implementation, which raises ValueError for bad input, keeps working.
    """

    exit_code = 2
    multiline = False  # True: a header line and one indented line per problem (a config's), printed as they are


class WorkerDone(Exception):
    """Not an error: this process's share of a distributed forecast is done and rank 0 carries on; the CLI
    exits 0."""
