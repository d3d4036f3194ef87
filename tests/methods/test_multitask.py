"""Multi-task recommenders: gates are distributions, zero-weight tasks leave their towers untouched, shapes hold for
any number of tasks/experts, tasks come from the real data, and the per-task extra reports per-user metrics."""
from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import pytorch_lightning as pl
import torch

from metarec.data import load_dataset
from metarec.data.schema import IMPRESSION, ITEM, LABEL, RATING, TIME, USER, Dataset
from metarec.errors import ConfigError
from metarec.eval import Evaluator
from metarec.eval.tasks import task_metrics
from metarec.methods import build_method, get_method
from metarec.methods.multitask.models import MLP, MultiTaskNet, pcgrad
from metarec.methods.multitask.multidomain import combine
from metarec.methods.multitask.tasks import (BINARY, MULTICLASS, RANKING, REGRESSION, SideInfo, Task, TaskData,
                                             resolve_tasks, side_info)
from metarec.protocols import Split

torch.set_num_threads(1)
ARCHS = ["mtl:single", "mtl:shared-bottom", "mtl:mmoe", "mtl:ple"]
FAST = {"max_epochs": 2, "progress_bar": False, "batch_size": 512, "dim": 8, "expert_hidden": [16],
        "tower_hidden": [8], "num_experts": 2, "eval_every": 1}


def _tiny(n_users=60, n_items=300, seed=0, name="ml-100k") -> Split:
    """The first users x items of ml-100k (real ratings and side information), split 80/10/10 at random."""
    ds = load_dataset("ml-100k")
    f = ds.interactions
    f = f[(f[USER] < n_users) & (f[ITEM] < n_items)].reset_index(drop=True)
    r = np.random.default_rng(seed).random(len(f))
    frames = {"train": f[r < 0.8].reset_index(drop=True), "valid": f[(r >= 0.8) & (r < 0.9)].reset_index(drop=True),
              "test": f[r >= 0.9].reset_index(drop=True)}
    return Split(dataset=name, protocol="general", params={}, seed=seed, n_users=n_users, n_items=n_items,
                 frames=frames, item_features=ds.item_features.iloc[:n_items].reset_index(drop=True),
                 user_features=ds.user_features.iloc[:n_users].reset_index(drop=True))


@pytest.fixture(scope="module")
def tiny() -> Split:
    return _tiny()


def _side(n_users, n_items, rng) -> SideInfo:
    return SideInfo(user_fields=rng.integers(0, 3, (n_users, 2)), user_sizes=[3, 3], user_names=["a", "b"],
                    item_bags=[rng.integers(0, 5, (n_items, 3))], item_sizes=[5], item_names=["genres"])


def _tasks(T: int) -> list[Task]:
    kinds = [Task("interaction", RANKING), Task("rating", REGRESSION), Task("category", MULTICLASS, 4, list("abcd"))]
    return [kinds[t % 3] if t < 3 else Task(f"extra{t}", BINARY) for t in range(T)]


def _net(arch, T=3, E=2, levels=2, **kw) -> MultiTaskNet:
    rng = np.random.default_rng(0)
    shape = {"dim": 4, "expert_hidden": [8], "tower_hidden": [4], "num_experts": E, "task_experts": 2,
             "num_levels": levels, "dropout": 0.0, **kw}
    return MultiTaskNet(arch, 20, 30, _tasks(T), _side(20, 30, rng), **shape)


# ---- gates and shapes ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("arch", ["mmoe", "ple"])
@pytest.mark.parametrize("T,E", [(1, 1), (2, 3), (3, 2), (5, 4)])
def test_gates_sum_to_one(arch, T, E):
    torch.manual_seed(0)
    net = _net(arch, T, E)
    u, i = torch.randint(0, 20, (17,)), torch.randint(0, 30, (17,))
    gates = net.gate_weights(u, i)
    # per side: MMoE one gate per task over E experts; PLE per level one gate per task over K+S, plus the shared
    # gate below the last level over T*K+S
    for side in ("user", "item"):
        assert len(gates[side]) == (T if arch == "mmoe" else 2 * T + 1)
        widths = {g.shape[1] for g in gates[side]}
        assert widths == ({E} if arch == "mmoe" else ({2 + E, T * 2 + E} if T > 1 else {2 + E}))
        for g in gates[side]:
            assert g.shape[0] == 17 and (g >= 0).all()
            torch.testing.assert_close(g.sum(-1), torch.ones(17))
    if arch == "mmoe":
        assert _net("shared-bottom", T).gate_weights(u, i) == {"user": [], "item": []}


