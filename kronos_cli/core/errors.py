"""The one error type for a user's mistakes (its message says what is wrong and what to do), and the signal
that a worker's share of a distributed job is done."""

from __future__ import annotations

import reprlib


class KronosError(ValueError):
    """A mistake the user can fix (bad input, bad config, missing file).

    The CLI prints the message as one line and exits with code 2. It subclasses ValueError so that code
    written against the reference implementation, which raises ValueError for bad input, keeps working.
    """

    exit_code = 2
    multiline = False  # True: a header line and one indented line per problem (a config's), printed as they are

    def __init__(self, message: str = "", setting: str | tuple[str, ...] | None = None):
        super().__init__(message)
        # The library's names of the settings at fault (`pred_len`), as the message writes them: the CLI shows
        # the command's flags in their place (`--pred-len`), so that the library never names a flag.
        self.settings = (setting,) if isinstance(setting, str) else tuple(setting or ())


class WorkerDone(Exception):
    """Not an error: this process's share of a distributed forecast is done and rank 0 carries on; the CLI
    exits 0.

    An exception rather than a return value on purpose: a worker started by torchrun runs the whole command
    (backtest, evaluate, signals, walk-forward), and its share ends deep inside; returning would need a "not the
    main rank" branch at every level above. The CLI's group catches it once (`cli/app.py`); a library caller
    running under torchrun catches it too, or lets its non-main ranks end there."""


def excerpt(value: object, limit: int = 80) -> str:
    """The repr of a value a user gave, at most `limit` characters, built with bounded work: a 200 MB CSV field
    or a YAML alias bomb is quoted, not echoed whole (`reprlib` cuts long strings and deep or long
    containers before formatting them)."""
    short = reprlib.Repr()
    short.maxstring = short.maxother = limit
    short.maxlevel, short.maxlist, short.maxdict = 3, 6, 6
    text = short.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
