"""A dataset's `manifest.json`: what `kronos prep` wrote, sealed by a digest over every field, and the check that
the arrays in the directory are the ones it records.

Each array is recorded with its dtype, shape, size and SHA-256 (of its data, after the `.npy` header). Reading a
dataset refuses a manifest whose fields were edited (the digest), one whose fields do not add up (symbols' rows,
window lengths, clip), an array the manifest does not list, and an array whose header or bytes differ from what it
records; the header is read before the array, so an object array is refused unread. A digest only proves that
nothing changed by accident: what someone re-hashes on purpose is caught by the checks of the arrays' contents in
`store`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from kronos_cli.core.errors import KronosError, excerpt
from kronos_cli.core.io import file_digest, finite, write_text
from kronos_cli.market.bars import FEATURES

MANIFEST = "manifest.json"
FORMAT = "kronos-dataset"
# 3: the arrays' sizes and SHA-256; 4: their dtypes and shapes, and a digest of the manifest; 5: no timestamps or
# stamps arrays (the calendar's, through calpos, now int32), each SHA-256 that of the data after the .npy header
FORMAT_VERSION = 5
SPLITS = ("train", "val", "test")
ORIGIN_SPLITS = ("val", "test")
REBUILD = "run `kronos prep` again to rebuild the dataset"

# Every array a dataset holds and readers open: its dtype and the shape of one row.
ARRAYS: dict[str, tuple[np.dtype, tuple[int, ...]]] = {
    "features": (np.dtype(np.float32), (len(FEATURES),)),  # raw values
    "calpos": (np.dtype(np.int32), ()),  # the row's bar in `calendar` (its time and stamps are the bar's)
    "calendar": (np.dtype(np.int64), ()),  # ns: the market's bars, then projected ones
    **{f"windows_{s}": (np.dtype(np.int64), (2,)) for s in SPLITS},  # start row, symbol index
    **{f"origins_{s}": (np.dtype(np.int64), (2,)) for s in ORIGIN_SPLITS},  # origin row, symbol index
}


def npy_header(file: Path) -> tuple[tuple[int, ...], bool, np.dtype]:
    """(shape, fortran_order, dtype) from a `.npy` file's header, without reading its data or unpickling."""
    with open(file, "rb") as f:
        return _read_header(f)


def _read_header(f) -> tuple[tuple[int, ...], bool, np.dtype]:
    major, _ = np.lib.format.read_magic(f)
    if major not in (1, 2):
        raise ValueError(f"unsupported .npy format version {major}")
    read = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
    return read(f)


def array_digest(file: Path) -> str:
    """SHA-256 of a `.npy` file's data, the bytes after its header (whose dtype and shape the manifest records
    apart): what `NpyAppender` computes as it writes; remembered while the file's size and mtime stay the same."""
    with open(file, "rb") as f:  # the data's offset from the header's length field, not a parse of the header:
        major, _ = np.lib.format.read_magic(f)  # CPython 3.11's ast is not safe across the threads that hash
        size = 2 if major == 1 else 4
        start = 8 + size + int.from_bytes(f.read(size), "little")
    return file_digest(file, start)