@pytest.mark.parametrize("arch", ["single", "shared-bottom", "mmoe", "ple"])
@pytest.mark.parametrize("T,E,levels", [(1, 1, 1), (2, 2, 2), (3, 4, 3), (6, 3, 1)])
def test_shapes_any_tasks_and_experts(arch, T, E, levels):
    torch.manual_seed(0)
    net = _net(arch, T, E, levels, expert_hidden=[8, 6])
    tasks = net.tasks
    u, i = torch.randint(0, 20, (11,)), torch.randint(0, 30, (11,))
    outs = net(u, i)
    assert sorted(outs) == list(range(T))
    for t, task in enumerate(tasks):
        assert outs[t].shape == ((11, task.n_classes) if task.kind == MULTICLASS else (11,))
    # full ranking (one matrix product) is the pair output without the per-user terms; a ranking task has no bias
    # terms at all (its output is the dot product, as mf-bpr's), the others add theirs
    with torch.no_grad():
        net.user_bias.normal_()
        net.offset.normal_()
        net.item_bias.normal_()
    uu, ii = torch.arange(5), torch.arange(30)
    for t, task in enumerate(tasks):
        if task.kind == MULTICLASS:
            continue
        grid = net.ranking_scores(t, uu, ii)
        pairs = net(uu.repeat_interleave(30), ii.repeat(5), needed=[t])[t].view(5, 30)
        u = net.users(uu, [t])[0][t]
        dot = u @ net.items(ii, [t])[0][t].T
        if task.kind == RANKING:
            torch.testing.assert_close(grid, dot)
            torch.testing.assert_close(pairs, dot, rtol=1e-5, atol=1e-5)
        else:
            per_user = (net.user_bias[t, uu] + net.offset[t])[:, None]
            torch.testing.assert_close(grid, dot + net.item_bias[t, ii])
            torch.testing.assert_close(grid + per_user, pairs, rtol=1e-5, atol=1e-5)
    # no bias anywhere in the experts and towers (gates may have one: they mix, they add no vector), so a zero
    # input gives a zero residual: no input-independent vector that would act as a popularity term
    mlps = [m for side in (net.users, net.items) for m in side.modules() if isinstance(m, MLP)]
    assert mlps and all(layer.bias is None for m in mlps for layer in m.modules() if isinstance(layer, torch.nn.Linear))
    x = torch.zeros(3, mlps[0].out.in_features if not len(mlps[0].hidden) else mlps[0].hidden[0].in_features)
    assert torch.equal(mlps[0](x), torch.zeros(3, mlps[0].out.out_features))


def test_an_expert_without_hidden_layers_is_linear_and_the_single_architecture_shares_nothing():
    torch.manual_seed(0)
    net = _net("single", T=2, expert_hidden=[], tower_hidden=[])
    ex = net.users.experts[0]
    assert len(ex.hidden) == 0 and isinstance(ex.out, torch.nn.Linear)
    ids = {id(p) for p in net.users.embeds[0].parameters()}
    assert not ids & {id(p) for p in net.users.embeds[1].parameters()}
    out = net(torch.tensor([1, 2]), torch.tensor([3, 4]), needed=[1])
    loss = out[1].sum()
    loss.backward()
    assert net.users.embeds[0].id.weight.grad is None and net.users.embeds[1].id.weight.grad is not None


# ---- loss weights ----------------------------------------------------------------------------------------------
def _task_states(module, t):
    """Every parameter only task t uses: its towers (and in ``single`` its embeddings and experts), its biases."""
    net = module.net
    mods = [net.users.towers[t], net.items.towers[t]]
    if net.arch == "single":
        mods += [net.users.embeds[t], net.items.embeds[t], net.users.experts[t], net.items.experts[t]]
    states = [copy.deepcopy(m.state_dict()) for m in mods]
    states.append({"bias": net.item_bias[t].detach().clone(), "ubias": net.user_bias[t].detach().clone()})
    return states


