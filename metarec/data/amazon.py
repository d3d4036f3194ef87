"""Amazon review loaders, one per published processing of the McAuley-lab data.

* S3-Rec (``<Name>.txt`` + ``<Name>_item2attributes.json``): Beauty / Sports_and_Outdoors / Toys_and_Games.
* SASRec (``Video.txt``: ``user item`` lines): Video Games.
* ReChorus (``train.csv`` + ``item_meta.csv``): Grocery_and_Gourmet_Food (train split only).
* UniSRec atomic (``Scientific.{train,valid,test}.inter`` + ``.text`` + ``.item2index``/``.user2index``).
* ReChorus/LRD (``train/dev/test.csv`` + ``Office.item2index`` + ``Office.text``): Office_Products.
* Amazon 2018 official 5-core review files (``<Category>_5.json.gz`` / ``.json``) or rating-only ``<Category>.csv``.

Datasets that only carry order (no timestamps) get no ``timestamp`` column; their rows stay grouped by user in
chronological order.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from metarec.data.movielens import split_given
from metarec.data.recbole_atomic import (iter_json_lines, read_atomic, read_id_lists, read_json, read_seq_inter,
                                         read_table, read_text)
from metarec.data.schema import Dataset, build_dataset
from metarec.errors import DataError

REVIEW_TEXT_MAX_SUMMARIES = 20


def _require_columns(df: pd.DataFrame, needed, path: Path) -> None:
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise DataError(f"header lacks column(s) {', '.join(missing)} (has {', '.join(map(str, df.columns))})",
                        path, 1)


def _line_of(text: str, needle: str) -> int | None:
    pos = text.find(needle)
    return None if pos < 0 else text.count("\n", 0, pos) + 1


def _fill_features(ds: Dataset, strings=(), lists=()) -> Dataset:
    f = ds.item_features
    if f is not None:
        for c in strings:
            if c in f:
                f[c] = f[c].fillna("").astype(str)
        for c in lists:
            if c in f:
                f[c] = [v if isinstance(v, list) else [] for v in f[c]]
    return ds


# ---------------------------------------------------------------------------------------------------------------
# S3-Rec: <Name>.txt + <Name>_item2attributes.json
# ---------------------------------------------------------------------------------------------------------------
def load_s3rec(folder: Path, name: str, prefix: str) -> Dataset:
    folder = Path(folder)
    txt = folder / f"{prefix}.txt"
    users, items = [], []
    for _, ids in read_id_lists(txt, min_len=2):
        users.extend([ids[0]] * (len(ids) - 1))
        items.extend(ids[1:])
    frame = pd.DataFrame({"user_id": np.asarray(users, dtype=np.int64), "item_id": np.asarray(items, dtype=np.int64)})
    attr_path = folder / f"{prefix}_item2attributes.json"
    features = None
    if attr_path.is_file():
        attrs = read_json(attr_path)
        if not isinstance(attrs, dict):
            raise DataError("expected a JSON object {item_id: [attribute_id, ...]}", attr_path, 1)
        keys, cats = [], []
        for k, v in attrs.items():
            if not isinstance(v, list):
                raise DataError(f"attributes of item {k!r} are not a list", attr_path,
                                _line_of(read_text(attr_path), f'"{k}"') or 1)
            keys.append(str(k))
            cats.append([str(a) for a in v])
        features = pd.DataFrame({"item_id": keys, "category": cats})
    ds = build_dataset(name, frame, item_features=features, item_key="item_id",
                       meta={"source": f"S3-Rec {prefix}", "path": str(folder), "order_only": True})
    if ds.item_features is None:
        ds.item_features = pd.DataFrame({"original_id": ds.item_ids, "category": [[] for _ in ds.item_ids]})
    return _fill_features(ds, lists=("category",))


# ---------------------------------------------------------------------------------------------------------------
# SASRec: user item per line
# ---------------------------------------------------------------------------------------------------------------
def load_sasrec(folder: Path, name: str, filename: str) -> Dataset:
    folder = Path(folder)
    df = read_table(folder / filename, ["user_id", "item_id"], sep=" ", ints=("user_id", "item_id"))
    # lines are grouped by user and chronological within a user: keep that order (stable sort only groups)
    df = df.sort_values("user_id", kind="stable").reset_index(drop=True)
    return build_dataset(name, df, meta={"source": f"SASRec {filename}", "path": str(folder), "order_only": True})


# ---------------------------------------------------------------------------------------------------------------
# ReChorus: train.csv (+ dev/test.csv) + item_meta.csv
# ---------------------------------------------------------------------------------------------------------------
def _header(path: Path) -> list[str]:
    if not path.is_file():
        raise DataError("file not found", path)
    with open(path, encoding="utf-8", errors="replace") as fh:
        head = fh.readline().rstrip("\r\n")
    if not head.strip():
        raise DataError("file is empty" if path.stat().st_size == 0 else "header line is empty", path, 1)
    return [c.strip() for c in head.split("\t")]


def _read_rechorus(path: Path) -> pd.DataFrame:
    _require_columns(pd.DataFrame(columns=_header(path)), ("user_id", "item_id", "time"), path)
    df = read_table(path, None, sep="\t", header=1, ints=("user_id", "item_id", "time"))
    return df[["user_id", "item_id", "time"]].rename(columns={"time": "timestamp"})


def _read_item_meta(path: Path) -> pd.DataFrame | None:
    if not path.is_file():
        return None
    _require_columns(pd.DataFrame(columns=_header(path)), ("item_id",), path)
    meta = read_table(path, None, sep="\t", header=1, ints=("item_id",))
    out = pd.DataFrame({"item_id": meta["item_id"].astype(str)})
    for src, dst in (("i_category", "category"), ("i_brand", "brand")):
        if src in meta:
            out[dst] = meta[src].where(meta[src] != "0", "")  # 0 = unknown
    return out


def load_rechorus_grocery(folder: Path, name: str) -> Dataset:
    folder = Path(folder)
    df = _read_rechorus(folder / "train.csv")
    ds = build_dataset(name, df, item_features=_read_item_meta(folder / "item_meta.csv"), item_key="item_id",
                       meta={"source": "ReChorus Grocery_and_Gourmet_Food train.csv", "path": str(folder),
                             "partial": True})
    return _fill_features(ds, strings=("category",))


def _read_key_index(path: Path, key_name: str) -> pd.DataFrame:
    """``KEY<TAB>index`` lines (no header) -> frame key_name (str), index (int64)."""
    df = read_table(path, [key_name, "index"], sep="\t", ints=("index",), nonempty=(key_name,))
    dup = df["index"].duplicated()
    if dup.any():
        r = int(np.flatnonzero(dup.to_numpy())[0])
        raise DataError(f"index {df['index'].iloc[r]} mapped twice", path, r + 1)
    return df


def _read_text_file(path: Path) -> pd.DataFrame:
    """``<key><TAB><text>`` with one header line -> frame key, text (trailing spaces stripped)."""
    df = read_table(path, ["key", "text"], sep="\t", header=1)
    df["text"] = df["text"].str.strip()
    return df


def load_office(folder: Path, name: str, prefix: str = "Office") -> Dataset:
    folder = Path(folder)
    parts = {"train": "train.csv", "valid": "dev.csv", "test": "test.csv"}
    frames = []
    for part, fname in parts.items():
        f = _read_rechorus(folder / fname)
        f["part"] = part
        frames.append(f)
    df = pd.concat(frames, ignore_index=True)
    i2i = _read_key_index(folder / f"{prefix}.item2index", "asin")
    asin = pd.Series(i2i["asin"].to_numpy(), index=i2i["index"].to_numpy())
    mapped = asin.reindex(df["item_id"].to_numpy())
    if mapped.isna().any():
        bad = int(df["item_id"].to_numpy()[mapped.isna().to_numpy()][0])
        raise DataError(f"item id {bad} is not in {prefix}.item2index", folder / f"{prefix}.item2index")
    df["item_id"] = mapped.to_numpy()
    text = _read_text_file(folder / f"{prefix}.text").rename(columns={"key": "item_id"})
    meta = _read_item_meta(folder / "item_meta.csv")
    if meta is not None:
        meta["item_id"] = asin.reindex(meta["item_id"].astype(np.int64).to_numpy()).to_numpy()  # id -> ASIN
        text = text.merge(meta.dropna(subset=["item_id"]), on="item_id", how="outer")
    ds = build_dataset(name, df, item_features=text, item_key="item_id",
                       meta={"source": "LRD/ReChorus Office_Products", "path": str(folder),
                             "user_ids_reindexed": True})
    split_given(ds, df["part"].to_numpy())
    return _fill_features(ds, strings=("text", "category", "brand"))


# ---------------------------------------------------------------------------------------------------------------
# UniSRec atomic: <P>.{train,valid,test}.inter + <P>.text + <P>.item2index + <P>.user2index
# ---------------------------------------------------------------------------------------------------------------
def reconstruct_sequences(train: pd.DataFrame, valid: pd.DataFrame, test: pd.DataFrame,
                          paths: tuple[Path, Path, Path]) -> dict[int, list[int]]:
    """Full per-user sequences from UniSRec/RecBole leave-one-out prefix files (see amazon-scientific PROVENANCE):
    first prefix of the shortest train row + train targets (rows per user are longest-first) + valid + test."""
    seqs: dict[int, list[int]] = {}
    tr_users = train["user_id"].to_numpy()
    tr_lists = train["item_id_list"].tolist()
    tr_targets = train["item_id"].to_numpy()
    rows_by_user: dict[int, list[int]] = {}
    for r, u in enumerate(tr_users):
        rows_by_user.setdefault(int(u), []).append(r)
    for label, frame, path in (("valid", valid, paths[1]), ("test", test, paths[2])):
        dup = frame["user_id"].duplicated()
        if dup.any():
            r = int(np.flatnonzero(dup.to_numpy())[0])
            raise DataError(f"user {frame['user_id'].iloc[r]} has more than one {label} row", path, r + 2)
    v_by_user = {int(u): r for r, u in enumerate(valid["user_id"].to_numpy())}
    t_by_user = {int(u): r for r, u in enumerate(test["user_id"].to_numpy())}
    for u in list(v_by_user) + [u for u in rows_by_user if u not in v_by_user]:
        rows = rows_by_user.get(u, [])[::-1]  # ascending prefix length
        if rows:
            seq = list(tr_lists[rows[0]]) + [int(tr_targets[r]) for r in rows]
        elif u in v_by_user:
            seq = list(valid["item_id_list"].iloc[v_by_user[u]])
        else:  # pragma: no cover
            seq = []
        for label, by_user, frame, path in (("valid", v_by_user, valid, paths[1]),
                                            ("test", t_by_user, test, paths[2])):
            if u not in by_user:
                raise DataError(f"user {u} has no {label} row", path)
            r = by_user[u]
            prefix = list(frame["item_id_list"].iloc[r])
            if prefix and seq[-len(prefix):] != prefix:
                raise DataError(f"the {label} prefix of user {u} does not continue its train sequence", path,
                                r + 2)
            seq.append(int(frame["item_id"].iloc[r]))
        seqs[u] = seq
    extra = set(t_by_user) - set(seqs)
    if extra:
        u = min(extra)
        raise DataError(f"user {u} has a test row but no valid row", paths[2], t_by_user[u] + 2)
    return seqs


def load_unisrec(folder: Path, name: str, prefix: str = "Scientific") -> Dataset:
    folder = Path(folder)
    paths = tuple(folder / f"{prefix}.{p}.inter" for p in ("train", "valid", "test"))
    train, valid, test = (read_seq_inter(p) for p in paths)
    seqs = reconstruct_sequences(train, valid, test, paths)
    users, items, parts = [], [], []
    for u, seq in seqs.items():
        n = len(seq)
        users.extend([u] * n)
        items.extend(seq)
        parts.extend(["train"] * (n - 2) + ["valid", "test"])
    i2i = _read_key_index(folder / f"{prefix}.item2index", "asin")
    u2i = _read_key_index(folder / f"{prefix}.user2index", "reviewer")
    asin = pd.Series(i2i["asin"].to_numpy(), index=i2i["index"].to_numpy())
    reviewer = pd.Series(u2i["reviewer"].to_numpy(), index=u2i["index"].to_numpy())
    a = asin.reindex(np.asarray(items, dtype=np.int64))
    rv = reviewer.reindex(np.asarray(users, dtype=np.int64))
    for s, src, p in ((a, items, f"{prefix}.item2index"), (rv, users, f"{prefix}.user2index")):
        if s.isna().any():
            raise DataError(f"index {src[int(np.flatnonzero(s.isna().to_numpy())[0])]} is not mapped", folder / p)
    frame = pd.DataFrame({"user_id": rv.to_numpy(), "item_id": a.to_numpy()})
    text_path = folder / f"{prefix}.text"
    text = None
    if text_path.is_file():
        t = read_atomic(text_path, ("item_id", "text"))
        text = pd.DataFrame({"item_id": t["item_id"], "text": t["text"].str.strip()})
    ds = build_dataset(name, frame, item_features=text, item_key="item_id",
                       meta={"source": f"UniSRec {prefix} atomic files", "path": str(folder), "order_only": True})
    order = np.argsort(ds.interactions["user"].to_numpy(), kind="stable")  # group by user, keep sequence order
    ds.interactions = ds.interactions.iloc[order].reset_index(drop=True)
    split_given(ds, np.asarray(parts)[order])
    return _fill_features(ds, strings=("text",))


# ---------------------------------------------------------------------------------------------------------------
# Amazon 2018 official 5-core: <Category>_5.json.gz | <Category>_5.json | <Category>.csv
# ---------------------------------------------------------------------------------------------------------------
def amazon2018_file(folder: Path, category: str) -> Path | None:
    for fname in (f"{category}_5.json.gz", f"{category}_5.json", f"{category}.csv"):
        if (Path(folder) / fname).is_file():
            return Path(folder) / fname
    return None


def read_amazon_reviews(path: Path) -> pd.DataFrame:
    """Amazon (2014/2018) review JSON lines -> reviewerID, asin, overall, unixReviewTime, summary, line."""
    rows_u, rows_i, rows_r, rows_t, rows_s = [], [], [], [], []
    for k, obj in iter_json_lines(path):
        try:
            u, i = obj["reviewerID"], obj["asin"]
        except KeyError as e:
            raise DataError(f"record has no {e.args[0]!r} field", path, k) from None
        if not isinstance(u, str) or not isinstance(i, str) or not u or not i:
            raise DataError("'reviewerID' and 'asin' must be non-empty strings", path, k)
        try:
            r = float(obj["overall"])
        except KeyError:
            raise DataError("record has no 'overall' field", path, k) from None
        except (TypeError, ValueError):
            raise DataError(f"'overall' {obj['overall']!r} is not a number", path, k) from None
        t = obj.get("unixReviewTime")
        if t is None:
            raise DataError("record has no 'unixReviewTime' field", path, k)
        try:
            t_int = int(t)
            if isinstance(t, float) and t != t_int:
                raise ValueError
        except (TypeError, ValueError):
            raise DataError(f"'unixReviewTime' {t!r} is not an integer unix time", path, k) from None
        if not np.isfinite(r):
            raise DataError(f"'overall' {obj['overall']!r} is not a number", path, k)
        s = obj.get("summary")
        rows_u.append(u)
        rows_i.append(i)
        rows_r.append(r)
        rows_t.append(t_int)
        rows_s.append(s if isinstance(s, str) else "")
    return pd.DataFrame({"user_id": rows_u, "item_id": rows_i, "rating": np.asarray(rows_r, dtype=np.float64),
                         "timestamp": np.asarray(rows_t, dtype=np.int64), "summary": rows_s})


def review_text(df: pd.DataFrame, max_summaries: int = REVIEW_TEXT_MAX_SUMMARIES) -> pd.DataFrame:
    """Per-item text derived from reviews: the first ``max_summaries`` distinct non-empty review summaries in
    file order, joined with " | ". Review-derived, not product metadata."""
    s = df[["item_id", "summary"]]
    s = s[s["summary"].str.strip() != ""].assign(summary=lambda x: x["summary"].str.strip())
    s = s.drop_duplicates(["item_id", "summary"])
    s = s.groupby("item_id", sort=False).head(max_summaries)
    text = s.groupby("item_id", sort=False)["summary"].agg(" | ".join)
    return pd.DataFrame({"item_id": text.index.astype(str), "text": text.to_numpy()})


def load_amazon2018(folder: Path, name: str, category: str) -> Dataset:
    folder = Path(folder)
    path = amazon2018_file(folder, category)
    if path is None:
        raise DataError(f"none of {category}_5.json.gz, {category}_5.json, {category}.csv", folder)
    if path.suffix == ".csv":
        df = read_table(path, ["item_id", "user_id", "rating", "timestamp"], sep=",", ints=("timestamp",),
                        floats=("rating",), nonempty=("item_id", "user_id"))
        features = None
    else:
        df = read_amazon_reviews(path)
        features = review_text(df)
    ds = build_dataset(name, df[["user_id", "item_id", "rating", "timestamp"]], item_features=features,
                       item_key="item_id",
                       meta={"source": f"Amazon 2018 {path.name}", "path": str(folder),
                             "text_source": "review summaries" if features is not None else None,
                             "duplicate_reviews_kept": True})
    if ds.item_features is None:
        ds.item_features = pd.DataFrame({"original_id": ds.item_ids, "text": [""] * len(ds.item_ids)})
    return _fill_features(ds, strings=("text",))
