"""`json.loads` in slices: the same value, parsed as many small C calls rather than one, so that other threads (the
server's event loop) get the interpreter between them.

json.loads holds the GIL for its whole run: 125 ms for an 8 MB body of 90,000 bars, during which the event loop,
though the parse runs on a worker thread, answers nothing. Here the walk through arrays, and through the objects
that hold arrays, is Python (which lets the GIL go every few milliseconds), and each smaller value (a bar, a
number) is parsed by json's own C scanner. An object is walked when a `[` comes before its first `}` (it may hold
a long array); whatever that guess, the value is the same. A document the walk cannot read is handed to json.loads,
which raises the error it always raised (or, should the walk be stricter than json, returns the value).
"""

from __future__ import annotations

import json
import re
from typing import Any

_SPACE = re.compile(r"[ \t\n\r]*")
_BLANK = frozenset(" \t\n\r")
_DECODER = json.JSONDecoder()
_SCAN = json.scanner.make_scanner(_DECODER)
LOOKAHEAD = 256  # characters searched for `[` before an object's first `}`


class _Malformed(Exception):
    pass


def loads(raw: bytes | str) -> Any:
    """json.loads(raw), with the interpreter released between the parts of a large document."""
    text = raw if isinstance(raw, str) else raw.decode(json.detect_encoding(raw), "surrogatepass")
    try:
        if text.startswith("\ufeff"):
            raise _Malformed
        value, end = _Walk(text).value(_SPACE.match(text, 0).end())
        if _SPACE.match(text, end).end() != len(text):
            raise _Malformed
        return value
    except (_Malformed, StopIteration, ValueError, IndexError, RecursionError):
        return json.loads(text)


class _Walk:
    def __init__(self, text: str):
        self.text = text
        self.keys: dict[str, str] = {}  # one str per distinct key, as json's own decoder keeps them

    def space(self, i: int) -> int:
        """The index of the first non-space character from `i` (compact JSON has none: no regex then)."""
        return _SPACE.match(self.text, i).end() if self.text[i : i + 1] in _BLANK else i

    def value(self, i: int) -> tuple[Any, int]:
        c = self.text[i : i + 1]
        if c == "[":
            return self.array(i + 1)
        if c == "{":
            brace = self.text.find("}", i, i + LOOKAHEAD)
            if self.text.find("[", i, i + LOOKAHEAD if brace < 0 else brace) >= 0:
                return self.object(i + 1)
        return _SCAN(self.text, i)  # a scalar, or an object of scalars: one C call

    def array(self, i: int) -> tuple[list, int]:
        out: list = []
        i = self.space(i)
        if self.text[i : i + 1] == "]":
            return out, i + 1
        while True:
            item, i = self.value(i)
            out.append(item)
            i = self.space(i)
            c, i = self.text[i : i + 1], i + 1
            if c == "]":
                return out, i
            if c != ",":
                raise _Malformed
            i = self.space(i)

    def object(self, i: int) -> tuple[dict, int]:
        out: dict = {}
        i = self.space(i)
        if self.text[i : i + 1] == "}":
            return out, i + 1
        while True:
            if self.text[i : i + 1] != '"':
                raise _Malformed
            key, i = json.decoder.scanstring(self.text, i + 1, True)
            key = self.keys.setdefault(key, key)
            i = self.space(i)
            if self.text[i : i + 1] != ":":
                raise _Malformed
            out[key], i = self.value(self.space(i + 1))
            i = self.space(i)
            c, i = self.text[i : i + 1], i + 1
            if c == "}":
                return out, i
            if c != ",":
                raise _Malformed
            i = self.space(i)
