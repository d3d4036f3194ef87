"""A persisted, fingerprinted train/valid/test split: the contract between data and every method.

On disk a split is a folder: one Parquet file per frame (``train.parquet``, ``valid.parquet``, ``test.parquet`` and
protocol extras such as ``test_support.parquet``), optional side information, and ``manifest.json`` (dataset,
protocol, parameters, seed, counts, per-file sha256 and the content fingerprint). Everything a method needs arrives
through the Split; a method never reads dataset files itself.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from metarec.data.schema import ITEM, USER
from metarec.errors import DataError
from metarec.utils import file_digest

MANIFEST = "manifest.json"
STAGES = ("valid", "test")


@dataclass
class Split:
    dataset: str
    protocol: str
    params: dict[str, Any]
    seed: int
    n_users: int
    n_items: int
    frames: dict[str, pd.DataFrame]
    item_features: pd.DataFrame | None = None
    user_features: pd.DataFrame | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    # ---- the three standard frames -------------------------------------------------------------------------
    @property
    def train(self) -> pd.DataFrame:
        return self.frames["train"]

    @property
    def valid(self) -> pd.DataFrame:
        return self.frames["valid"]

    @property
    def test(self) -> pd.DataFrame:
        return self.frames["test"]

    def support(self, stage: str) -> pd.DataFrame | None:
        """Cold start: the K-shot support set of the stage's users (seen by the method before scoring)."""
        return self.frames.get(f"{stage}_support")

    def known(self, stage: str) -> pd.DataFrame:
        """Interactions a ranking for ``stage`` must exclude (masked): everything the method may have seen.

        valid: train (+ valid support). test: train + valid (+ test support) — the valid targets are known at
        test time, as in RecBole's full-sort evaluation.
        """
        if stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
        parts = [self.train]
        if stage == "test" and not self.is_impressions:
            parts.append(self.valid)
        sup = self.support(stage)
        if sup is not None:
            parts.append(sup)
        return pd.concat([p[[USER, ITEM]] for p in parts], ignore_index=True)

    def masked(self, stage: str) -> pd.DataFrame:
        """(user, item) pairs the evaluator never ranks for ``stage``: ``known(stage)`` and, on a new-item cold-start
        split (MeLU's new-item variant), every item with a train interaction for every user of the stage.

        The new-item question is which *new* item a cold user will choose: every query is a new item, so ranking
        the whole catalogue would only ask whether a new item, which has no id embedding or interaction count, can
        outrank the warm items (ml-100k: ~1,300), and no method can (every method scored NDCG@10 0 that way).
        Ranking among the items the system has no interaction for answers the question asked. Kept out of
        ``known``, which methods read as user histories.
        """
        known = self.known(stage)
        if not (self.protocol == "cold_start" and self.params.get("new_items")):
            return known
        users = self.users(stage)
        warm = np.unique(self.train[ITEM].to_numpy())
        pairs = pd.DataFrame({USER: np.repeat(users, len(warm)), ITEM: np.tile(warm, len(users))})
        return pd.concat([known, pairs], ignore_index=True)

    @property
    def is_impressions(self) -> bool:
        return self.protocol == "impressions"

    def users(self, stage: str) -> np.ndarray:
        """Users evaluated at ``stage`` (sorted)."""
        return np.unique(self.frames[stage][USER].to_numpy())

    @property
    def capabilities(self) -> frozenset[str]:
        """What the split's data offers (ranking or impressions, ratings, support sets, item labels, domains ...):
        the names tasks and methods declare as requirements (``metarec.data.features``)."""
        from metarec.data.features import capabilities

        return capabilities(self)

    # ---- identity ------------------------------------------------------------------------------------------
    @property
    def fingerprint(self) -> str:
        """sha256 of the split's content (frames + sizes), independent of file encoding."""
        return content_fingerprint(self.n_users, self.n_items, self.frames)

    def describe(self) -> dict[str, Any]:
        out = {"dataset": self.dataset, "protocol": self.protocol, "params": self.params, "seed": self.seed,
               "users": self.n_users, "items": self.n_items, "fingerprint": self.fingerprint[:16]}
        for name, df in self.frames.items():
            out[f"{name}_rows"] = len(df)
            out[f"{name}_users"] = int(df[USER].nunique()) if len(df) else 0
        return out

    # ---- persistence ---------------------------------------------------------------------------------------
    def save(self, folder: str | os.PathLike) -> Path:
        """Write atomically: into a temporary sibling folder, then rename over the target."""
        folder = Path(folder)
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
        try:
            files = {}
            for name, df in sorted(self.frames.items()):
                files[f"{name}.parquet"] = _write_parquet(df, tmp / f"{name}.parquet")
            for name, df in (("item_features", self.item_features), ("user_features", self.user_features)):
                if df is not None:
                    files[f"{name}.parquet"] = _write_parquet(_parquet_safe(df), tmp / f"{name}.parquet")
            manifest = {
                "dataset": self.dataset, "protocol": self.protocol, "params": self.params, "seed": self.seed,
                "n_users": self.n_users, "n_items": self.n_items, "fingerprint": self.fingerprint,
                "frames": {name: len(df) for name, df in sorted(self.frames.items())},
                "files": files, "meta": self.meta,
            }
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n")
        except BaseException:   # a failed (or interrupted) write leaves no half folder beside the splits
            _rmtree(tmp)
            raise
        if folder.exists():
            old = folder.with_name(f".{folder.name}.old")
            os.replace(folder, old)
            os.replace(tmp, folder)
            _rmtree(old)
        else:
            os.replace(tmp, folder)
        return folder

    @classmethod
    def load(cls, folder: str | os.PathLike, verify: bool = True) -> "Split":
        folder = Path(folder)
        mpath = folder / MANIFEST
        if not mpath.is_file():
            raise DataError("not a split folder (no manifest.json)", folder)
        try:
            manifest = json.loads(mpath.read_text())
        except json.JSONDecodeError as e:
            raise DataError(f"garbled manifest: {e.msg}", mpath, e.lineno) from None
        for key in ("dataset", "protocol", "params", "seed", "n_users", "n_items", "fingerprint", "frames"):
            if key not in manifest:
                raise DataError(f"manifest lacks key {key!r}", mpath)
        if verify:   # every file the manifest lists, byte for byte (item_features is outside the fingerprint)
            for fname, digest in sorted((manifest.get("files") or {}).items()):
                path = folder / fname
                if not path.is_file():
                    raise DataError("split file missing (listed in manifest.json)", path)
                if file_digest(path) != digest:
                    raise DataError("sha256 differs from manifest.json: the file changed after the split was "
                                    "written", path)
        frames = {}
        for name in manifest["frames"]:
            frames[name] = _read_parquet(folder / f"{name}.parquet")
        feats = {}
        for name in ("item_features", "user_features"):
            p = folder / f"{name}.parquet"
            feats[name] = _read_parquet(p) if p.is_file() else None
        split = cls(dataset=manifest["dataset"], protocol=manifest["protocol"], params=manifest["params"],
                    seed=manifest["seed"], n_users=manifest["n_users"], n_items=manifest["n_items"], frames=frames,
                    meta=manifest.get("meta", {}), **feats)
        if verify and split.fingerprint != manifest["fingerprint"]:
            raise DataError("content does not match the manifest fingerprint (files changed after saving?)", mpath)
        return split