def array_entries(directory: Path, digests: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """{array name: {"bytes", "sha256", "dtype", "shape"}} of every `.npy` in a dataset directory; `digests`:
    those known already (hashed as they were written), the others are read."""
    files = sorted(Path(directory).glob("*.npy"))
    unknown = [f for f in files if f.stem not in (digests or {})]
    with ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:  # hashlib releases the GIL: arrays side by side
        known = {**(digests or {}), **{f.stem: d for f, d in zip(unknown, pool.map(array_digest, unknown))}}
    out = {}
    for f in files:
        shape, _, dtype = npy_header(f)
        descr = np.lib.format.dtype_to_descr(dtype)
        out[f.stem] = {"bytes": f.stat().st_size, "sha256": known[f.stem], "dtype": descr, "shape": list(shape)}
    return out


def manifest_digest(manifest: dict) -> str:
    """SHA-256 of every field but the digest itself, in canonical JSON."""
    fields = {k: v for k, v in manifest.items() if k != "digest"}
    text = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def write_manifest(directory: Path, manifest: dict, digests: dict[str, str] | None = None) -> dict:
    """Record the directory's arrays in `manifest` (`digests`: the SHA-256 of those hashed as they were written),
    seal it with its digest and write it; returns what was written (the JSON form, so that the digest is that of
    what a reader will read)."""
    entries = array_entries(directory, digests)
    plain = json.loads(json.dumps(finite({**manifest, "arrays": entries}), default=str))
    sealed = {**plain, "digest": manifest_digest(plain)}
    write_text(Path(directory) / MANIFEST, manifest_text(sealed))
    return sealed


def manifest_text(manifest: dict) -> str:
    """A field a line, each value on one line: json's C encoder writes it (an indented document takes its pure
    Python one, a tenth of a second per thousand symbols)."""
    fields = (f"  {json.dumps(k)}: {json.dumps(v, allow_nan=False)}" for k, v in manifest.items())
    return "{\n" + ",\n".join(fields) + "\n}\n"


def read_manifest(path: str | os.PathLike) -> dict:
    """A dataset's manifest, its digest and fields checked, or a one-line error saying to rebuild it."""
    directory = Path(path).expanduser()
    mf = directory / MANIFEST
    if not mf.is_file():
        raise KronosError(f"no dataset at {directory} (no {MANIFEST}); run `kronos prep -c CONFIG` first")
    try:
        manifest = json.loads(mf.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise KronosError(f"{mf} is corrupt ({exc}); {REBUILD}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or manifest.get("version") != FORMAT_VERSION:
        raise KronosError(
            f"{directory} is not a kronos dataset of format version {FORMAT_VERSION}; rebuild it with `kronos prep`"
        )
    try:
        sealed = manifest.get("digest") == manifest_digest(manifest)
    except ValueError:  # a NaN or infinity: JSON that `kronos prep` never writes
        sealed = False
    if not sealed:
        raise KronosError(f"{mf} was changed after `kronos prep` wrote it (its digest does not match); {REBUILD}")
    problem = _fields_problem(manifest)
    if problem:
        raise KronosError(f"{mf}: {problem}; {REBUILD}")
    return manifest


def _whole(value: object, lo: int = 0) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= lo


def _fields_problem(m: dict) -> str | None:
    """What is wrong with the fields readers rely on, or None."""
    for key in ("lookback_window", "predict_window", "window", "rows"):
        if not _whole(m.get(key), 0 if key == "rows" else 1):
            return f"{key} is {excerpt(m.get(key))}, not a whole number"
    if m["window"] != m["lookback_window"] + m["predict_window"] + 1:
        return f"window ({m['window']}) is not lookback_window + predict_window + 1"
    clip = m.get("clip")
    if isinstance(clip, bool) or not isinstance(clip, (int, float)) or not (math.isfinite(clip) and clip > 0):
        return f"clip is {excerpt(clip)}, not a finite number > 0"
    calendar = m.get("calendar")
    if not isinstance(calendar, dict) or not _whole(calendar.get("bars"), 1):
        return "calendar.bars is not a whole number of market bars"
    if not isinstance(m.get("config_hash"), str):
        return "config_hash is missing"
    arrays = m.get("arrays")
    entry = {"bytes": int, "sha256": str, "dtype": str, "shape": list}
    if not isinstance(arrays, dict) or not all(
        isinstance(e, dict) and all(isinstance(e.get(k), t) for k, t in entry.items()) for e in arrays.values()
    ):
        return "arrays is not a table of each array's bytes, sha256, dtype and shape"
    return _symbols_problem(m.get("symbols"), m["rows"])


def _symbols_problem(symbols: object, rows: int) -> str | None:
    """The symbols must own consecutive runs of rows that together make up the dataset's rows."""
    if not isinstance(symbols, list) or not symbols:
        return "symbols is not a list of the symbols kept"
    end = 0
    for i, s in enumerate(symbols):
        if not isinstance(s, dict) or not isinstance(s.get("name"), str):
            return f"symbols[{i}] has no name"
        for key, lo in (("first_row", 0), ("rows", 1)):
            if not _whole(s.get(key), lo):
                return f"symbols[{i}].{key} is {excerpt(s.get(key))}, not a whole number >= {lo}"
        if s["first_row"] != end:
            return f"symbols[{i}].first_row is {s['first_row']}, but the symbols before it end at row {end}"
        end += s["rows"]
    if end != rows:
        return f"the symbols' rows add up to {end}, but the dataset has {rows} rows"
    return None


def verify_arrays(directory: Path, manifest: dict) -> None:
    """Every array readers open is listed, and every listed array is there with its recorded dtype, shape, size and
    SHA-256 (and the dtype and row shape it must have), or a one-line error."""
    listed = manifest["arrays"]
    unlisted = [name for name in ARRAYS if name not in listed]
    if unlisted:
        raise KronosError(
            f"dataset array {directory / f'{unlisted[0]}.npy'} is not listed in {MANIFEST}, so nothing vouches for "
            f"it; {REBUILD}"
        )
    for name, want in listed.items():
        file = directory / f"{name}.npy"
        problem = _array_problem(file, want, ARRAYS.get(name))
        if problem:
            raise KronosError(f"dataset array {file} {problem}; {REBUILD}")


def _array_problem(file: Path, want: dict, schema: tuple[np.dtype, tuple[int, ...]] | None) -> str | None:
    if not file.is_file():
        return "is missing"
    try:
        shape, fortran, dtype = npy_header(file)
    except (OSError, ValueError) as exc:
        return f"is not a readable .npy array ({str(exc)[:80]})"
    descr = np.lib.format.dtype_to_descr(dtype)
    if schema is not None and (dtype != schema[0] or shape[1:] != schema[1] or fortran):
        return (
            f"holds {dtype} rows of shape {shape[1:]}, not the {schema[0]} rows of shape {schema[1]} "
            f"`kronos prep` writes"
        )
    if descr != want["dtype"] or list(shape) != want["shape"]:
        return f"holds {descr} of shape {list(shape)}, the manifest records {want['dtype']} of shape {want['shape']}"
    if file.stat().st_size != want["bytes"]:
        return f"has {file.stat().st_size} bytes, the manifest records {want['bytes']} (truncated or replaced)"
    if array_digest(file) != want["sha256"]:
        return "does not match the SHA-256 the manifest records (changed since `kronos prep`)"
    return None
