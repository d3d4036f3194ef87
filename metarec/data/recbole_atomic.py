"""Validated text readers shared by every loader, and the RecBole atomic-file format.

Every reader here raises :class:`~metarec.errors.DataError` naming the file and the 1-based line of the first
problem (wrong column count, non-integer id, unparseable number, bad JSON line, truncated gzip, empty or missing
file) -- never a bare pandas traceback. Parsing goes through pandas' C reader for speed; only when a check fails is
the file scanned line by line to find the offending line.

RecBole atomic files (``.inter`` / ``.item`` / ``.user``) are tab-separated with one header line of
``name:type`` fields, type one of ``token``, ``token_seq``, ``float``, ``float_seq``.
"""
from __future__ import annotations

import csv
import gzip
import io
import json
import zlib
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pandas as pd

from metarec.errors import DataError

ATOMIC_TYPES = ("token", "token_seq", "float", "float_seq")


# ---------------------------------------------------------------------------------------------------------------
# plain text
# ---------------------------------------------------------------------------------------------------------------
def read_text(path: Path, encoding: str = "utf-8") -> str:
    """The whole file as text; DataError for a missing, empty or undecodable file (with the line of a bad byte)."""
    path = Path(path)
    if not path.is_file():
        raise DataError("file not found", path)
    data = path.read_bytes()
    if not data.strip():
        raise DataError("file is empty", path, 1)
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise DataError(f"not valid {encoding} text (byte {data[e.start]:#04x})", path, line) from None


def _split_lines(body: str) -> list[str]:
    # str.splitlines would also split on \x1c, \u2028 ... which pandas does not; match pandas' idea of a line
    return [ln[:-1] if ln.endswith("\r") else ln for ln in body.split("\n")]


def _sep_name(sep: str) -> str:
    return {"\t": "tab", " ": "space", "|": "pipe", ",": "comma", "\x1f": "'::'"}.get(sep, repr(sep))


def _n_fields(line: str, sep: str) -> int:
    return len(line.split()) if sep == " " else line.count(sep) + 1


def row_line(body: str, row: int, first_line: int = 1) -> int:
    """1-based line number of data row ``row`` (0-based, blank lines skipped) of ``body`` whose first line is
    line ``first_line`` of the file."""
    seen = -1
    for k, ln in enumerate(_split_lines(body)):
        if ln.strip() == "":
            continue
        seen += 1
        if seen == row:
            return first_line + k
    return first_line + max(0, len(_split_lines(body)) - 1)


def _scan_columns(path, body: str, sep: str, ncols: int | None, first_line: int, what: str = "columns"):
    """Raise DataError at the first non-blank line whose field count differs from ``ncols``."""
    for k, ln in enumerate(_split_lines(body)):
        if ln.strip() == "":
            continue
        n = _n_fields(ln, sep)
        if ncols is None:
            ncols = n
        elif n != ncols:
            raise DataError(f"expected {ncols} {_sep_name(sep)}-separated {what}, found {n}", path, first_line + k)


def read_table(path: Path, columns: Sequence[str] | None, *, sep: str = "\t", header: int = 0,
               encoding: str = "utf-8", ints: Sequence[str] = (), floats: Sequence[str] = (),
               nonempty: Sequence[str] = ()) -> pd.DataFrame:
    """Read a delimited table into a frame of strings, then validate and convert the named columns.

    ``columns``: expected column names (their number is enforced on every line); ``None`` takes them from the
    first header line (``header`` must then be >= 1). ``header``: number of header lines to skip. ``sep``: a
    single character, ``" "`` (any run of whitespace) or ``"::"``. ``ints`` -> int64, ``floats`` -> float64
    (NaN/inf rejected), ``nonempty`` -> must not be "". Blank lines are ignored.
    """
    path = Path(path)
    text = read_text(path, encoding)
    if sep == "::":
        text, sep = text.replace("::", "\x1f"), "\x1f"
    lines_head = text.split("\n", header) if header else [text]
    if header and len(lines_head) <= header:
        raise DataError("file has a header but no data rows", path, header + 1)
    body = lines_head[-1]
    first_line = header + 1
    if columns is None:
        if not header:
            raise ValueError("columns=None needs a header line")
        columns = [c.strip() for c in lines_head[0].rstrip("\r").split(sep)]
    columns = list(columns)
    k = len(columns)
    if not body.strip():
        raise DataError("file has no data rows", path, first_line)
    try:
        df = pd.read_csv(io.StringIO(body), sep=r"\s+" if sep == " " else sep, header=None, dtype=str,
                         keep_default_na=False, na_filter=False, quoting=csv.QUOTE_NONE, engine="c",
                         skip_blank_lines=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError):
        _scan_columns(path, body, sep, k, first_line)
        raise DataError("could not parse file", path)  # pragma: no cover - the scan finds the line
    if df.shape[1] != k or (sep != " " and body.count(sep) != len(df) * (k - 1)):
        _scan_columns(path, body, sep, k, first_line)
        if df.shape[1] != k:  # pragma: no cover
            raise DataError(f"expected {k} columns, found {df.shape[1]}", path, first_line)
    if sep == " " and df.shape[1] == k and df.iloc[:, -1].eq("").any():
        _scan_columns(path, body, sep, k, first_line)
    df.columns = columns
    for c in nonempty:
        bad = df[c].eq("").to_numpy()
        if bad.any():
            r = int(np.flatnonzero(bad)[0])
            raise DataError(f"column {c!r} is empty", path, row_line(body, r, first_line))
    for c in ints:
        df[c] = to_int(df[c], c, path, body, first_line)
    for c in floats:
        df[c] = to_float(df[c], c, path, body, first_line)
    return df