@pytest.mark.parametrize("name", ARCHS)
def test_zero_weight_leaves_tower_untrained(tiny, name):
    params = {**FAST, "valid_metric": None, "task_weights": {"like": 0.0}}
    method = build_method(name, params)
    pl.seed_everything(3, verbose=False)  # fit() seeds the same way before building the module
    before = method.build_module(tiny)
    names = [t.name for t in method.tasks]
    like, rating = names.index("like"), names.index("rating")
    init_like, init_rating = _task_states(before, like), _task_states(before, rating)
    method.fit(tiny, seed=3)
    after_like, after_rating = _task_states(method.module, like), _task_states(method.module, rating)
    for a, b in zip(init_like, after_like):
        for k in a:
            assert torch.equal(a[k], b[k]), f"{name}: zero-weight task's {k} changed"
    changed = any(not torch.equal(a[k], b[k]) for a, b in zip(init_rating, after_rating) for k in a)
    assert changed, "a trained task's tower must change (else the test above proves nothing)"


def test_pcgrad_projects_conflicts_away_and_keeps_agreement():
    g = torch.Generator().manual_seed(0)
    a, b = torch.tensor([1.0, 0.0]), torch.tensor([-1.0, 1.0])          # conflicting: a.b = -1
    merged = pcgrad([a, b], g)
    # a loses its component along b: a - (a.b/|b|^2) b = (0.5, 0.5); b along a: b - (b.a/|a|^2) a = (0, 1)
    torch.testing.assert_close(merged, torch.tensor([0.5, 1.5]))
    c = torch.tensor([1.0, 1.0])                                         # agreeing with a: left alone
    torch.testing.assert_close(pcgrad([a, c], g), a + c)
    for _ in range(50):        # two tasks: each loses its component along the other exactly when they conflict

        def project(x, y):
            d = torch.dot(x, y)
            return x - d / torch.dot(y, y) * y if d < 0 else x

        x, y = torch.randn(6, generator=g, dtype=torch.float64), torch.randn(6, generator=g, dtype=torch.float64)
        torch.testing.assert_close(pcgrad([x, y], g), project(x, y) + project(y, x))
        if torch.dot(x, y) < 0:
            assert abs(torch.dot(project(x, y), y)) < 1e-12


def test_pcgrad_weighting_trains_every_task_and_is_deterministic(tiny):
    runs = []
    for _ in range(2):
        m = build_method("mtl:mmoe", {**FAST, "weighting": "pcgrad"}).fit(tiny, seed=1)
        runs.append(m.score(torch.arange(5)))
    torch.testing.assert_close(runs[0], runs[1], rtol=0, atol=0)
    assert not m.module.automatic_optimization and torch.isfinite(runs[0]).all()


def test_uncertainty_weighting_learns_log_variances(tiny):
    method = build_method("mtl:mmoe", {**FAST, "valid_metric": None, "weighting": "uncertainty"})
    method.fit(tiny, seed=0)
    s = method.module.log_vars.detach()
    assert s.shape == (3,) and torch.isfinite(s).all() and (s != 0).any()


def test_bad_weights_and_tasks_rejected(tiny):
    with pytest.raises(ConfigError, match="weighting"):
        build_method("mtl:mmoe", {"weighting": "magic"})
    with pytest.raises(ConfigError, match="every task weight is 0"):
        build_method("mtl:mmoe", {**FAST, "task_weights": [0, 0, 0]}).fit(tiny)
    with pytest.raises(ConfigError, match="unknown task"):
        build_method("mtl:mmoe", {**FAST, "tasks": ["interaction", "dwell"]}).fit(tiny)
    with pytest.raises(ConfigError, match=r"task 'category' \(the item's category\) needs item_label:category; "
                                          r"split ml-100k/general has item_text, ranking, ratings"):
        resolve_tasks(tiny, ["interaction", "category"], 4.0)
    with pytest.raises(ConfigError, match="task listed twice"):
        resolve_tasks(tiny, ["interaction", "rating", "interaction"], 4.0)
    with pytest.raises(ConfigError, match="parameter 'aux_weight' must be a number >= 0"):
        build_method("mtl:mmoe", {"aux_weight": -0.5})


