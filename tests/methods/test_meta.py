"""Meta-learning family: learn2learn cloning/adaptation properties, outer gradients, flat memory, the MeLU
query-set metrics and end-to-end runs on small cold-start splits."""
from __future__ import annotations

import gc
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from metarec.data import load_dataset
from metarec.errors import ConfigError
from metarec.eval.query_ranking import melu_ndcg, query_metrics, query_ranking
from metarec.bench.experiment import run_one
from metarec.methods import build_method, get_method, list_methods
from metarec.methods.meta.model import feature_codes
from metarec.protocols import get_protocol
from tests.toys import toy_dataset

torch.set_num_threads(1)
FAST = {"max_epochs": 1, "eval_every": 1, "progress_bar": False, "dim": 8, "hidden": 16, "tasks_per_batch": 8}
NAMES = ("melu:maml", "melu:fomaml", "melu:reptile", "melu:finetune", "melu:global")


@pytest.fixture(scope="module")
def cold():
    return get_protocol("cold_start")(toy_dataset(n_users=40, n_items=50, per_user=30), seed=0, k_shot=3, n_query=5,
                                      min_history=20)


@pytest.fixture(scope="module")
def ml_cold():
    return get_protocol("cold_start")(load_dataset("ml-100k"), seed=0, k_shot=5, n_query=10, min_history=30)


def fitted(name, split, **params):
    return build_method(name, {**FAST, **params}).fit(split, seed=0)


def test_registered_names_family_protocols():
    names = list_methods()
    for n in NAMES:
        assert names[n] == "builtin"
        assert get_method(n).protocols == ("cold_start",)
    assert {get_method(n).family for n in NAMES[:3]} == {"meta"}
    assert {get_method(n).family for n in NAMES[3:]} == {"baseline"}
    with pytest.raises(ConfigError, match="local must be one of"):
        build_method("melu:maml", {"local": "embeddings"})


def test_ml100k_features_and_id_fallback(ml_cold, cold):
    u = feature_codes(ml_cold.user_features, ml_cold.n_users, ("age", "gender", "occupation", "zip"), "shared")
    i = feature_codes(ml_cold.item_features, ml_cold.n_items, ("genres", "category", "year"), "id")
    assert list(u) == ["age", "gender", "occupation", "zip"] and list(i) == ["genres", "year"]
    assert u["gender"].max() == 3 and u["occupation"].max() == 1 + 21  # 2 genders / 21 occupations, 1 = missing
    assert i["genres"].shape[1] > 1 and (i["genres"] > 0).sum(1).min() >= 1  # multi-genre bags
    # no features: one shared user vector, one learned embedding per item
    u2 = feature_codes(cold.user_features, cold.n_users, ("age",), "shared")
    i2 = feature_codes(cold.item_features, cold.n_items, ("genres",), "id")
    assert list(u2) == ["shared"] and (u2["shared"] == 1).all()
    assert list(i2) == ["id"] and len(np.unique(i2["id"])) == cold.n_items


@pytest.mark.parametrize("local,expected", [("decision", {"hidden", "out"}), ("out", {"out"}),
                                            ("all", {"embed", "hidden", "out"})])
def test_clone_equals_original_and_adaptation_changes_only_local(cold, local, expected):
    torch.manual_seed(0)
    m = fitted("melu:maml", cold, local=local, max_epochs=0).module
    m.eval()
    net_before = {k: v.clone() for k, v in m.state_dict().items()}
    local_names = {n for n, _ in m.local_part.named_children()}
    global_names = {n for n, _ in m.global_part.named_children()}
    assert local_names == expected and global_names == {"embed", "hidden", "out"} - expected
    pairs = torch.tensor([[0, i] for i in range(10)])
    y = torch.linspace(1, 5, 10)
    clone = m.maml.clone()
    h = m.global_part(pairs)
    # a cloned learner equals the original before adaptation
    assert torch.equal(clone(h), m.local_part(h))
    for p, q in zip(clone.parameters(), m.local_part.parameters()):
        assert torch.equal(p, q) and p is not q
    with torch.enable_grad():
        learner = m.adapted_learner(pairs, y, steps=3)
    changed = [not torch.equal(p, q) for p, q in zip(learner.parameters(), m.local_part.parameters())]
    assert all(changed) and len(changed) == len(list(m.local_part.parameters()))
    # the original (meta-)parameters, global and local, are untouched by adaptation
    for k, v in m.state_dict().items():
        assert torch.equal(v, net_before[k]), k
    # the adapted prediction differs from the global one only through the local parameters
    adapted = m.predict_all(0, learner)
    assert not torch.allclose(adapted, m.predict_all(0))