def to_int(s: pd.Series, name: str, path, body: str, first_line: int) -> pd.Series:
    try:
        return s.astype(np.int64)
    except (ValueError, TypeError, OverflowError):
        num = pd.to_numeric(s, errors="coerce")
        bad = num.isna() | (num != np.floor(num)) | ~np.isfinite(num)
        r = int(np.flatnonzero(bad.to_numpy())[0]) if bad.any() else 0
        raise DataError(f"column {name!r}: {s.iloc[r]!r} is not an integer", path,
                        row_line(body, r, first_line)) from None


def to_float(s: pd.Series, name: str, path, body: str, first_line: int) -> pd.Series:
    num = pd.to_numeric(s, errors="coerce")
    bad = ~np.isfinite(num.to_numpy(dtype=np.float64))
    if bad.any():
        r = int(np.flatnonzero(bad)[0])
        raise DataError(f"column {name!r}: {s.iloc[r]!r} is not a number", path, row_line(body, r, first_line))
    return num.astype(np.float64)


def read_id_lists(path: Path, *, min_len: int = 1, encoding: str = "utf-8") -> Iterator[tuple[int, list[int]]]:
    """Lines of whitespace-separated integers (``user item item ...``): yields ``(line_number, ints)``; blank
    lines are skipped. DataError at the first non-integer token or a line shorter than ``min_len``."""
    text = read_text(path, encoding)
    for k, ln in enumerate(_split_lines(text), start=1):
        parts = ln.split()
        if not parts:
            continue
        try:
            ids = [int(p) for p in parts]
        except ValueError:
            bad = next(p for p in parts if not _is_int(p))
            raise DataError(f"{bad!r} is not an integer id", path, k) from None
        if len(ids) < min_len:
            raise DataError(f"expected at least {min_len} whitespace-separated ids, found {len(ids)}", path, k)
        yield k, ids


def _is_int(tok: str) -> bool:
    try:
        int(tok)
        return True
    except ValueError:
        return False


# ---------------------------------------------------------------------------------------------------------------
# JSON
# ---------------------------------------------------------------------------------------------------------------
def read_json(path: Path, encoding: str = "utf-8"):
    """One JSON document (e.g. S3-Rec's item2attributes.json); DataError with the line of a syntax error."""
    text = read_text(path, encoding)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(f"invalid JSON: {e.msg} (column {e.colno})", path, e.lineno) from None


