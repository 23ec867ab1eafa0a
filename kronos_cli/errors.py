"""The one error type for a user's mistakes; its message says what is wrong and what to do."""

from __future__ import annotations


class KronosError(ValueError):
    """A mistake the user can fix (bad input, bad config, missing file).

    The CLI prints the message as one line and exits with code 2. It subclasses ValueError so that code
    written against the reference implementation, which raises ValueError for bad input, keeps working.
    """

    exit_code = 2
