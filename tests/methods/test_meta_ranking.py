"""Cold-start ranking (meta:*): the softmax objective and the adaptation steps against closed forms, learn2learn
properties (the clone starts equal to the initialisation; outer gradients reach every global part; second order
differs from first order), Reptile's direction, the exact fold-in, item kNN from the support against a brute-force
similarity, and end-to-end runs on a small real cold-start split."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from metarec.bench.experiment import run_one
from metarec.data import load_dataset
from metarec.errors import ConfigError
from metarec.methods import build_method, get_method, list_methods
from metarec.methods.meta.knn import item_similarity
from metarec.methods.meta.ranking import foldin, sgd_adapt, support_loss
from metarec.protocols import get_protocol
from tests.toys import toy_dataset

torch.set_num_threads(1)
NAMES = ("meta:maml", "meta:fomaml", "meta:reptile", "meta:finetune", "meta:foldin", "meta:global", "meta:itemknn")
FAST = {"max_epochs": 2, "eval_every": 1, "progress_bar": False, "dim": 8, "batch_size": 16}


@pytest.fixture(scope="module")
def cold():
    """ml-100k's first 200 users and 400 items: real ratings and user / item features, cold users disjoint."""
    ds = load_dataset("ml-100k")
    f = ds.interactions
    ds.interactions = f[(f.user < 200) & (f.item < 400)].reset_index(drop=True)
    ds.user_ids, ds.item_ids = ds.user_ids[:200], ds.item_ids[:400]
    ds.user_features = ds.user_features.iloc[:200].reset_index(drop=True)
    ds.item_features = ds.item_features.iloc[:400].reset_index(drop=True)
    return get_protocol("cold_start")(ds, seed=0, k_shot=3, n_query=5, min_history=15)


def fitted(name, split, **params):
    kw = {} if name == "meta:itemknn" else FAST
    return build_method(name, {**kw, **params}).fit(split, seed=0)


def _random_case(seed=0, B=4, n=30, d=5):
    g = torch.Generator().manual_seed(seed)
    P, q, b = torch.randn(B, d, generator=g), torch.randn(n, d, generator=g), torch.randn(n, generator=g)
    targets = torch.rand(B, n, generator=g) < 0.15
    targets[:, 0] = True
    return P, q, b, targets


def test_registered_names_family_protocols():
    names = list_methods()
    for n in NAMES:
        assert names[n] == "builtin" and get_method(n).protocols == ("cold_start",)
    assert {get_method(n).family for n in NAMES[:3]} == {"meta"}
    assert {get_method(n).family for n in NAMES[3:]} == {"baseline"}
    # every adapting method searches its adaptation (inner lr and steps, or the fold-in's pull); global has none
    for n in ("meta:maml", "meta:fomaml", "meta:reptile", "meta:finetune"):
        assert {"inner_lr", "inner_steps"} <= set(get_method(n).search_space)
    assert "foldin_reg" in get_method("meta:foldin").search_space
    assert not {"inner_lr", "inner_steps"} & set(get_method("meta:global").search_space)


def test_support_loss_is_the_per_user_mean_softmax_nll():
    P, q, b, targets = _random_case()
    exclude = torch.zeros_like(targets)
    exclude[:, 1:4] = True
    exclude &= ~targets
    got = support_loss(P @ q.T + b, targets, exclude)
    for u in range(len(P)):
        s = (P[u] @ q.T + b).double()
        keep = ~exclude[u]
        logp = s[targets[u]] - torch.logsumexp(s[keep], 0)
        assert float(got[u]) == pytest.approx(float(-logp.mean()), rel=1e-5)
    empty = torch.zeros_like(targets)
    assert torch.equal(support_loss(P @ q.T + b, empty), torch.zeros(len(P)))


def test_one_adaptation_step_is_the_closed_form_softmax_gradient():
    P, q, b, targets = _random_case(1)
    lr = 0.3
    got = sgd_adapt(P, q, b, targets, steps=1, lr=lr)
    prob = torch.softmax(P @ q.T + b, 1)
    mean_pos = (targets.float() @ q) / targets.sum(1, keepdim=True)
    grad = prob @ q - mean_pos           # d/dp of mean_i -log softmax(p q^T + b)_i
    torch.testing.assert_close(got, P - lr * grad, rtol=1e-5, atol=1e-6)
    assert torch.equal(sgd_adapt(P, q, b, targets, steps=0, lr=lr), P)
    # more steps lower every user's own support loss (each user takes its own step)
    before = support_loss(P @ q.T + b, targets)
    after = support_loss(sgd_adapt(P, q, b, targets, steps=5, lr=lr) @ q.T + b, targets)
    assert (after < before).all()