def test_aux_weight_scales_every_task_but_the_main_one(tiny):
    method = build_method("mtl:mmoe", {**FAST, "task_weights": {"rating": 2.0}, "aux_weight": 0.1})
    method.tasks = resolve_tasks(tiny, None, 4.0)
    assert method._scaled_weights() == pytest.approx([1.0, 0.2, 0.1])   # interaction, rating, like
    assert build_method("mtl:mmoe", {**FAST, "aux_weight": 0.0, "task_weights": [0, 1, 1]}).params["aux_weight"] == 0
    zero = build_method("mtl:mmoe", {**FAST, "aux_weight": 0.0, "task_weights": [0, 1, 1]})
    with pytest.raises(ConfigError, match="every task weight is 0"):   # the main task off and the others scaled away
        zero.fit(tiny)
    module = build_method("mtl:ple", {**FAST, "aux_weight": 0.25}).build_module(tiny)
    assert module.weights == pytest.approx([1.0, 0.25, 0.25])
    # multi-task networks search the balance; the single-task one has nothing it could change
    assert "aux_weight" in get_method("mtl:mmoe").search_space
    assert "aux_weight" not in get_method("mtl:single").search_space


# ---- tasks from the data ---------------------------------------------------------------------------------------
def _with_items(split: Split, name: str, **columns) -> Split:
    return Split(dataset=name, protocol=split.protocol, params={}, seed=0, n_users=split.n_users,
                 n_items=split.n_items, frames=split.frames, user_features=split.user_features,
                 item_features=pd.DataFrame(columns))


def test_default_tasks_follow_the_split_capabilities_not_the_dataset_name(tiny):
    renamed = Split(dataset="not-a-movielens-name", protocol="general", params={}, seed=0, n_users=tiny.n_users,
                    n_items=tiny.n_items, frames=tiny.frames)
    assert [t.name for t in resolve_tasks(renamed, None, 4.0)] == ["interaction", "rating", "like"]
    unrated = {k: f.drop(columns=[RATING]) for k, f in tiny.frames.items()}
    no_ratings = Split(dataset="ml-100k", protocol="general", params={}, seed=0, n_users=tiny.n_users,
                       n_items=tiny.n_items, frames=unrated)
    assert [t.name for t in resolve_tasks(no_ratings, None, 4.0)] == ["interaction"]
    with pytest.raises(ConfigError, match="task 'rating' .* needs ratings"):
        resolve_tasks(no_ratings, ["interaction", "rating"], 4.0)
    # an amazon-office-like item table: a category for every item, brands for some, lists are not labels
    n = tiny.n_items
    cats = [f"c{i % 3}" for i in range(n)]
    brands = ["b1" if i % 4 == 0 else ("b2" if i % 4 == 1 else "") for i in range(n)]
    labelled = _with_items(no_ratings, "shop", category=cats, brand=brands)
    assert {"item_label:category", "item_label:brand"} <= labelled.capabilities
    tasks = resolve_tasks(labelled, None, 4.0)
    assert [t.name for t in tasks] == ["interaction", "category", "brand"]
    assert tasks[1].classes == ["c0", "c1", "c2"] and tasks[2].classes == ["b1", "b2"]
    data = TaskData(labelled, tasks, 4.0)
    items = labelled.train[ITEM].to_numpy()
    np.testing.assert_array_equal(data.labels[:, 1], items % 3)
    np.testing.assert_array_equal(data.mask[:, 2], items % 4 < 2)          # unknown brand: no label
    np.testing.assert_array_equal(data.labels[data.mask[:, 2], 2], (items % 4)[items % 4 < 2])
    listed = _with_items(no_ratings, "beauty", category=[["a", "b"]] * n)  # S3-Rec style category lists
    assert "item_label:category" not in listed.capabilities
    one_class = _with_items(no_ratings, "shop", category=["only"] * n)
    assert "item_label:category" not in one_class.capabilities