def _episode(m, user=0, n=12):
    items = torch.arange(n)
    pairs = torch.stack([torch.full_like(items, user), items], 1)
    y = torch.linspace(1, 5, n)
    return pairs[:6], y[:6], pairs[6:], y[6:]


@pytest.mark.parametrize("algorithm", ["maml", "fomaml", "reptile"])
def test_outer_gradients_reach_meta_parameters(cold, algorithm):
    torch.manual_seed(0)
    m = fitted(f"melu:{algorithm}", cold, max_epochs=0).module
    m.zero_grad()
    m.manual_backward = lambda loss: loss.backward()  # outside a Trainer
    eps = [_episode(m, 0), _episode(m, 1)]
    loss = m._reptile(eps) if algorithm == "reptile" else m._maml(eps)
    assert torch.isfinite(loss)
    for name, p in m.named_parameters():
        if "embed.emb" in name:  # only the rows used by the episodes get a gradient
            continue
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    g = m.global_part.embed.emb["i_id"].weight.grad.abs().sum(1)  # item code = item id + 1
    assert g[7:13].gt(0).all() and g[13:].eq(0).all()  # query items reach the global part
    # support items reach it only through the second-order term (MAML); first-order methods drop it
    assert g[1:7].gt(0).all() if algorithm == "maml" else g[1:7].eq(0).all()


def test_second_order_term_present(cold):
    grads = {}
    for algorithm in ("maml", "fomaml"):
        torch.manual_seed(0)
        m = fitted(f"melu:{algorithm}", cold, max_epochs=0).module
        m.zero_grad()
        m.manual_backward = lambda loss: loss.backward()
        m._maml([_episode(m, 0)])
        grads[algorithm] = torch.cat([p.grad.flatten() for p in m.local_part.parameters()])
    assert not torch.allclose(grads["maml"], grads["fomaml"])
    cos = torch.nn.functional.cosine_similarity(grads["maml"], grads["fomaml"], dim=0)
    assert cos > 0.5  # the first-order approximation points the same way


def _live_tensors() -> int:
    gc.collect()
    with warnings.catch_warnings():  # isinstance() on some torch.distributed objects warns
        warnings.simplefilter("ignore")
        return sum(1 for o in gc.get_objects() if isinstance(o, torch.Tensor))


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


@pytest.mark.slow
def test_memory_flat_over_many_adaptations(cold):
    """learn2learn issue #284: cloned learners must not keep graphs alive across adaptation calls."""
    torch.manual_seed(0)
    method = fitted("melu:maml", cold, max_epochs=0)
    m = method.module
    m.manual_backward = lambda loss: loss.backward()
    items, y = torch.arange(5), torch.linspace(1, 5, 5)
    for _ in range(20):  # warm up allocator and caches
        m.adapt_user(0, items, y)
        m._maml([_episode(m, 0)])
    t0, r0 = _live_tensors(), _rss_mb()
    for k in range(200):
        m.adapt_user(k % cold.n_users, items, y)  # evaluation-time adaptation (first order)
        m.zero_grad()
        m._maml([_episode(m, k % cold.n_users)])  # meta-training episode (second order)
    t1, r1 = _live_tensors(), _rss_mb()
    assert t1 - t0 <= 5, (t0, t1)
    assert r1 - r0 < 20, (r0, r1)
    sup = cold.support("test")
    method.adapt(sup)
    n_adapted = len(method.adapted)
    t2 = _live_tensors()
    for _ in range(3):
        method.adapt(sup)
    assert len(method.adapted) == n_adapted and _live_tensors() - t2 <= 5


