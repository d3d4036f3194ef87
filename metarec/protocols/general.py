"""`general`: per-user random split (default 8:1:1), the standard protocol for general (non-sequential) top-K."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from metarec.data.schema import ITEM, USER, Dataset
from metarec.protocols.base import dedupe_pairs, make_split, protocol, random_rank_within_user, split_counts
from metarec.protocols.leakage import check_no_test_pair_in_train

if TYPE_CHECKING:
    from metarec.protocols.split import Split


def general(ds: Dataset, *, seed: int, ratios) -> "Split":
    """Per-user random train/valid/test split by ratios; duplicate (user, item) pairs kept once."""
    r = np.asarray(ratios, dtype=float)   # checked by Protocol.resolve (check_ratios)
    inter = dedupe_pairs(ds.interactions).sort_values([USER, ITEM], kind="stable").reset_index(drop=True)
    rng = np.random.default_rng(seed)
    users = inter[USER].to_numpy()
    rank, size = random_rank_within_user(users, rng)
    n_valid, n_test = split_counts(size, r)
    test = rank < n_test
    valid = (rank >= n_test) & (rank < n_test + n_valid)
    train = ~(test | valid)
    frames = {"train": inter[train], "valid": inter[valid], "test": inter[test]}
    return make_split(ds, "general", {"ratios": list(map(float, ratios))}, seed, frames,
                      [check_no_test_pair_in_train])


# registered after the definition rather than by a decorator: mutation testing (mutmut) leaves decorated
# functions alone, and this is the split algorithm every comparison rests on
# version 2: rows put in (user, item) order before the draw, so the split is a function of the data's content and
# the seed, not of the file's row order (version 1 drew in file order: the same data shuffled gave another split)
protocol("general", version=2, ratios=[0.8, 0.1, 0.1])(general)
