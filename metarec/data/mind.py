"""MIND (Microsoft News) loader: ``behaviors.tsv`` + ``news.tsv``.

Accepted layouts: the official zips unpacked side by side (``MIND{small,large,demo}_train/`` and ``..._dev/``, each
with ``behaviors.tsv`` and ``news.tsv``), or a single folder holding ``behaviors.tsv`` + ``news.tsv``.

Produces:
* ``impressions``: one row per candidate shown -- impression, user, item, label (0/1), timestamp (unix seconds, the
  log's "11/11/2019 9:05:58 AM" read as UTC); with train and dev parts, dev impression ids are offset past the
  train ids so they stay unique, and a ``part`` column ("train"/"dev") says where each row came from.
* ``interactions``: the users' click histories, deduplicated per (user, item); timestamp = the time of the first
  impression whose history lists the click (an upper bound of the click time), rows grouped by user in history
  order.
* ``item_features``: category, subcategory, title, abstract, text = "title. abstract. category."; "" for news ids
  that news.tsv does not describe.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from metarec.data.recbole_atomic import read_table, read_text, row_line
from metarec.data.schema import IMPRESSION, ITEM, LABEL, TIME, USER, Dataset, build_dataset
from metarec.errors import DataError

MIND_TIME_FORMAT = "%m/%d/%Y %I:%M:%S %p"
BEHAVIOR_COLUMNS = ["impression_id", "user_id", "time", "history", "impressions"]
NEWS_COLUMNS = ["news_id", "category", "subcategory", "title", "abstract", "url", "title_entities",
                "abstract_entities"]


def _bad_row(path: Path, row: int, message: str) -> DataError:
    return DataError(message, path, row_line(read_text(path), row))


def read_behaviors(path: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """-> (rows: impression, user_id, timestamp), (candidates: impression, user_id, news_id, label, timestamp),
    (history: user_id, news_id, timestamp)."""
    path = Path(path)
    df = read_table(path, BEHAVIOR_COLUMNS, sep="\t", ints=("impression_id",), nonempty=("user_id", "time"))
    ts = pd.to_datetime(df["time"], format=MIND_TIME_FORMAT, errors="coerce")
    if ts.isna().any():
        r = int(np.flatnonzero(ts.isna().to_numpy())[0])
        raise _bad_row(path, r, f"time {df['time'].iloc[r]!r} is not 'M/D/YYYY h:mm:ss AM/PM'")
    df["timestamp"] = ts.to_numpy(dtype="datetime64[s]").astype(np.int64)
    dup = df["impression_id"].duplicated()
    if dup.any():
        r = int(np.flatnonzero(dup.to_numpy())[0])
        raise _bad_row(path, r, f"impression id {df['impression_id'].iloc[r]} repeats an earlier line")

    tok = df["impressions"].str.split().explode()
    if tok.isna().any():
        r = int(tok.index[tok.isna().to_numpy()][0])
        raise _bad_row(path, r, "impression has no candidates")
    toks = tok.tolist()
    suffix = [t[-2:] for t in toks]
    ok = np.fromiter(((x == "-0" or x == "-1") and len(t) > 2 for x, t in zip(suffix, toks)), dtype=bool,
                     count=len(toks))
    if not ok.all():
        k = int(np.flatnonzero(~ok)[0])
        raise _bad_row(path, int(tok.index[k]), f"impression candidate {toks[k]!r} is not 'NEWSID-0' or 'NEWSID-1'")
    rows = tok.index.to_numpy()
    cands = pd.DataFrame({
        "impression": df["impression_id"].to_numpy()[rows],
        "user_id": df["user_id"].to_numpy()[rows],
        "news_id": [t[:-2] for t in toks],
        "label": np.fromiter((x == "-1" for x in suffix), dtype=bool, count=len(toks)).astype(np.int8),
        "timestamp": df["timestamp"].to_numpy()[rows],
    })
    hist = df["history"].str.split().explode().dropna()
    hrows = hist.index.to_numpy()
    history = pd.DataFrame({"user_id": df["user_id"].to_numpy()[hrows], "news_id": hist.to_numpy().astype(str),
                            "timestamp": df["timestamp"].to_numpy()[hrows]})
    return df[["impression_id", "user_id", "timestamp"]], cands, history


def read_news(path: Path) -> pd.DataFrame:
    path = Path(path)
    df = read_table(path, NEWS_COLUMNS, sep="\t", nonempty=("news_id",))
    return df[["news_id", "category", "subcategory", "title", "abstract"]]


def _sentence(s: str) -> str:
    return s if s.endswith((".", "!", "?")) else s + "."


def news_text(news: pd.DataFrame) -> pd.Series:
    """'<title>. <abstract>. <category>.' (empty parts skipped; no doubled full stops)."""
    parts = news[["title", "abstract", "category"]].apply(lambda c: c.str.strip())
    return pd.Series([" ".join(_sentence(p) for p in row if p) for row in parts.itertuples(index=False)],
                     index=news.index)


def mind_parts(folder: Path, prefix: str | None) -> dict[str, Path]:
    """{part: folder with behaviors.tsv + news.tsv} for the official or the single-folder layout."""
    folder = Path(folder)
    if prefix:
        parts = {p: folder / f"{prefix}_{p}" for p in ("train", "dev")}
        parts = {p: d for p, d in parts.items() if (d / "behaviors.tsv").is_file()}
        if parts:
            return parts
    if (folder / "behaviors.tsv").is_file():
        return {"train": folder}
    raise DataError(f"no behaviors.tsv (looked in {folder}" + (f" and {prefix}_train/, {prefix}_dev/)" if prefix
                                                               else ")"), folder)


def load_mind(folder: Path, name: str, prefix: str | None = None, sample: bool = False,
              note: str | None = None) -> Dataset:
    folder = Path(folder)
    parts = mind_parts(folder, prefix)
    cands, hists, news = [], [], []
    offset = 0
    for part, d in parts.items():
        _, c, h = read_behaviors(d / "behaviors.tsv")
        c["impression"] = c["impression"] + offset
        offset = int(c["impression"].max()) if len(c) else offset
        if len(parts) > 1:
            c["part"] = part
        cands.append(c)
        hists.append(h)
        news.append(read_news(d / "news.tsv"))
    cand = pd.concat(cands, ignore_index=True)
    hist = pd.concat(hists, ignore_index=True)
    nws = pd.concat(news, ignore_index=True).drop_duplicates("news_id")
    # one click per (user, news): the first impression (in time) whose history lists it; history order kept
    hist = hist.sort_values("timestamp", kind="stable").drop_duplicates(["user_id", "news_id"])
    features = nws.assign(text=news_text(nws))
    ds = build_dataset(name, hist.rename(columns={"news_id": "item_id"}), item_features=features, item_key="news_id",
                       extra_items=cand["news_id"].to_numpy(), extra_users=cand["user_id"].to_numpy(),
                       meta={"source": "MIND behaviors.tsv/news.tsv", "path": str(folder),
                             "parts": list(parts), "sample": bool(sample), **({"note": note} if note else {})})
    inter = ds.interactions.sort_values([USER, TIME], kind="stable").reset_index(drop=True)
    ds.interactions = inter
    users = pd.Index(ds.user_ids)
    items = pd.Index(ds.item_ids)
    imp = pd.DataFrame({IMPRESSION: cand["impression"].to_numpy(np.int64),
                        USER: users.get_indexer(cand["user_id"].astype(str)).astype(np.int64),
                        ITEM: items.get_indexer(cand["news_id"].astype(str)).astype(np.int64),
                        LABEL: cand["label"].to_numpy(np.int8), TIME: cand["timestamp"].to_numpy(np.int64)})
    if "part" in cand:
        imp["part"] = cand["part"].to_numpy()
    ds.impressions = imp
    f = ds.item_features
    for c in ("category", "subcategory", "title", "abstract", "text"):
        f[c] = f[c].fillna("").astype(str)
    ds.item_features = f[["original_id", "category", "subcategory", "title", "abstract", "text"]]
    ds.meta["items_with_text"] = int((f["text"] != "").sum())
    return ds
