"""Leakage checks run on every split before it is saved or used. A violation is a bug in a protocol or in a
dataset's own split files, so it raises instead of warning."""
from __future__ import annotations

import numpy as np
import pandas as pd

from metarec.data.schema import IMPRESSION, ITEM, TIME, USER
from metarec.errors import DataError


class LeakageError(DataError):
    pass


def _pairs(df: pd.DataFrame) -> pd.Series:
    return df[USER].to_numpy(np.int64) * (1 << 32) + df[ITEM].to_numpy(np.int64)


def check_no_test_pair_in_train(split, allow_repeats: bool = False) -> str:
    """No (user, item) pair of valid/test occurs in train. Datasets with repeat consumption (a user buying the same
    item again, kept by the sequential protocol) pass ``allow_repeats``: then only the exact event may not leak,
    which the protocol guarantees by construction, and the repeat count is reported instead."""
    train = set(_pairs(split.train).tolist())
    msgs = []
    for stage in ("valid", "test"):
        frame = split.frames[stage]
        if split.is_impressions:
            continue  # candidates are shown items, not consumed ones: a clicked-before item may be shown again
        leaked = int(np.isin(_pairs(frame), np.fromiter(train, np.int64, len(train))).sum())
        if leaked and not allow_repeats:
            raise LeakageError(f"{split.dataset}/{split.protocol}: {leaked} {stage} (user, item) pairs also in train")
        msgs.append(f"{stage}: {leaked} repeat pairs" if leaked else f"{stage}: no pair in train")
    return "; ".join(msgs) or "impressions: n/a"


def check_cold_users(split) -> str:
    train_users = set(split.train[USER].unique().tolist())
    seen = {}
    for stage in ("valid", "test"):
        users = set(split.frames[stage][USER].unique().tolist())
        sup = split.support(stage)
        if sup is not None:
            users |= set(sup[USER].unique().tolist())
        overlap = users & train_users
        if overlap:
            raise LeakageError(f"{split.dataset}/cold_start: {len(overlap)} {stage} users also in meta-train")
        seen[stage] = users
    if seen["valid"] & seen["test"]:
        raise LeakageError(f"{split.dataset}/cold_start: valid and test users overlap")
    return "cold users disjoint from meta-train and from each other"


def check_latest_is_test(split, full: pd.DataFrame) -> str:
    """Sequential: each test event is its user's latest, each valid event the second latest. ``full`` is the
    ordered interaction frame the split was cut from, with a ``_pos`` column (position within user)."""
    last = full.groupby(USER, sort=False)["_pos"].max()
    for stage, offset in (("test", 0), ("valid", 1)):
        frame = split.frames[stage]
        pos = frame["_pos"] if "_pos" in frame else None
        if pos is None:
            raise LeakageError("sequential check needs positions")
        expected = last.reindex(frame[USER]).to_numpy() - offset
        if not np.array_equal(pos.to_numpy(), expected):
            raise LeakageError(f"{split.dataset}/sequential: a {stage} item is not the user's "
                               f"{'latest' if offset == 0 else 'second latest'}")
    return "test item = each user's latest, valid = second latest"


def check_time_order(split) -> str:
    """Temporal and impressions: every valid/test event is no earlier than every train event."""
    def tmax(df):
        return df[TIME].max() if len(df) else -np.inf

    def tmin(df):
        return df[TIME].min() if len(df) else np.inf

    train = split.frames.get("train_impressions", split.train)
    if TIME not in train:
        return "no timestamps"
    # test against train too: with an empty valid stage, comparing it with valid alone would check nothing
    if tmin(split.valid) < tmax(train) or tmin(split.test) < max(tmax(train), tmax(split.valid)):
        # events at exactly the cut time may sit on either side of it only when equal
        raise LeakageError(f"{split.dataset}/{split.protocol}: a valid/test event is earlier than a train event")
    if split.is_impressions:
        a = set(train[IMPRESSION]) if IMPRESSION in train else set()
        if a & set(split.test[IMPRESSION]) or a & set(split.valid[IMPRESSION]):
            raise LeakageError(f"{split.dataset}/impressions: an impression id is in two stages")
    return "valid/test events not earlier than train events"