def iter_json_lines(path: Path, encoding: str = "utf-8") -> Iterator[tuple[int, dict]]:
    """JSON-lines, plain or gzip'd (``.gz``): yields ``(line_number, object)``. DataError for a bad JSON line, a
    truncated or corrupt gzip stream (at the line being read), or a file without any record."""
    path = Path(path)
    if not path.is_file():
        raise DataError("file not found", path)
    if path.stat().st_size == 0:
        raise DataError("file is empty", path, 1)
    opener = gzip.open if path.name.endswith(".gz") else open
    k = 0
    n = 0
    try:
        with opener(path, "rt", encoding=encoding) as fh:
            for k, ln in enumerate(fh, start=1):
                if not ln.strip():
                    continue
                try:
                    obj = json.loads(ln)
                except json.JSONDecodeError as e:
                    raise DataError(f"invalid JSON: {e.msg} (column {e.colno})", path, k) from None
                if not isinstance(obj, dict):
                    raise DataError(f"expected a JSON object, found {type(obj).__name__}", path, k)
                n += 1
                yield k, obj
    except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as e:
        if isinstance(e, DataError):  # pragma: no cover - DataError is not an OSError, kept for clarity
            raise
        reason = "truncated gzip stream" if isinstance(e, EOFError) else f"corrupt gzip stream ({e})"
        raise DataError(f"{reason} while reading this line", path, k + 1) from None
    except UnicodeDecodeError as e:
        raise DataError(f"not valid {encoding} text ({e.reason})", path, k + 1) from None
    if n == 0:
        raise DataError("file is empty (no JSON records)", path, 1)


# ---------------------------------------------------------------------------------------------------------------
# RecBole atomic files
# ---------------------------------------------------------------------------------------------------------------
def read_atomic(path: Path, required: Sequence[str] = (), *, ints: Sequence[str] = (),
                encoding: str = "utf-8") -> pd.DataFrame:
    """Read a RecBole atomic file. Columns are renamed to the bare field name (``user_id:token`` -> ``user_id``);
    ``float`` fields become float64 (validated), ``ints`` (token fields holding integer ids) int64, everything
    else stays str. ``required`` fields must exist."""
    path = Path(path)
    text = read_text(path, encoding)
    head = text.split("\n", 1)[0].rstrip("\r")
    names, types = [], []
    for field in head.split("\t"):
        field = field.strip()
        name, _, typ = field.partition(":")
        if typ not in ATOMIC_TYPES:
            raise DataError(f"header field {field!r} is not 'name:type' with type in {'/'.join(ATOMIC_TYPES)}",
                            path, 1)
        names.append(name)
        types.append(typ)
    missing = [r for r in required if r not in names]
    if missing:
        raise DataError(f"header lacks field(s) {', '.join(missing)} (has {', '.join(names)})", path, 1)
    floats = [n for n, t in zip(names, types) if t == "float" and n not in ints]
    return read_table(path, names, sep="\t", header=1, encoding=encoding, floats=floats, ints=ints,
                      nonempty=[n for n in required if n in names and types[names.index(n)] != "token_seq"])


def load_recbole_ml100k(folder: Path, name: str = "ml-100k"):
    """MovieLens-100K in RecBole's atomic layout (ml-100k.inter/.item/.user, as shipped in the recbole wheel)."""
    from metarec.data.movielens import finish_ml100k  # shared feature conventions

    folder = Path(folder)
    inter = read_atomic(folder / "ml-100k.inter", ("user_id", "item_id", "rating", "timestamp"),
                        ints=("user_id", "item_id"))
    inter["timestamp"] = inter["timestamp"].astype(np.int64)
    items = read_atomic(folder / "ml-100k.item", ("item_id", "movie_title", "release_year", "class"))
    items["title"] = items["movie_title"]
    items["year"] = pd.to_numeric(items["release_year"], errors="coerce")
    items["genres"] = items["class"].str.split()
    users = read_atomic(folder / "ml-100k.user", ("user_id", "age", "gender", "occupation", "zip_code"))
    users["age"] = pd.to_numeric(users["age"], errors="coerce")
    users["zip"] = users["zip_code"]
    return finish_ml100k(name, inter, items[["item_id", "title", "year", "genres"]],
                         users[["user_id", "age", "gender", "occupation", "zip"]],
                         source="recbole atomic files", folder=folder)


def read_seq_inter(path: Path) -> pd.DataFrame:
    """A sequential RecBole ``.inter`` (``user_id:token item_id_list:token_seq item_id:token``) with integer ids:
    columns user_id (int64), item_id_list (list[int]), item_id (int64)."""
    path = Path(path)
    df = read_atomic(path, ("user_id", "item_id_list", "item_id"), ints=("user_id", "item_id"))
    lists = []
    for r, s in enumerate(df["item_id_list"].tolist()):
        try:
            lists.append([int(t) for t in s.split()])
        except ValueError:
            body = read_text(path).split("\n", 1)[1]
            raise DataError(f"column 'item_id_list': {s!r} is not a list of integer ids", path,
                            row_line(body, r, 2)) from None
    df["item_id_list"] = lists
    return df
