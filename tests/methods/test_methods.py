"""Method contract, registry and the two reference methods."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from metarec.errors import ConfigError, TrainingError, UnknownNameError
from metarec.methods import Method, build_method, get_method, list_methods
from metarec.methods.classic.mf_bpr import sample_negatives
from metarec.protocols import get_protocol
from tests.toys import toy_dataset


@pytest.fixture(scope="module")
def split():
    return get_protocol("general")(toy_dataset(n_users=40, n_items=60, per_user=30), seed=0)


def test_registry_lists_builtins():
    names = list_methods()
    assert names["pop"] == "builtin" and names["mf-bpr"] == "builtin"
    assert issubclass(get_method("mf-bpr"), Method)


def test_unknown_method_and_params():
    with pytest.raises(UnknownNameError, match=r"unknown method 'mf_bpr' \(did you mean 'mf-bpr'\?\)"):
        get_method("mf_bpr")
    with pytest.raises(ConfigError, match="unknown parameter\\(s\\) dimm"):
        build_method("mf-bpr", {"dimm": 3})
    with pytest.raises(ConfigError, match="'lr' must be a number"):
        build_method("mf-bpr", {"lr": "fast"})


def test_pop_scores_are_train_counts(split):
    m = build_method("pop").fit(split)
    s = m.score(torch.tensor([0, 5]))
    counts = np.bincount(split.train.item, minlength=split.n_items)
    assert s.shape == (2, split.n_items)
    assert np.array_equal(s[1].numpy(), counts)


def _impressions_split():
    """Train impressions at times 0..9 (two candidates each, the first clicked) and a test stage after them."""
    import pandas as pd

    from metarec.data.schema import IMPRESSION, ITEM, LABEL, TIME, USER
    from metarec.protocols import Split

    rows = [(t, t % 3, item, int(k == 0), t) for t in range(10) for k, item in enumerate((t % 4, 4 + t % 2))]
    imp = pd.DataFrame(rows, columns=[IMPRESSION, USER, ITEM, LABEL, TIME])
    test = pd.DataFrame([(20, 0, 5, 1, 20), (20, 0, 7, 0, 20)], columns=[IMPRESSION, USER, ITEM, LABEL, TIME])
    clicks = imp[imp[LABEL] == 1][[USER, ITEM, TIME]]
    history = pd.DataFrame([(1, 6, 30)], columns=[USER, ITEM, TIME])   # a history click stamped after the cut
    return Split("news", "impressions", {}, 0, 3, 8, {"train": pd.concat([clicks, history], ignore_index=True),
                                                       "train_impressions": imp, "valid": test.iloc[:0],
                                                       "test": test})


def test_pop_in_a_window_counts_only_recent_train_clicks():
    split = _impressions_split()
    every = build_method("pop").fit(split).score(torch.tensor([0]))[0]
    assert every.tolist() == [3, 3, 2, 2, 0, 0, 1, 0]                 # all train clicks, the history one included
    recent = build_method("pop", {"window_s": 4}).fit(split).score(torch.tensor([0, 2]))
    # train ends at t = 9: clicks at t = 6, 7, 8, 9 (items 2, 3, 0, 1), never the history click stamped t = 30
    assert recent[0].tolist() == [1, 1, 1, 1, 0, 0, 0, 0] and torch.equal(recent[0], recent[1])
    no_time = get_protocol("general")(toy_dataset(n_users=10, n_items=20, per_user=8, with_time=False), seed=0)
    with pytest.raises(ConfigError, match="'pop': window_s needs timestamps; split toy/general has none"):
        build_method("pop", {"window_s": 60}).fit(no_time)
    with pytest.raises(ConfigError, match="window_s"):
        build_method("pop", {"window_s": 0})


def test_recency_ranks_items_by_first_appearance_and_unseen_items_newest():
    split = _impressions_split()
    s = build_method("recency").fit(split).score(torch.tensor([1]))[0]
    # first shown: item 0 at t=0, 4 at 0, 1 at 1, 5 at 1, 2 at 2, 3 at 3; items 6, 7 were never shown in train
    # impressions (6 only in a history stamped later): newest
    assert s[:6].tolist() == [-9.0, -8.0, -7.0, -6.0, -9.0, -8.0]
    assert torch.isinf(s[6:]).all() and (s[6:] > 0).all()
    assert split.test["item"].map(lambda i: float(s[i])).tolist() == [-8.0, float("inf")]
    general = get_protocol("general")(toy_dataset(n_users=10, n_items=20, per_user=8), seed=0)
    g = build_method("recency").fit(general).score(torch.tensor([0]))[0]
    first = general.train.groupby("item")["timestamp"].min()
    np.testing.assert_array_equal(g[first.index.to_numpy()].numpy(), first.to_numpy() - general.train.timestamp.max())
    no_time = get_protocol("general")(toy_dataset(n_users=10, n_items=20, per_user=8, with_time=False), seed=0)
    with pytest.raises(ConfigError, match="'recency': recency needs timestamps"):
        build_method("recency").fit(no_time)


def test_random_is_a_fresh_ordering_per_user_independent_of_batching(split):
    m = build_method("random").fit(split, seed=3)
    all_users = m.score(torch.arange(split.n_users))
    assert torch.equal(all_users[[7, 2]], m.score(torch.tensor([7, 2])))
    assert not torch.equal(all_users[0], all_users[1])
    assert not torch.equal(all_users, build_method("random").fit(split, seed=4).score(torch.arange(split.n_users)))
    assert ((all_users >= 0) & (all_users < 1)).all()
    from metarec.eval import Evaluator
    ev = Evaluator(split, ["recall@10"])
    # a random ranking's expected recall@10 is 10 / (rankable items); averaged over 40 users it lands near it
    rankable = split.n_items - split.known("test").groupby("user").size().mean()
    assert ev.evaluate(m, "test").means["recall@10"] == pytest.approx(10 / rankable, abs=0.08)


def test_negative_sampler_never_returns_a_positive():
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(50), 18)
    items = np.concatenate([rng.choice(20, 18, replace=False) for _ in range(50)])
    keys = np.unique(users * 20 + items)
    neg = sample_negatives(users, 20, keys, rng)
    assert not np.isin(users * 20 + neg, keys).any()
    assert neg.min() >= 0 and neg.max() < 20


def test_mf_bpr_learns(split, tmp_path):
    m = build_method("mf-bpr", {"max_epochs": 15, "valid_metric": None, "progress_bar": False, "lr": 0.01, "batch_size": 64})
    m.fit(split, seed=0, workdir=tmp_path)
    log = (tmp_path / "lightning" / "metrics.csv").read_text().splitlines()
    assert len(log) > 2
    scores = m.score(torch.arange(split.n_users))
    assert scores.shape == (split.n_users, split.n_items) and torch.isfinite(scores).all()
    # training pairs must score above random pairs on average after training
    tr = split.train
    pos = scores[tr.user.to_numpy(), tr.item.to_numpy()].mean()
    assert pos > scores.mean() + 0.5
    assert m.num_parameters() == (split.n_users + split.n_items) * 64


def test_mf_bpr_same_seed_same_scores(split, tmp_path):
    kw = {"max_epochs": 2, "valid_metric": None, "progress_bar": False}
    a = build_method("mf-bpr", kw).fit(split, seed=5, workdir=tmp_path / "a").score(torch.arange(5))
    b = build_method("mf-bpr", kw).fit(split, seed=5, workdir=tmp_path / "b").score(torch.arange(5))
    c = build_method("mf-bpr", kw).fit(split, seed=6, workdir=tmp_path / "c").score(torch.arange(5))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_nan_loss_is_a_clear_error(split, tmp_path):
    m = build_method("mf-bpr", {"max_epochs": 3, "valid_metric": None, "progress_bar": False, "lr": 1e30})
    with pytest.raises(TrainingError, match=r"non-finite loss \(nan\) at epoch \d+, step \d+"):
        m.fit(split, seed=0, workdir=tmp_path)


def test_fit_without_workdir_leaves_no_temp_folder(split, tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    build_method("mf-bpr", {"max_epochs": 1, "valid_metric": None, "progress_bar": False}).fit(split, seed=0)
    assert not list(tmp_path.glob("metarec-*"))


def test_a_family_that_fails_to_import_fails_the_tests(monkeypatch, tmp_path):
    """pyproject's filterwarnings turns the registry's 'not loaded' warning into an error under pytest."""
    from metarec.methods import registry

    (tmp_path / "metarec_broken_family.py").write_text("import no_such_dependency_anywhere\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "BUILTIN_PACKAGES", registry.BUILTIN_PACKAGES + ("metarec_broken_family",))
    monkeypatch.setattr(registry, "_WARNED", set())
    with pytest.raises(UserWarning, match="metarec_broken_family not loaded"):
        registry.list_methods()


def test_every_method_default_and_search_space_lies_in_its_domains():
    """The declarations agree with themselves: each default is a legal value, each search space draws legal ones."""
    from metarec.methods import get_method, list_methods
    from metarec.params import check_params

    for name in list_methods():
        cls = get_method(name)
        check_params(cls.defaults, cls.defaults, cls.domains, f"method {name!r} defaults")
        cls.declared_space()


def test_domains_reject_what_a_user_fat_fingers():
    from metarec.params import Domain, check_params, probability

    defaults = {"dim": 64, "lr": 1e-3, "dropout": 0.1, "shuffle": True, "mode": "a", "teacher_seed": None}
    ok = check_params({"dim": 8, "lr": 1, "dropout": 0.0, "shuffle": False, "teacher_seed": None}, defaults,
                      {"mode": Domain("str", choices=("a", "b"))}, "m")
    assert ok["lr"] == 1.0 and isinstance(ok["lr"], float)          # an int given for a float becomes a float
    for params, msg in [({"dim": 0}, "integer >= 1"), ({"dim": 2.0}, "integer"), ({"dim": True}, "integer"),
                        ({"lr": 0}, "number > 0"), ({"lr": float("nan")}, "number > 0"), ({"lr": "1e-3"}, r"YAML reads '1e-3' as text: write 0.001"),
                        ({"dropout": 1.0}, r"in \[0.0, 1.0\)"), ({"shuffle": "yes"}, "true or false"),
                        ({"mode": "c"}, "one of 'a', 'b'"), ({"teacher_seed": -1}, "integer >= 0")]:
        with pytest.raises(ConfigError, match=msg):
            check_params(params, defaults, {"mode": Domain("str", choices=("a", "b"))}, "m")
    assert probability().describe() == "a number in [0.0, 1.0)"