def test_melu_ndcg_by_hand():
    true = np.array([5.0, 3.0, 4.0, 1.0])
    pred = np.array([0.1, 0.9, 0.5, 0.2])  # ranks items 1 (r=3), 2 (r=4), 3 (r=1)
    dcg = (2**3 - 1) / np.log2(2) + (2**4 - 1) / np.log2(3) + (2**1 - 1) / np.log2(4)
    idcg = (2**5 - 1) / np.log2(2) + (2**4 - 1) / np.log2(3) + (2**3 - 1) / np.log2(4)
    assert melu_ndcg(pred, true) == pytest.approx(dcg / idcg)
    assert melu_ndcg(true, true) == pytest.approx(1.0)
    assert melu_ndcg(np.zeros(3), np.array([1.0, 5.0, 2.0])) == pytest.approx(  # ties -> lower row first
        ((2 - 1) / 1 + (32 - 1) / np.log2(3) + (4 - 1) / 2) / ((32 - 1) / 1 + (4 - 1) / np.log2(3) + (2 - 1) / 2))
    frame = pd.DataFrame({"user": [0, 0, 1, 1], "item": [0, 1, 0, 1], "rating": [4.0, 2.0, 5.0, 5.0]})
    means, pu = query_metrics(frame, np.array([3.0, 2.0, 5.0, 4.0]))
    assert pu.loc[0, "query/mae"] == 0.5 and pu.loc[1, "query/mae"] == 0.5 and means["query/mae"] == 0.5
    assert means["query/rmse"] == pytest.approx(np.sqrt(0.5))
    assert pu.loc[0, "query/ndcg@3"] == 1.0 and pu.loc[1, "query/ndcg@3"] == 1.0


def test_query_extra_applies_only_to_cold_start_rating_methods(cold):
    general = get_protocol("general")(toy_dataset(n_users=20, n_items=30), seed=0)
    pop = build_method("pop").fit(cold)
    assert query_ranking(pop, cold, "test", None) is None  # no predict_rating
    m = fitted("melu:global", cold)
    assert query_ranking(m, general, "test", None) is None
    bce = fitted("melu:global", cold, loss="bce")
    assert bce.predict_rating is None and query_ranking(bce, cold, "test", None) is None
    res = query_ranking(m, cold, "test", None)
    assert res.n_users == cold.test.user.nunique()
    assert res.per_user["query/mae"].mean() == pytest.approx(res.means["query/mae"])


def test_end_to_end_on_cold_start(cold):
    out = {}
    for name in NAMES:
        r = run_one(cold, name, FAST, seed=0, metrics=["ndcg@10", "recall@10", "mae"])
        m = r["metrics"]["test"]
        assert {"ndcg@10", "recall@10", "mae", "query/mae", "query/rmse", "query/ndcg@3"} <= set(m), name
        assert 0 <= m["query/ndcg@3"] <= 1 and m["query/mae"] > 0
        assert m["mae"] == pytest.approx(m["query/mae"])  # n_query equal for every user: the same MAE
        assert set(r["per_user"]["test"].index) == set(cold.test.user)
        out[name] = r
    # fine-tuning adapts the same global model: different query predictions than no adaptation
    assert out["melu:finetune"]["metrics"]["test"]["query/mae"] != out["melu:global"]["metrics"]["test"]["query/mae"]
    pop = run_one(cold, "pop", {}, seed=0, metrics=["ndcg@10"])
    assert "query/mae" not in pop["metrics"]["test"]