def content_fingerprint(n_users: int, n_items: int, frames: dict[str, pd.DataFrame]) -> str:
    """sha256 over the sizes and every frame's name, length, column names, values and dtypes (``Split.fingerprint``;
    a function rather than the property's body so that mutation testing reaches it)."""
    h = hashlib.sha256()
    h.update(f"{n_users}:{n_items}".encode())
    for name in sorted(frames):
        df = frames[name]
        h.update(f"|{name}:{len(df)}:{','.join(df.columns)}".encode())
        for col in df.columns:
            arr = df[col].to_numpy()
            if arr.dtype == object:
                h.update("\x1f".join(map(str, arr)).encode())
            else:
                h.update(np.ascontiguousarray(arr).tobytes())
                h.update(str(arr.dtype).encode())
    return h.hexdigest()


def _parquet_safe(df: pd.DataFrame) -> pd.DataFrame:
    # list-valued side-information columns (genres) are stored as '|'-joined strings: portable, deterministic.
    out = df.copy()
    for col in out.columns:
        if out[col].dtype == object and out[col].map(lambda v: isinstance(v, (list, tuple, np.ndarray))).any():
            out[col] = out[col].map(lambda v: "|".join(map(str, v)) if isinstance(v, (list, tuple, np.ndarray)) else v)
    return out


def _write_parquet(df: pd.DataFrame, path: Path) -> str:
    df.reset_index(drop=True).to_parquet(path, index=False, engine="pyarrow", compression="zstd")
    return file_digest(path)


def _read_parquet(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise DataError("split file missing", path)
    try:
        return pd.read_parquet(path, engine="pyarrow")
    except Exception as e:  # pyarrow raises several types for corrupt files
        raise DataError(f"unreadable Parquet file ({type(e).__name__}: {str(e).splitlines()[0][:120]})", path) from None


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
