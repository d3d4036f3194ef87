"""`sequential`: per-user leave-one-out by time — latest event to test, second latest to valid.

Rows in every frame stay in chronological order within each user, so sequence models read ``train`` in order.
Repeat consumption (the same item again later) is kept: it is part of a sequence.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from metarec.data.schema import USER, Dataset
from metarec.params import Domain
from metarec.protocols.base import chronological, make_split, protocol
from metarec.protocols.leakage import check_latest_is_test, check_no_test_pair_in_train

if TYPE_CHECKING:
    from metarec.protocols.split import Split


def sequential(ds: Dataset, *, seed: int, min_length: int) -> "Split":
    """Per-user leave-one-out by time (test = latest, valid = second latest); short users train-only."""
    full = chronological(ds.interactions)
    length = full.groupby(USER, sort=False)["_pos"].transform("size").to_numpy()
    pos = full["_pos"].to_numpy()
    eligible = length >= min_length
    test = eligible & (pos == length - 1)
    valid = eligible & (pos == length - 2)
    frames = {"train": full[~(test | valid)], "valid": full[valid], "test": full[test]}
    repeats = ds.interactions.duplicated(["user", "item"]).any()
    return make_split(
        ds, "sequential", {"min_length": min_length}, seed, frames,
        [lambda s: check_latest_is_test(s, full),
         lambda s: check_no_test_pair_in_train(s, allow_repeats=bool(repeats))],
        ordered=True)


# registered after the definition rather than by a decorator: mutation testing (mutmut) leaves decorated
# functions alone, and this is the split algorithm every comparison rests on
protocol("sequential", min_length=3, domains={"min_length": Domain("int", 3)})(sequential)
