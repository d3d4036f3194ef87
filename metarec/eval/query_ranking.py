"""MeLU's evaluation protocol (Lee et al., KDD 2019) as an evaluator extra, on cold-start splits with ratings.

For each evaluated user the query set (the stage frame) is scored with ``method.predict_rating``:

    query/mae      mean |r - r_hat| over the user's query ratings (per user; the mean over users is MeLU's MAE
                   when every user has the same number of queries, as in the cold_start protocol)
    query/rmse     root mean squared error over all query ratings (aggregate, like the evaluator's rmse)
    query/ndcg@3   the user's query items ranked by predicted rating, graded relevance = true rating, as MeLU's
                   paper defines it: DCG@k = sum_{n=1..k} (2^{r_n} - 1) / log2(1 + n), nDCG@k = DCG@k / IDCG@k
                   (IDCG: the query items in true-rating order). Ties in the prediction go to the lower item id.

Returns None for other protocols, frames without ratings and methods without ``predict_rating``.
"""
from __future__ import annotations

import time

import numpy as np
import pandas as pd
import torch

from metarec.data.schema import ITEM, RATING, USER
from metarec.eval.extras import register_extra

NDCG_K = 3


def melu_ndcg(pred: np.ndarray, true: np.ndarray, k: int = NDCG_K) -> float:
    """nDCG@k of one user's query list (MeLU's exponential gain); NaN if every true rating gives zero gain."""
    order = np.lexsort((np.arange(len(pred)), -pred))[:k]  # by prediction desc, ties: earlier row (lower item)
    disc = 1.0 / np.log2(np.arange(2, k + 2))
    gain = lambda r: (2.0 ** r - 1.0)  # noqa: E731
    dcg = float((gain(true[order]) * disc[:len(order)]).sum())
    ideal = np.sort(true)[::-1][:k]
    idcg = float((gain(ideal) * disc[:len(ideal)]).sum())
    return dcg / idcg if idcg > 0 else float("nan")


def query_metrics(frame: pd.DataFrame, pred: np.ndarray, k: int = NDCG_K) -> tuple[dict[str, float], pd.DataFrame]:
    """(means, per-user frame) from a query frame (user, item, rating) and aligned predictions."""
    df = pd.DataFrame({USER: frame[USER].to_numpy(), ITEM: frame[ITEM].to_numpy(),
                       "r": frame[RATING].to_numpy(np.float64), "p": np.asarray(pred, np.float64)})
    df = df.sort_values([USER, ITEM], kind="stable")
    rows = {}
    for u, g in df.groupby(USER, sort=True):
        r, p = g["r"].to_numpy(), g["p"].to_numpy()
        rows[u] = (float(np.abs(r - p).mean()), melu_ndcg(p, r, k))
    per_user = pd.DataFrame.from_dict(rows, orient="index", columns=["query/mae", f"query/ndcg@{k}"])
    per_user.index.name = USER
    err = df["r"].to_numpy() - df["p"].to_numpy()
    means = {"query/mae": float(per_user["query/mae"].mean()),
             "query/rmse": float(np.sqrt(np.mean(err ** 2))) if len(err) else float("nan"),
             f"query/ndcg@{k}": float(np.nanmean(per_user[f"query/ndcg@{k}"].to_numpy()))
             if per_user[f"query/ndcg@{k}"].notna().any() else float("nan")}
    return means, per_user


@register_extra
def query_ranking(method, split, stage: str, evaluator):
    """MeLU's query-set MAE / RMSE / nDCG@3 (see the module docstring); None where it does not apply."""
    from metarec.eval.evaluator import EvalResult

    if split.protocol != "cold_start" or split.is_impressions:
        return None
    frame = split.frames.get(stage)
    rating_fn = getattr(method, "predict_rating", None)
    if frame is None or not len(frame) or RATING not in frame.columns or rating_fn is None:
        return None
    t0 = time.perf_counter()
    u = torch.from_numpy(frame[USER].to_numpy().astype(np.int64))
    i = torch.from_numpy(frame[ITEM].to_numpy().astype(np.int64))
    with torch.no_grad():
        pred = torch.as_tensor(rating_fn(u, i)).reshape(-1).double().cpu().numpy()
    if len(pred) != len(frame):
        raise ValueError(f"predict_rating returned {len(pred)} values for {len(frame)} pairs")
    means, per_user = query_metrics(frame, pred)
    per_user.attrs["stage"] = stage
    return EvalResult(stage=stage, mode="query", means=means, per_user=per_user, n_users=len(per_user),
                      timings={"query_s": time.perf_counter() - t0}, unit="user")