def test_an_item_label_task_is_trained_and_scored_per_user_under_ranking_protocols(tiny):
    n = tiny.n_items
    split = _with_items(tiny, "shop", category=[f"c{i % 3}" for i in range(n)],
                        brand=[("b1" if i % 4 == 1 else "b2") if i % 2 else "" for i in range(n)])
    method = build_method("mtl:shared-bottom", {**FAST, "tasks": ["interaction", "category", "brand"]})
    method.fit(split, seed=0)
    res = task_metrics(method, split, "test", Evaluator(split, metrics=["ndcg@10"]))
    items, users = split.test[ITEM].to_numpy(), split.test[USER].to_numpy()
    pred = method.predict_tasks(users, items)
    correct = (pred["category"].argmax(-1).numpy() == items % 3).astype(float)
    assert res.means["category/accuracy"] == pytest.approx(correct.mean())
    per_user = pd.Series(correct).groupby(users).mean()
    pd.testing.assert_series_equal(res.per_user["category/user_accuracy"].dropna(), per_user,
                                   check_names=False, check_index_type=False)
    majority = np.bincount(split.train[ITEM].to_numpy() % 3).argmax()
    assert res.means["category/majority_accuracy"] == pytest.approx(np.mean(items % 3 == majority))
    odd = items % 2 == 1
    brand_ok = pred["brand"].argmax(-1).numpy()[odd] == (items[odd] % 4 == 3)   # b1 -> class 0, b2 -> 1
    assert res.means["brand/accuracy"] == pytest.approx(brand_ok.mean())
    assert any(f"brand: {odd.sum()} of {len(odd)} test pairs have a known brand" in n for n in res.notes)
    # the side features never include a label a task predicts, and do include one no task predicts
    assert side_info(split, method.tasks).item_names == []
    assert side_info(split, method.tasks[:2]).item_names == ["brand"]
    assert side_info(split, method.tasks[:1]).item_names == ["category", "brand"]
def test_movielens_tasks_from_real_ratings(tiny):
    tasks = resolve_tasks(tiny, None, 4.0)
    assert [t.name for t in tasks] == ["interaction", "rating", "like"]
    data = TaskData(tiny, tasks, like_threshold=4.0)
    rating = tiny.train[RATING].to_numpy()
    np.testing.assert_array_equal(data.labels[:, 1], rating)
    np.testing.assert_array_equal(data.labels[:, 2], (rating >= 4).astype(np.float32))
    assert data.mask.all() and (data.labels[:, 0] == 1).all()       # every train pair: a positive, rated
    neg = data.negatives(np.random.default_rng(0))
    assert len(neg) == len(tiny.train) and not np.array_equal(neg, data.negatives(np.random.default_rng(1)))
    train_pairs = set(zip(tiny.train[USER], tiny.train[ITEM]))
    assert not any((a, b) in train_pairs for a, b in zip(data.users, neg))   # never a user's own train item
    np.testing.assert_array_equal(neg, data.negatives(np.random.default_rng(0)))


def test_category_task_masks_unknown_categories():
    rng = np.random.default_rng(0)
    n_users, n_items = 12, 10
    cats = ["news", "", "sports", "", "news", "", "", "finance", "", ""]  # 6 of 10 unknown
    rows = []
    for imp in range(30):
        u = imp % n_users
        for it in rng.choice(n_items, 4, replace=False):
            rows.append((imp, u, it, int(rng.random() < 0.3), imp))
    imps = pd.DataFrame(rows, columns=[IMPRESSION, USER, ITEM, LABEL, TIME])
    frames = {"train": imps[imps[LABEL] == 1][[USER, ITEM, TIME]].reset_index(drop=True),
              "train_impressions": imps[imps[IMPRESSION] < 20].reset_index(drop=True),
              "valid": imps[(imps[IMPRESSION] >= 20) & (imps[IMPRESSION] < 25)].reset_index(drop=True),
              "test": imps[imps[IMPRESSION] >= 25].reset_index(drop=True)}
    split = Split(dataset="mind-tiny", protocol="impressions", params={}, seed=0, n_users=n_users, n_items=n_items,
                  frames=frames, item_features=pd.DataFrame({"category": cats}))
    tasks = resolve_tasks(split, None, 4.0)
    assert [t.name for t in tasks] == ["click", "category"] and tasks[1].classes == ["finance", "news", "sports"]
    data = TaskData(split, tasks, 4.0)
    known = np.array([c != "" for c in cats])[frames["train_impressions"][ITEM].to_numpy()]
    np.testing.assert_array_equal(data.mask[:, 1], known)
    method = build_method("mtl:mmoe", {**FAST, "batch_size": 16})
    method.fit(split, seed=0)
    res = task_metrics(method, split, "test", Evaluator(split))
    test_known = np.array([c != "" for c in cats])[frames["test"][ITEM].to_numpy()]
    assert any(f"{test_known.sum()} of {len(test_known)}" in n for n in res.notes)
    assert 0.0 <= res.means["category/accuracy"] <= 1.0 and "click/auc" in res.means