def test_foldin_reaches_the_unique_minimiser():
    P0, q, b, targets = _random_case(2)
    reg = 0.5
    def grad_at(P):
        P = P.clone().requires_grad_(True)
        loss = support_loss(P @ q.T + b, targets).sum() + 0.5 * reg * ((P - P0) ** 2).sum()
        return torch.autograd.grad(loss, [P])[0]

    P = foldin(P0, q, b, targets, reg, max_iter=200)
    start, end = float(grad_at(P0).abs().max()), float(grad_at(P).abs().max())
    assert start > 0.1 and end < 1e-3 * start     # stationary up to float32: the convex minimum
    assert float(support_loss(P @ q.T + b, targets).sum()) < float(support_loss(P0 @ q.T + b, targets).sum())
    far = foldin(P0, q, b, targets, 1e4, max_iter=200)                   # a strong pull keeps P at P0
    assert float((far - P0).abs().max()) < 1e-2


def test_item_similarity_is_shrunk_cosine_with_top_k_rows():
    rng = np.random.default_rng(0)
    users, items = rng.integers(0, 25, 300), rng.integers(0, 12, 300)
    x = np.zeros((25, 12))
    x[users, items] = 1.0
    co = x.T @ x
    n = np.sqrt(np.diag(co))
    ref = co / (n[:, None] * n[None, :] + 3.0 + 1e-12)
    np.fill_diagonal(ref, 0.0)
    full = item_similarity(users, items, 12, k=100, shrink=3.0).numpy()
    np.testing.assert_allclose(full, ref, rtol=1e-5, atol=1e-7)
    top = item_similarity(users, items, 12, k=3, shrink=3.0).numpy()
    assert ((top > 0).sum(1) <= 3).all()
    for j in range(12):
        kept = np.nonzero(top[j])[0]
        np.testing.assert_allclose(top[j, kept], ref[j, kept], rtol=1e-5)
        assert ref[j, kept].min() >= np.sort(ref[j])[-3] - 1e-7          # the 3 most similar are the ones kept


def test_itemknn_scores_are_sums_over_the_support(cold):
    m = fitted("meta:itemknn", cold, k=50, shrink=1.0)
    sup = cold.support("test")
    m.adapt(sup)
    u = int(sup.user.iloc[0])
    items = torch.as_tensor(sup[sup.user == u].item.to_numpy())
    torch.testing.assert_close(m.score(torch.tensor([u]))[0], m.sim[items].sum(0))
    stranger = int(cold.train.user.iloc[0])                              # not adapted: no support, no score
    assert torch.equal(m.score(torch.tensor([stranger]))[0], torch.zeros(cold.n_items))
    with pytest.raises(ConfigError, match="cold_start"):
        fitted("meta:itemknn", get_protocol("general")(toy_dataset(n_users=20, n_items=30), seed=0))


@pytest.mark.parametrize("algorithm", ["maml", "fomaml", "reptile"])
def test_outer_gradients_reach_every_global_part(cold, algorithm):
    m = fitted(f"meta:{algorithm}", cold, max_epochs=0).module
    m.manual_backward = lambda loss: loss.backward()                     # outside a Trainer
    users = torch.as_tensor(m.histories.users[:8])
    support, query = m.episodes(users.tolist(), np.random.default_rng(0))
    assert not (support & query).any() and (support.sum(1) == 3).all() and (query.sum(1) >= 1).all()
    m.zero_grad()
    loss = m._reptile(users, support, query) if algorithm == "reptile" else m._maml(users, support, query)
    assert torch.isfinite(loss)
    net = m.net
    parts = {"items": net.item.weight, "bias": net.item_bias, "w0": net.w0,
             "user features": next(net.user_feats.parameters()), "item features": next(net.item_feats.parameters())}
    for name, p in parts.items():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"{algorithm}: no gradient reaches {name}"
    assert net.own is None                                               # a meta-learner has no per-user vectors


def test_second_order_maml_differs_from_first_order_only_in_the_items_gradient(cold):
    grads = {}
    for algorithm in ("maml", "fomaml"):
        m = fitted(f"meta:{algorithm}", cold, max_epochs=0).module
        m.manual_backward = lambda loss: loss.backward()
        users = torch.as_tensor(m.histories.users[:8])
        support, query = m.episodes(users.tolist(), np.random.default_rng(0))
        m.zero_grad()
        m._maml(users, support, query)
        grads[algorithm] = (m.net.item.weight.grad.clone(), m.net.w0.grad.clone())
    # same initial weights (same seed), same episode: the query loss is the same, but second order adds the
    # dependence of the adapted vectors on the item factors
    assert not torch.allclose(grads["maml"][0], grads["fomaml"][0])


