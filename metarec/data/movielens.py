"""MovieLens loaders: ML-100K (official ``u.*`` zip layout; the RecBole atomic layout is in recbole_atomic.py),
ML-1M (official ``*.dat`` layout) and the LightGCN-processed ML-1M implicit split (``train/valid/test.txt``).

Feature conventions (all MovieLens variants): items ``title`` (year stripped), ``year`` (float, NaN if unknown),
``genres`` (list[str]), ``text`` = ``"<title>. <genre>, <genre>"``; users ``age``, ``gender``, ``occupation``,
``zip``.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from metarec.data.recbole_atomic import read_id_lists, read_table
from metarec.data.schema import Dataset, build_dataset
from metarec.errors import DataError

ML100K_GENRES = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
                 "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
                 "War", "Western")

# ML-1M README: occupation codes
ML1M_OCCUPATIONS = ("other", "academic/educator", "artist", "clerical/admin", "college/grad student",
                    "customer service", "doctor/health care", "executive/managerial", "farmer", "homemaker",
                    "K-12 student", "lawyer", "programmer", "retired", "sales/marketing", "scientist",
                    "self-employed", "technician/engineer", "tradesman/craftsman", "unemployed", "writer")

_TITLE_YEAR = re.compile(r"\s*\((\d{4})\)\s*$")


def split_title_year(title: str) -> tuple[str, float]:
    """'Toy Story (1995)' -> ('Toy Story', 1995.0); no year -> (title, nan)."""
    m = _TITLE_YEAR.search(title)
    if not m:
        return title.strip(), np.nan
    return title[: m.start()].strip(), float(m.group(1))


def item_text(title: str, genres) -> str:
    genres = [g for g in (genres if isinstance(genres, list) else []) if g]
    title = title if isinstance(title, str) else ""
    if not genres:
        return title
    return f"{title}. {', '.join(genres)}" if title else ", ".join(genres)


def finish_movielens(name: str, inter: pd.DataFrame, items: pd.DataFrame | None, users: pd.DataFrame | None, *,
                     source: str, folder: Path, meta: dict | None = None) -> Dataset:
    """inter: user_id, item_id, rating, timestamp (original ids); items: item_id, title, year, genres; users:
    user_id, age, gender, occupation, zip. Builds the Dataset with the conventional feature columns."""
    if items is not None:
        items = items.copy()
        items["text"] = [item_text(t, g) for t, g in zip(items["title"], items["genres"])]
    ds = build_dataset(name, inter, item_features=items, item_key="item_id", user_features=users,
                       user_key="user_id", meta={"source": source, "path": str(folder), **(meta or {})})
    if ds.item_features is not None:
        f = ds.item_features
        f["title"] = f["title"].fillna("")
        f["text"] = f["text"].fillna("")
        f["genres"] = [g if isinstance(g, list) else [] for g in f["genres"]]
        f["year"] = f["year"].astype(np.float64)
    if ds.user_features is not None:
        ds.user_features["age"] = ds.user_features["age"].astype(np.float64)
    return ds


finish_ml100k = finish_movielens


# ---------------------------------------------------------------------------------------------------------------
# ML-100K, official GroupLens layout
# ---------------------------------------------------------------------------------------------------------------
def load_ml100k(folder: Path, name: str = "ml-100k") -> Dataset:
    """ML-100K from a folder holding either the official zip's ``u.data``/``u.item``/``u.user`` or RecBole's
    ``ml-100k.inter``/``.item``/``.user``."""
    folder = Path(folder)
    if (folder / "u.data").is_file():
        return load_ml100k_official(folder, name)
    from metarec.data.recbole_atomic import load_recbole_ml100k

    return load_recbole_ml100k(folder, name)


def load_ml100k_official(folder: Path, name: str = "ml-100k") -> Dataset:
    folder = Path(folder)
    inter = read_table(folder / "u.data", ["user_id", "item_id", "rating", "timestamp"], sep="\t",
                       ints=("user_id", "item_id", "timestamp"), floats=("rating",))
    cols = ["item_id", "title", "release_date", "video_release_date", "imdb_url", *ML100K_GENRES]
    raw = read_table(folder / "u.item", cols, sep="|", encoding="latin-1", ints=("item_id", *ML100K_GENRES))
    flags = raw[list(ML100K_GENRES)].to_numpy()
    if ((flags != 0) & (flags != 1)).any():
        r, c = map(int, np.argwhere((flags != 0) & (flags != 1))[0])
        raise DataError(f"genre flag {ML100K_GENRES[c]!r} must be 0 or 1, found {flags[r, c]}", folder / "u.item",
                        _row_line(folder / "u.item", r, "latin-1"))
    titles, years = zip(*(split_title_year(t) for t in raw["title"])) if len(raw) else ((), ())
    rel_year = pd.to_numeric(raw["release_date"].str[-4:], errors="coerce")
    items = pd.DataFrame({
        "item_id": raw["item_id"],
        "title": list(titles),
        "year": rel_year.fillna(pd.Series(years, dtype=np.float64)).to_numpy(dtype=np.float64),
        "genres": [[g for g, f in zip(ML100K_GENRES, row) if f] for row in flags],
    })
    users = read_table(folder / "u.user", ["user_id", "age", "gender", "occupation", "zip"], sep="|",
                       ints=("user_id", "age"))
    return finish_movielens(name, inter, items, users, source="GroupLens ml-100k (u.data/u.item/u.user)",
                            folder=folder)


def _row_line(path: Path, row: int, encoding: str) -> int:
    from metarec.data.recbole_atomic import read_text, row_line

    return row_line(read_text(path, encoding), row)


# ---------------------------------------------------------------------------------------------------------------
# ML-1M, official GroupLens layout
# ---------------------------------------------------------------------------------------------------------------
def load_ml1m(folder: Path, name: str = "ml-1m") -> Dataset:
    """ML-1M from ``ratings.dat`` / ``movies.dat`` / ``users.dat`` ('::'-separated, latin-1)."""
    folder = Path(folder)
    inter = read_table(folder / "ratings.dat", ["user_id", "item_id", "rating", "timestamp"], sep="::",
                       encoding="latin-1", ints=("user_id", "item_id", "timestamp"), floats=("rating",))
    movies = read_table(folder / "movies.dat", ["item_id", "title", "genres"], sep="::", encoding="latin-1",
                        ints=("item_id",))
    titles, years = zip(*(split_title_year(t) for t in movies["title"])) if len(movies) else ((), ())
    items = pd.DataFrame({"item_id": movies["item_id"], "title": list(titles),
                          "year": np.asarray(years, dtype=np.float64),
                          "genres": [[g for g in s.split("|") if g] for s in movies["genres"]]})
    users = read_table(folder / "users.dat", ["user_id", "gender", "age", "occupation", "zip"], sep="::",
                       encoding="latin-1", ints=("user_id", "age", "occupation"))
    occ = users["occupation"].to_numpy()
    users["occupation"] = [ML1M_OCCUPATIONS[o] if 0 <= o < len(ML1M_OCCUPATIONS) else str(o) for o in occ]
    users = users[["user_id", "age", "gender", "occupation", "zip"]]
    return finish_movielens(name, inter, items, users, source="GroupLens ml-1m (ratings/movies/users.dat)",
                            folder=folder, meta={"age_is_bucket": True})


# ---------------------------------------------------------------------------------------------------------------
# ML-1M implicit, LightGCN adjacency lists
# ---------------------------------------------------------------------------------------------------------------
def read_adjacency_parts(folder: Path, files: dict[str, str]) -> pd.DataFrame:
    """``{part: filename}`` of ``user item item ...`` files -> frame user_id, item_id, part (file order kept)."""
    users, items, parts, lone = [], [], [], []
    for part, fname in files.items():
        for _, ids in read_id_lists(Path(folder) / fname):
            u, rest = ids[0], ids[1:]
            if not rest:
                lone.append(u)
            users.extend([u] * len(rest))
            items.extend(rest)
            parts.extend([part] * len(rest))
    frame = pd.DataFrame({"user_id": np.asarray(users, dtype=np.int64), "item_id": np.asarray(items, dtype=np.int64),
                          "part": pd.Categorical(parts, categories=list(files))})
    frame.attrs["lone_users"] = lone
    return frame


def split_given(ds: Dataset, part: np.ndarray, order=("train", "valid", "test")) -> Dataset:
    """Set ``ds.given`` from a per-row part label aligned with ``ds.interactions``."""
    part = np.asarray(part)
    ds.given = {p: ds.interactions[part == p].reset_index(drop=True) for p in order}
    return ds


def load_lightgcn(folder: Path, name: str = "ml-1m-implicit", meta: dict | None = None) -> Dataset:
    folder = Path(folder)
    frame = read_adjacency_parts(folder, {"train": "train.txt", "valid": "valid.txt", "test": "test.txt"})
    if frame.empty:
        raise DataError("no interactions in train/valid/test.txt", folder)
    ds = build_dataset(name, frame, extra_users=frame.attrs["lone_users"] or None,
                       meta={"source": "LightGCN adjacency lists", "path": str(folder), **(meta or {})})
    return split_given(ds, frame["part"].to_numpy())