# ---- per-task metrics through run_one -------------------------------------------------------------------------
def test_run_one_reports_every_task_with_per_user_values(tiny):
    from metarec.bench.experiment import run_one

    out = run_one(tiny, "mtl:ple", FAST, seed=0, metrics=["ndcg@10", "recall@10"])
    test, pu = out["metrics"]["test"], out["per_user"]["test"]
    for m in ("ndcg@10", "rating/mae", "rating/rmse", "rating/user_mae", "like/auc", "like/gauc",
              "like/pooled_auc"):
        assert m in test and np.isfinite(test[m]), m
    assert {"rating/user_mae", "like/auc"} <= set(pu.columns)
    assert pu["rating/user_mae"].mean() == pytest.approx(test["rating/user_mae"])
    assert test["rating/rmse"] >= test["rating/mae"] > 0
    # the pooled MAE is the method's own predictions against the test ratings
    method = build_method("mtl:ple", FAST).fit(tiny, seed=0)
    t = tiny.test
    pred = method.predict_rating(t[USER].to_numpy(), t[ITEM].to_numpy()).double()
    assert float((pred - torch.tensor(t[RATING].to_numpy(), dtype=torch.float64)).abs().mean()) \
        == pytest.approx(test["rating/mae"], rel=1e-6)
    assert get_method("mtl:ple").family == "multitask"


def test_multidomain_combined_dataset():
    ds = load_dataset("ml-100k")

    def part(name, lo, hi):
        f = ds.interactions[(ds.interactions[USER] < 40) & (ds.interactions[ITEM] >= lo) & (ds.interactions[ITEM] < hi)]
        f = f.assign(**{ITEM: f[ITEM] - lo}).reset_index(drop=True)
        return Dataset(name=name, interactions=f, user_ids=ds.user_ids[:40], item_ids=ds.item_ids[lo:hi])

    a, b = part("a", 0, 150), part("b", 150, 400)
    both = combine([a, b])
    assert both.n_users == 80 and both.n_items == 400
    assert both.interactions[USER].max() < 80 and (both.item_features.domain.iloc[:150] == "a").all()
    split_rng = np.random.default_rng(0).random(len(both.interactions))
    f = both.interactions
    split = Split(dataset=both.name, protocol="general", params={}, seed=0, n_users=both.n_users,
                  n_items=both.n_items, frames={"train": f[split_rng < 0.8], "valid": f[(split_rng >= 0.8) &
                                                                                     (split_rng < 0.9)],
                                                "test": f[split_rng >= 0.9]},
                  item_features=both.item_features, user_features=both.user_features)
    method = build_method("mtl:mmoe", FAST).fit(split, seed=0)
    # every task the combined data can label: a ranking task per domain (in place of interaction) and its ratings
    assert [t.name for t in method.tasks] == ["domain:a", "domain:b", "rating", "like"]
    s = method.score(torch.arange(80))
    assert torch.isinf(s[:40, 150:]).all() and torch.isinf(s[40:, :150]).all()  # users see their own domain
    assert torch.isfinite(s[:40, :150]).all()
    res = task_metrics(method, split, "test", Evaluator(split, metrics=["ndcg@10"]))
    assert {"a/ndcg@10", "b/ndcg@10"} <= set(res.means)


def test_id_embeddings_and_biases_get_the_bpr_weight_decay_and_dense_parts_their_own(tiny):
    method = build_method("mtl:ple", {**FAST, "weight_decay": 3e-5, "dense_weight_decay": 0.02})
    module = method.build_module(tiny)
    opt = module.configure_optimizers()
    (sparse, dense) = opt.param_groups
    assert (sparse["weight_decay"], dense["weight_decay"]) == (3e-5, 0.02)
    ids = [m.id.weight for m in module.net.modules() if type(m).__name__ == "FieldEmbedding"]
    expected = {id(p) for p in ids + [module.net.item_bias, module.net.user_bias, module.net.offset]}
    assert {id(p) for p in sparse["params"]} == expected
    assert len(sparse["params"]) + len(dense["params"]) == len(list(module.parameters()))
    assert any(p is module.net.users.towers[0].out.weight for p in dense["params"])
    with pytest.raises(ConfigError, match="dense_weight_decay"):
        build_method("mtl:ple", {"dense_weight_decay": -1.0})