def test_reptile_moves_the_initialisation_toward_the_adapted_vectors(cold):
    m = fitted("meta:reptile", cold, max_epochs=0, side_info=False).module
    m.manual_backward = lambda loss: loss.backward()
    users = torch.as_tensor(m.histories.users[:8])
    support, query = m.episodes(users.tolist(), np.random.default_rng(0))
    q, b = m.net.items()
    p0 = m.net.init_users(users).detach()
    both = support | query
    phi = sgd_adapt(p0, q, b, both, m.inner_steps, m.inner_lr, m.outside(both))
    m.zero_grad()
    m._reptile(users, support, query)
    torch.testing.assert_close(m.net.w0.grad, (p0 - phi).mean(0), rtol=1e-5, atol=1e-7)


def test_items_without_train_interactions_are_features_only_and_never_training_negatives(cold):
    m = fitted("meta:fomaml", cold, max_epochs=0)
    net, module = m.module.net, m.module
    seen = np.zeros(cold.n_items, dtype=bool)
    seen[cold.train.item.to_numpy()] = True
    assert torch.equal(net.seen, torch.from_numpy(seen)) and (~seen).sum() > 0   # the subset leaves some items out
    q, b = net.items()
    new = torch.from_numpy(~seen)
    torch.testing.assert_close(q[new], net.item_feats(net.all_items)[new])     # no id part, features only
    assert torch.equal(b[new], torch.zeros(int(new.sum())))
    # a training step: the new items' id embeddings and biases receive no gradient at all
    module.manual_backward = lambda loss: loss.backward()
    users = torch.as_tensor(module.histories.users[:8])
    support, query = module.episodes(users.tolist(), np.random.default_rng(0))
    module.zero_grad()
    module._maml(users, support, query)
    assert torch.equal(net.item.weight.grad[new], torch.zeros_like(net.item.weight.grad[new]))
    assert net.item.weight.grad[~new].abs().sum() > 0
    # and they are left out of a softmax unless they are a target
    targets = torch.zeros((1, cold.n_items), dtype=torch.bool)
    first_new = int(np.nonzero(~seen)[0][0])
    targets[0, first_new] = True
    out = module.outside(targets)[0]
    assert not out[first_new] and out[torch.from_numpy(~seen)].sum() == (~seen).sum() - 1 and not out[seen].any()


def test_adaptation_changes_only_support_users_and_global_ignores_it(cold):
    same = {"lr": 5e-3, "weight_decay": 1e-6}   # their tuned defaults differ: train both alike
    ft, gl = fitted("meta:finetune", cold, **same), fitted("meta:global", cold, **same)
    sup = cold.support("test")
    users = torch.as_tensor(np.unique(cold.test.user))
    ft.adapt(sup)
    gl.adapt(sup)
    assert set(ft.adapted) == set(users.tolist()) and not gl.adapted
    # same training (same seed and parameters): identical before adaptation, different after it
    torch.testing.assert_close(gl.score(users), ft.module.scores(ft.module.net.init_users(users)))
    assert not torch.allclose(ft.score(users), gl.score(users))
    warm = torch.as_tensor(cold.train.user.unique()[:3])
    torch.testing.assert_close(ft.score(warm), gl.score(warm))


def test_end_to_end_every_method_ranks_the_catalogue(cold):
    for name in NAMES:
        r = run_one(cold, name, {} if name == "meta:itemknn" else FAST, seed=0, metrics=["ndcg@10", "recall@20"])
        m = r["metrics"]["test"]
        assert 0 <= m["ndcg@10"] <= 1 and 0 <= m["recall@20"] <= 1, name
        assert set(r["per_user"]["test"].index) == set(cold.test.user), name
    with pytest.raises(ConfigError, match="cold_start"):
        fitted("meta:maml", get_protocol("general")(toy_dataset(n_users=20, n_items=30), seed=0))


def test_repeated_interactions_never_put_one_item_in_both_support_and_query():
    import pandas as pd

    from metarec.methods.meta.ranking import Histories

    frame = pd.DataFrame({"user": [0, 0, 0, 0, 1, 1], "item": [3, 3, 5, 3, 2, 2]})
    h = Histories(frame, n_items=6)
    assert h.of(0).tolist() == [3, 5] and h.of(1).tolist() == [2]
    assert h.multi_hot([0, 1]).sum(1).tolist() == [2, 1]
