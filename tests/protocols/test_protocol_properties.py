"""Properties of the protocols that every comparison rests on, over generated datasets (hypothesis): a split is a
function of the data's content and the seed — the same rows in any order give the same split, byte for byte — and
it partitions the (deduplicated) interactions with every evaluated user keeping some training history."""
from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from metarec.data.schema import build_dataset
from metarec.protocols import get_protocol


@st.composite
def interactions(draw, timestamps=True):
    """Raw interactions with original string ids: 3-12 users, 3-15 items, each user 1-12 distinct items (some
    repeated: duplicate pairs are the protocols' business too), distinct timestamps where there are any.
    ``timestamps``: a bool, or a strategy drawing one."""
    if not isinstance(timestamps, bool):
        timestamps = draw(timestamps)
    n_users = draw(st.integers(3, 12))
    n_items = draw(st.integers(3, 15))
    rows = []
    for u in range(n_users):
        items = draw(st.lists(st.integers(0, n_items - 1), min_size=1, max_size=12))
        rows += [(f"u{u}", f"i{i}", float(1 + (u * 7 + i) % 5)) for i in items]
    df = pd.DataFrame(rows, columns=["user_id", "item_id", "rating"])
    if timestamps:   # distinct: with tied times the file order is the only order (it stands in for time)
        df["timestamp"] = draw(st.permutations(range(len(df))))
        df["timestamp"] = df["timestamp"].astype(np.int64) * 10 + 1_000_000
    return df


def split_of(protocol: str, df: pd.DataFrame, seed: int, **params):
    return get_protocol(protocol)(build_dataset("generated", df.reset_index(drop=True)), seed=seed, **params)


@settings(max_examples=40)
@given(df=interactions(timestamps=st.booleans()), order=st.randoms(use_true_random=False),
       seed=st.integers(0, 2**31 - 1))
def test_general_split_is_the_same_for_any_row_order(df, order, seed):
    """The general protocol draws in (user, item) order (version 2): shuffling the file changes nothing. Without
    timestamps duplicate pairs keep their last row, so the rating kept can depend on order: the generator rates a
    pair the same in every row."""
    shuffled = df.iloc[order.sample(range(len(df)), len(df))]
    a, b = split_of("general", df, seed), split_of("general", shuffled, seed)
    assert a.fingerprint == b.fingerprint
    for name in a.frames:
        pd.testing.assert_frame_equal(a.frames[name], b.frames[name])


@settings(max_examples=25)
@given(df=interactions(), order=st.randoms(use_true_random=False), seed=st.integers(0, 2**31 - 1),
       protocol=st.sampled_from(["sequential", "temporal"]))
def test_time_ordered_splits_are_the_same_for_any_row_order(df, order, seed, protocol):
    """Where every event has its own timestamp, the time-ordered protocols are order-free as well."""
    shuffled = df.iloc[order.sample(range(len(df)), len(df))]
    assert split_of(protocol, df, seed).fingerprint == split_of(protocol, shuffled, seed).fingerprint


@settings(max_examples=40)
@given(df=interactions(timestamps=st.booleans()), seed=st.integers(0, 2**31 - 1),
       ratios=st.sampled_from([[0.8, 0.1, 0.1], [0.6, 0.2, 0.2], [0.7, 0.0, 0.3], [0.5, 0.25, 0.25]]))
def test_general_split_partitions_the_deduplicated_interactions(df, seed, ratios):
    s = split_of("general", df, seed, ratios=ratios)
    pairs = {name: set(zip(f.user, f.item)) for name, f in s.frames.items()}
    every = set(zip(*(build_dataset("generated", df).interactions[c] for c in ("user", "item"))))
    assert pairs["train"] | pairs["valid"] | pairs["test"] == every
    assert sum(len(f) for f in s.frames.values()) == len(every)   # each pair once, in one part
    assert not (pairs["train"] & pairs["test"] or pairs["train"] & pairs["valid"] or pairs["valid"] & pairs["test"])
    evaluated = set(s.test.user) | set(s.valid.user)
    assert evaluated <= set(s.train.user)   # nobody is evaluated without a training history
    if ratios[1] == 0:
        assert not len(s.valid)
