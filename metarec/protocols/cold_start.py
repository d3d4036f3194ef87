"""`cold_start`: disjoint users (meta-train / valid / test, default 70/10/20). Each valid/test user's history is
cut into a K-shot support set (shown to the method through ``adapt``) and a query set (scored).

The query set is each user's last ``n_query`` events (by time, or in file order) and the support set the
``k_shot`` events before them, so that for a fixed ``min_history`` the users and their query sets are identical for
every K — a K-shot curve then compares like with like. MeLU's protocol is k_shot = len - 10, n_query = 10, users
with 13-100 ratings; set ``max_history`` for the upper bound.

``new_items``: MeLU's new-item variant. The latest ``new_item_ratio`` of items (by first appearance) are new:
they are removed from meta-train, and valid/test queries contain only new items; the evaluator ranks each cold
user's candidates among the items without train interactions (``Split.masked``).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from metarec.data.schema import ITEM, TIME, USER, Dataset
from metarec.errors import ConfigError
from metarec.params import Domain, positive_int
from metarec.protocols.base import chronological, make_split, protocol
from metarec.protocols.leakage import check_cold_users, check_no_test_pair_in_train

if TYPE_CHECKING:
    from metarec.protocols.split import Split


def cold_start(ds: Dataset, *, seed: int, user_ratios, k_shot, n_query, min_history, max_history, new_items,
               new_item_ratio) -> "Split":
    """Disjoint cold users; each valid/test user's history = K-shot support + query (MeLU style)."""
    r = np.asarray(user_ratios, dtype=float)   # checked by Protocol.resolve (check_ratios)
    min_history = k_shot + n_query if min_history is None else min_history
    if not isinstance(min_history, int) or min_history < k_shot + n_query:
        raise ConfigError(f"protocol 'cold_start': min_history must be an int >= k_shot + n_query "
                          f"({k_shot + n_query}), got {min_history!r}")
    if max_history is not None and (not isinstance(max_history, int) or max_history < min_history):
        raise ConfigError(f"protocol 'cold_start': max_history must be None or an int >= min_history, got {max_history!r}")

    full = chronological(ds.interactions)
    rng = np.random.default_rng(seed)
    users = np.unique(full[USER].to_numpy())
    perm = rng.permutation(users)
    n_train = int(round(r[0] * len(users)))
    n_valid = int(round(r[1] * len(users)))
    stage_of = {**{u: "train" for u in perm[:n_train]}, **{u: "valid" for u in perm[n_train:n_train + n_valid]},
                **{u: "test" for u in perm[n_train + n_valid:]}}
    stage = full[USER].map(stage_of).to_numpy()

    new_item_set = np.array([], dtype=np.int64)
    if new_items:
        first = full.groupby(ITEM)[TIME].min() if TIME in full else full.groupby(ITEM)["_pos"].min()
        order = first.sort_values(kind="stable").index.to_numpy()
        new_item_set = order[int(round((1 - float(new_item_ratio)) * len(order))):]
    is_new = np.isin(full[ITEM].to_numpy(), new_item_set)

    frames = {"train": full[(stage == "train") & ~is_new]}
    kept = {}
    for name in ("valid", "test"):
        part = full[stage == name]
        if new_items:
            # queries must be new items: count new items from each user's end
            q = part[np.isin(part[ITEM].to_numpy(), new_item_set)]
            q = q.groupby(USER, sort=False).tail(n_query)
            q = q[q.groupby(USER)[ITEM].transform("size") == n_query]
            rest = part.drop(index=q.index)
            sup = rest.groupby(USER, sort=False).tail(k_shot)
            sup = sup[sup.groupby(USER)[ITEM].transform("size") == k_shot]
            ok = np.intersect1d(q[USER].unique(), sup[USER].unique())
            size = part[part[USER].isin(ok)].groupby(USER).size().reindex(ok).to_numpy()
            ok = ok[(size >= min_history) & (size <= (max_history if max_history is not None else size.max(initial=0)))]
            query, support = q[q[USER].isin(ok)], sup[sup[USER].isin(ok)]
        else:
            length = part.groupby(USER, sort=False)[ITEM].transform("size").to_numpy()
            ok_rows = length >= min_history
            if max_history is not None:
                ok_rows &= length <= max_history
            part = part[ok_rows]
            back = part.groupby(USER, sort=False).cumcount(ascending=False).to_numpy()  # 0 = latest
            query = part[back < n_query]
            support = part[(back >= n_query) & (back < n_query + k_shot)]
        frames[f"{name}_support"], frames[name] = support, query
        kept[name] = int(query[USER].nunique())
    if not kept["test"]:
        raise ConfigError(f"protocol 'cold_start' on {ds.name}: no test user has >= {min_history} interactions")
    params = {"user_ratios": list(map(float, user_ratios)), "k_shot": k_shot, "n_query": n_query,
              "min_history": min_history, "max_history": max_history, "new_items": bool(new_items),
              "new_item_ratio": float(new_item_ratio)}
    repeats = bool(ds.interactions.duplicated([USER, ITEM]).any())
    return make_split(ds, "cold_start", params, seed, frames,
                      [check_cold_users, lambda s: check_no_test_pair_in_train(s, allow_repeats=repeats)],
                      cold_users=kept, new_items=int(len(new_item_set)))


# registered after the definition rather than by a decorator: mutation testing (mutmut) leaves decorated
# functions alone, and this is the split algorithm every comparison rests on
protocol("cold_start", user_ratios=[0.7, 0.1, 0.2], k_shot=10, n_query=10, min_history=None, max_history=None,
         new_items=False, new_item_ratio=0.2,
         domains={"k_shot": positive_int(), "n_query": positive_int(), "min_history": positive_int(nullable=True),
                  "max_history": positive_int(nullable=True),
                  "new_item_ratio": Domain("float", 0.0, 1.0, low_open=True, high_open=True)})(cold_start)