def test_adapted_scores_per_user_and_same_budget(cold):
    ft = fitted("melu:finetune", cold)
    gl = fitted("melu:global", cold)
    for k in ("inner_steps", "inner_lr", "local"):
        assert ft.params[k] == gl.params[k] == get_method("melu:maml").defaults[k]
    users = torch.as_tensor(np.unique(cold.test.user))
    ft.adapt(cold.support("test"))
    gl.adapt(cold.support("test"))
    assert set(ft.adapted) == set(users.tolist()) and not gl.adapted
    s = ft.score(users)
    assert s.shape == (len(users), cold.n_items)
    # global and fine-tune share training: identical without adaptation, different after it
    assert torch.allclose(gl.score(users), torch.stack([ft.module.predict_all(u) for u in users.tolist()]))
    assert not torch.allclose(s, gl.score(users))
    pr = ft.predict_rating(users[:2], torch.tensor([3, 4]))
    assert torch.allclose(pr, s[[0, 1], [3, 4]])


def test_rejects_other_protocols():
    general = get_protocol("general")(toy_dataset(n_users=20, n_items=30), seed=0)
    with pytest.raises(ConfigError, match="cold_start"):
        fitted("melu:maml", general)


def test_report_builds_one_table_per_k(tmp_path):
    """The report splits a (dataset, protocol) by protocol setting: K-shot values are never averaged together."""
    import json as _json

    from metarec import report

    rows, pu = [], []
    for k in (1, 5):
        pp = _json.dumps({"k_shot": k, "n_query": 10}, sort_keys=True)
        for method, fam, base in (("melu:maml", "meta", 0.8), ("melu:finetune", "baseline", 0.9)):
            for seed in (0, 1):
                vals = base + 0.01 * k + np.array([0, 1, 3, 2, 5, 4]) * (0.001 if fam == "meta" else 0.0013)
                for stage in ("valid", "test"):
                    rows.append({"run": f"{method}{k}{seed}", "dataset": "ml-100k", "protocol": "cold_start",
                                 "protocol_params": pp, "method": method, "family": fam, "params": "{}",
                                 "seed": seed, "stage": stage, "metric": "mae", "value": float(vals.mean()),
                                 "num_parameters": 1, "fit_s": 1.0, "score_s": 1.0, "eval_mode": "full",
                                 "selected": True})
                pu.append(pd.DataFrame({"user": np.arange(6), "mae": vals, "dataset": "ml-100k",
                                        "protocol": "cold_start", "protocol_params": pp, "method": method,
                                        "seed": seed}))
    folder = tmp_path / "res"
    (folder / "tables").mkdir(parents=True)
    pd.DataFrame(rows).to_parquet(folder / "results.parquet")
    pd.concat(pu).to_parquet(folder / "per_user.parquet")
    (folder / "meta.json").write_text(_json.dumps({"grid": "g", "valid_metric": "mae",
                                                   "metrics": ["mae"], "seeds": [0, 1]}))
    built = report.build(folder)
    assert built["latex"] == ["tables/ml_100k_cold_start_k_shot1.tex", "tables/ml_100k_cold_start_k_shot5.tex"]
    md = built["markdown"].read_text()
    assert "cold_start k_shot=1 (test)" in md and "cold_start k_shot=5 (test)" in md
    assert "0.8125 ± 0.0000" in md and "0.8525 ± 0.0000" in md  # per-K means, not the average over K (0.8325)
    sig = pd.read_csv(folder / "tables" / "significance.csv")
    assert sorted(sig.n_users) == [12, 12] and set(sig.n_seeds) == {2}  # 2 seeds x 6 users per K, never across K
    assert any(p.name.startswith("kshot") for p in built["figures"]["kshot"])
    (folder / "meta.json").write_text(_json.dumps({"grid": "g", "valid_metric": "mae", "metrics": ["mae"],
                                                   "seeds": [0, 1], "summaries": ["kshot"]}))
    built = report.build(folder)   # with the kshot summary, which draws the curves of every metric: drawn once
    assert "kshot" not in built["figures"] and any(p.name == "kshot_mae.png" for p in built["figures"]["summary kshot"])
