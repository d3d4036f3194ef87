"""(c) The Evaluator end to end on tiny hand-built Splits with fake methods whose scores we control."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch


from metarec.errors import ConfigError, DataError, TrainingError
from metarec.eval import EvalResult, Evaluator
from metarec.protocols.split import Split
from tests.toys import distinct_scores, random_split

torch.set_num_threads(1)


def tiny_split(**kw) -> Split:
    # 4 users, 8 items. user 3 has train only (no valid/test target).
    train = pd.DataFrame({"user": [0, 0, 1, 1, 2, 3, 3], "item": [0, 1, 2, 3, 4, 5, 6]})
    valid = pd.DataFrame({"user": [0, 1, 2], "item": [2, 4, 5]})
    test = pd.DataFrame({"user": [0, 1, 2, 2], "item": [3, 5, 6, 7]})
    return Split("tiny", "ratio", {}, 0, 4, 8, {"train": train, "valid": valid, "test": test}, **kw)


class Fake:
    """Scores train items highest, then targets, then the rest: a perfect model only if masking works."""

    def __init__(self, split, stage="test"):
        S = torch.zeros(split.n_users, split.n_items)
        for u, i in zip(split.test.user, split.test.item):
            S[u, i] = 5.0
        for u, i in zip(split.known(stage).user, split.known(stage).item):
            S[u, i] = 10.0
        self.S = S
        self.adapted = None

    def score(self, users):
        return self.S[users].expand(-1, -1)  # a view: the evaluator must not write into it

    def score_pairs(self, users, items):
        return self.S[users, items]

    def adapt(self, support):
        self.adapted = support


def test_known_items_are_masked_and_never_recommended():
    split = tiny_split()
    m = Fake(split)
    before = m.S.clone()
    ev = Evaluator(split, ["hit@1", "precision@1", "recall@2", "ndcg@2"])
    res = ev.evaluate(m, "test")
    assert torch.equal(m.S, before)  # the method's tensor untouched
    assert res.means["hit@1"] == 1.0 and res.means["recall@2"] == 1.0 and res.means["ndcg@2"] == 1.0
    users, top = ev.top_k(m.score, "test", 4)
    known = split.known("test")
    for u, row in zip(users, top):
        assert not set(row) & set(known[known.user == u].item)


def test_users_without_targets_are_skipped():
    split = tiny_split()
    res = Evaluator(split, ["ndcg@3"]).evaluate_scores(distinct_scores(4, 8), "test")
    assert list(res.per_user.index) == [0, 1, 2] and res.n_users == 3 and res.per_user.index.name == "user"
    res = Evaluator(split, ["ndcg@3"]).evaluate_scores(distinct_scores(4, 8), "valid")
    assert list(res.per_user.index) == [0, 1, 2]


def test_valid_targets_are_known_at_test_time():
    split = tiny_split()
    S = torch.zeros(4, 8)
    S[0, 2] = 9.0  # user 0's valid item would be top-1 at test unless masked
    S[0, 3] = 1.0  # user 0's test target
    res = Evaluator(split, ["hit@1"]).evaluate_scores(S, "test")
    assert res.per_user.loc[0, "hit@1"] == 1.0
    res = Evaluator(split, ["hit@1"]).evaluate_scores(S, "valid")
    assert res.per_user.loc[0, "hit@1"] == 1.0  # at valid, item 2 is the target


def test_sampled_mode_is_labelled_everywhere_and_deterministic():
    split = random_split(n_users=30, n_items=300, seed=1)
    S = distinct_scores(30, 300, seed=2)
    ev = Evaluator(split, ["ndcg@10", "hit@10", "auc"], mode="sampled", num_negatives=20, seed=5, batch_size=7)
    res = ev.evaluate_scores(S, "test")
    assert res.mode == "sampled-20"
    assert "sampled-20" in str(res) and res.to_dict()["mode"] == "sampled-20"
    assert res.per_user.attrs["mode"] == "sampled-20"
    again = Evaluator(split, ["ndcg@10", "hit@10", "auc"], mode="sampled", num_negatives=20, seed=5,
                      batch_size=7).evaluate_scores(S, "test")
    assert res.means == again.means
    full = Evaluator(split, ["ndcg@10", "hit@10", "auc"]).evaluate_scores(S, "test")
    assert full.mode == "full" and res.means["hit@10"] >= full.means["hit@10"]
    # the ranked lists never contain known items
    users, top = ev.top_k(S, "test", 10)
    known = split.known("test")
    for u, row in zip(users, top):
        assert not set(row) & set(known[known.user == u].item) and len(set(row)) == 10


def test_sampled_candidates_are_targets_plus_free_negatives():
    from metarec.eval.evaluator import _sample_candidates
    g = torch.Generator().manual_seed(0)
    B, n = 6, 200
    known = torch.rand(B, n, generator=g) < 0.3
    target = (torch.rand(B, n, generator=g) < 0.03) & ~known
    target[:, 0] = True
    known[:, 0] = False
    n_pos = target.sum(1)
    cand = _sample_candidates(target, known, n_pos, 5, g)
    assert bool((cand & target).eq(target).all()) and not bool((cand & known).any())
    n_neg = (cand & ~target).sum(1)
    assert bool((n_neg <= 5 * n_pos).all()) and bool((n_neg >= 1).all())


def test_popularity_sampled_candidates_follow_popularity_and_skip_unseen_items():
    """sampled-pop: negatives drawn in proportion to train counts (an item with no train interaction never),
    from free items only; over many draws the frequencies follow the weights."""
    from metarec.eval.evaluator import _sample_candidates
    g = torch.Generator().manual_seed(0)
    B, n = 400, 50
    known = torch.zeros(B, n, dtype=torch.bool)
    known[:, 1] = True
    target = torch.zeros(B, n, dtype=torch.bool)
    target[:, 0] = True
    w = torch.arange(n, dtype=torch.float64)
    w[5] = 0.0                                          # never seen in train
    cand = _sample_candidates(target, known, target.sum(1), 1, g, weights=w)
    neg = cand & ~target
    assert not neg[:, 5].any() and not neg[:, 1].any() and bool((neg.sum(1) == 1).all())
    freq = neg.sum(0).to(torch.float64) / B
    expected = w.clone()
    expected[[0, 1, 5]] = 0
    expected /= expected.sum()
    assert float((freq - expected).abs().max()) < 0.03
    split = random_split(n_users=30, n_items=300, seed=1)
    res = Evaluator(split, ["ndcg@10"], mode="sampled-pop", num_negatives=20).evaluate_scores(
        distinct_scores(30, 300, seed=2))
    assert res.mode == "sampled-pop-20"


def test_per_user_mean_equals_reported_mean_and_batching_invariance():
    split = random_split(n_users=50, n_items=70, seed=4)
    S = distinct_scores(50, 70, seed=3)
    names = ["recall@10", "ndcg@10", "mrr@5", "map@10", "auc", "novelty@5", "diversity@5", "gauc", "coverage@10"]
    a = Evaluator(split, names, batch_size=1).evaluate_scores(S, "test")
    b = Evaluator(split, names, batch_size=1000).evaluate_scores(lambda u: S[u], "test")
    assert isinstance(a, EvalResult)
    for col in a.per_user.columns:
        assert abs(a.per_user[col].mean() - a.means[col]) < 1e-12
    assert set(a.per_user.columns) == set(names) - {"gauc", "coverage@10"}
    assert set(a.means) == set(names)
    pd.testing.assert_frame_equal(a.per_user, b.per_user)
    assert a.means == pytest.approx(b.means, abs=1e-12)
    assert {"score_s", "metrics_s", "total_s", "adapt_s"} <= set(a.timings)


def test_evaluate_method_equals_evaluate_scores():
    split = tiny_split()
    m = Fake(split)
    names = ["ndcg@3", "recall@3", "auc"]
    r1 = Evaluator(split, names).evaluate(m, "test")
    r2 = Evaluator(split, names).evaluate_scores(m.S, "test")
    pd.testing.assert_frame_equal(r1.per_user, r2.per_user)


def test_cold_start_support_goes_to_adapt_and_is_masked():
    split = tiny_split()
    split.frames["test_support"] = pd.DataFrame({"user": [2], "item": [7]})
    m = Fake(split)
    res = Evaluator(split, ["hit@1"]).evaluate(m, "test")
    assert m.adapted is split.frames["test_support"]
    assert 2 in res.per_user.index  # item 6 is still a target


def test_diversity_skipped_with_note_without_categories_or_reference_vectors():
    # one user: no rank-1 factorisation of the training matrix to draw reference item vectors from
    one = Split("one", "ratio", {}, 0, 1, 8, {"train": pd.DataFrame({"user": [0, 0], "item": [0, 1]}),
                                               "valid": pd.DataFrame({"user": [0], "item": [2]}),
                                               "test": pd.DataFrame({"user": [0], "item": [3]})})
    res = Evaluator(one, ["diversity@3", "ndcg@3"]).evaluate_scores(distinct_scores(1, 8), "test")
    assert "diversity@3" not in res.means and any("diversity@K skipped" in n for n in res.notes)
    res = Evaluator(tiny_split(), ["diversity@3", "ndcg@3"]).evaluate_scores(distinct_scores(4, 8), "test")
    assert "diversity@3" in res.means and any("by item vectors" in n for n in res.notes)
    feats = pd.DataFrame({"category": ["a", "b", None, "a", "c", "c", "b", "a"]})
    res = Evaluator(tiny_split(item_features=feats), ["diversity@3"]).evaluate_scores(distinct_scores(4, 8))
    assert 0.0 <= res.means["diversity@3"] <= 1.0


def test_rating_metrics_skipped_with_note_when_unavailable():
    res = Evaluator(tiny_split(), ["mae", "hit@1"]).evaluate(Fake(tiny_split()), "test")
    assert "mae" not in res.means and any("mae" in n for n in res.notes)


def test_nan_scores_raise():
    S = torch.zeros(4, 8)
    S[1, 7] = float("nan")  # an unmasked item (NaN on a masked item is overwritten by -inf: harmless)
    with pytest.raises(TrainingError):
        Evaluator(tiny_split(), ["hit@1"]).evaluate_scores(S, "test")


def test_protocol_checks():
    split = tiny_split()
    with pytest.raises(ConfigError):
        Evaluator(split, ["mrr"])  # ranking needs a cut-off
    with pytest.raises(ConfigError):
        Evaluator(split, ["ndcg@9"])  # more than n_items
    with pytest.raises(ConfigError):
        Evaluator(split, ["ndcg@3"], mode="exhaustive")
    imp = Split("m", "impressions", {}, 0, 2, 4, {
        "train": pd.DataFrame({"user": [0], "item": [0]}),
        "valid": pd.DataFrame({"impression": [], "user": [], "item": [], "label": []}),
        "test": pd.DataFrame({"impression": [0, 0], "user": [1, 1], "item": [1, 2], "label": [1, 0]})})
    with pytest.raises(ConfigError):
        Evaluator(imp, ["recall@10"])
    with pytest.raises(ConfigError):
        Evaluator(imp, ["auc"], mode="sampled")
    res = Evaluator(imp).evaluate_scores(torch.tensor([[0., 0, 0, 0], [0, 2, 1, 0]]), "test")
    assert res.means == {"auc": 1.0, "mrr": 1.0, "ndcg@5": 1.0, "ndcg@10": 1.0}


def test_auc_row_chunks_change_nothing(monkeypatch):
    import metarec.eval.evaluator as E
    split = random_split(n_users=30, n_items=40, seed=6)
    S = distinct_scores(30, 40, seed=6)
    a = Evaluator(split, ["auc", "gauc"]).evaluate_scores(S, "test")
    monkeypatch.setattr(E, "_AUC_CHUNK", 90)  # 2 rows per chunk
    b = Evaluator(split, ["auc", "gauc"]).evaluate_scores(S, "test")
    pd.testing.assert_frame_equal(a.per_user, b.per_user)
    assert a.means == b.means


def test_the_evaluator_sets_the_stage_while_it_scores_and_restores_it():
    """Methods reading a history at scoring time learn the stage from set_stage (no stack inspection); a method
    without set_stage (Fake) is scored as before."""
    from metarec.methods.base import Method

    class StageSpy(Method):
        name = "stage-spy"

        def __init__(self, split):
            super().__init__()
            self.fake, self.seen = Fake(split), []

        def score(self, users):
            self.seen.append(self.stage)
            return self.fake.score(users)

    split = tiny_split()
    m = StageSpy(split)
    m.set_stage("test")
    ev = Evaluator(split, ["hit@1"])
    ev.evaluate(m, "valid")
    assert set(m.seen) == {"valid"} and m.stage == "test"
    m.seen.clear()
    ev.evaluate(m, "test")
    assert set(m.seen) == {"test"} and m.stage == "test"
    with pytest.raises(ValueError, match="stage must be one of"):
        m.set_stage("train")
    ev.evaluate(Fake(split), "valid")  # no set_stage: nothing to tell


def test_diversity_without_categories_uses_reference_item_vectors():
    """No categories (or one category set for every item): diversity@K = mean pairwise cosine distance of the
    reference vectors (a rank-r SVD of the training matrix), checked per user against numpy; the note says so."""
    from metarec.eval import metrics as M

    split = random_split(n_users=40, n_items=60, seed=7, genres=False)
    scores = distinct_scores(split.n_users, split.n_items, seed=7)
    res = Evaluator(split, ["diversity@5", "ndcg@5"]).evaluate_scores(scores)
    assert any("diversity@K by item vectors" in n for n in res.notes)
    tr = split.train
    vec = M.reference_item_vectors(tr.user.to_numpy(), tr.item.to_numpy(), 40, 60, 64).numpy()
    assert vec.shape == (60, 39)
    norms = np.linalg.norm(vec, axis=1)
    seen = np.bincount(tr.item, minlength=60) > 0
    np.testing.assert_allclose(norms[seen], 1.0, atol=1e-12)
    assert np.all(norms[~seen] == 0)
    # the reference model keeps the training matrix's item-item structure: at rank 39 of (at most) 40, the cosine
    # of the binary matrix's item columns, to within the one dropped component
    x = np.zeros((40, 60))
    x[tr.user, tr.item] = 1.0
    cols = x / np.maximum(np.linalg.norm(x, axis=0), 1e-300)
    both = np.outer(seen, seen)
    np.testing.assert_allclose((vec @ vec.T)[both], (cols.T @ cols)[both], atol=0.02)
    users, top = Evaluator(split, ["ndcg@5"]).top_k(scores, "test", 5)
    for u, items in zip(users, top):
        sims = [float(vec[a] @ vec[b]) for i, a in enumerate(items) for b in items[i + 1:]]
        assert res.per_user.loc[u, "diversity@5"] == pytest.approx(1.0 - np.mean(sims), abs=1e-9)
    # categories that are all the same say nothing about diversity: the vectors are used, and the note says why
    same = random_split(n_users=40, n_items=60, seed=7)
    same.item_features["genres"] = "a"
    r2 = Evaluator(same, ["diversity@5"]).evaluate_scores(scores)
    assert any("every item has the same categories" in n for n in r2.notes)
    assert r2.means["diversity@5"] == pytest.approx(res.means["diversity@5"], abs=1e-12)
    with_cats = Evaluator(random_split(n_users=40, n_items=60, seed=7), ["diversity@5"]).evaluate_scores(scores)
    assert not any("item vectors" in n for n in with_cats.notes)


@pytest.mark.parametrize("ties", ["expected", "first"])
def test_a_user_with_fewer_rankable_items_than_k_gets_a_shorter_list(ties):
    """8 items, the user knows 6: items 6 and 7 are all that can be recommended. The masked items padding the top-5
    are never hits and, beyond accuracy, never recommendations: novelty, diversity and coverage are those of the
    two-item list [6, 7], whatever the scores (constant: every item tied) and whoever pads it."""
    from metarec.eval import metrics as M

    train = pd.DataFrame({"user": [0] * 6 + [1] * 3, "item": [0, 1, 2, 3, 4, 5, 0, 1, 2]})
    test = pd.DataFrame({"user": [0, 1], "item": [6, 3]})
    genres = ["a", "a|b", "b", "c", "a", "b|c", "a|c", "c"]
    split = Split("short", "ratio", {}, 0, 2, 8, {"train": train, "valid": test.iloc[:0], "test": test},
                  item_features=pd.DataFrame({"genres": genres}))
    res = Evaluator(split, ["hit@5", "precision@5", "novelty@5", "diversity@5", "coverage@5"],
                    ties=ties).evaluate_scores(torch.zeros(2, 8))
    info = M.self_information(torch.bincount(torch.tensor(train.item.to_numpy()), minlength=8))
    short = res.per_user.loc[0]
    assert short["hit@5"] == 1.0 and short["precision@5"] == pytest.approx(1 / 5)   # RecBole: hits / K
    assert short["novelty@5"] == pytest.approx(float(info[6] + info[7]) / 2, abs=1e-12)
    assert short["diversity@5"] == pytest.approx(1 - 1 / 2, abs=1e-12)   # {a, c} vs {c}: Jaccard 1/2
    # user 0 can only be shown 6 and 7; user 1 (5 rankable items, 3..7) is shown all of them
    assert res.means["coverage@5"] == pytest.approx(5 / 8, abs=1e-12)


def test_padding_alone_at_the_cut_off_is_no_tie():
    """User 0 can be shown 2 items, so its top-3 ends with one masked item (and the next one is masked too): the only
    equal scores in the batch are those -inf. Nothing is tied among recommendations, so tie-aware values equal the
    plain ones, item for item."""
    train = pd.DataFrame({"user": [0] * 6 + [1] * 3, "item": [0, 1, 2, 3, 4, 5, 0, 1, 2]})
    test = pd.DataFrame({"user": [0, 1], "item": [6, 3]})
    genres = ["a", "a|b", "b", "c", "a", "b|c", "a|c", "c"]
    split = Split("pad", "ratio", {}, 0, 2, 8, {"train": train, "valid": test.iloc[:0], "test": test},
                  item_features=pd.DataFrame({"genres": genres}))
    metrics = ["hit@3", "ndcg@3", "mrr@3", "precision@3", "novelty@3", "diversity@3", "coverage@3", "gini@3"]
    scores = torch.arange(16, dtype=torch.float32).reshape(2, 8) % 7     # distinct within each user's rankable items
    expected = Evaluator(split, metrics, ties="expected").evaluate_scores(scores)
    first = Evaluator(split, metrics, ties="first").evaluate_scores(scores)
    pd.testing.assert_frame_equal(expected.per_user, first.per_user, rtol=0, atol=1e-12)
    assert expected.means == pytest.approx(first.means, abs=1e-12)


def test_the_defaults_a_published_number_depends_on():
    """Sampled mode draws 100 negatives (RecBole's uni100) from seed 0; score blocks hold at most 2^25 entries, at
    most 1024 users, at least one; and the printed line lists every metric."""
    ev = Evaluator(random_split(n_users=4, n_items=30), ["ndcg@5"])
    assert (ev.num_negatives, ev.seed, ev.ties, ev.mode, ev.batch_size) == (100, 0, "expected", "full", 1024)
    for n_items, batch in ((2 ** 16, 512), (2 ** 25 + 1, 1), (2 ** 26, 1)):
        big = Split("big", "ratio", {}, 0, 2, n_items, {"train": pd.DataFrame({"user": [0], "item": [0]}),
                                                         "valid": pd.DataFrame({"user": [1], "item": [1]}),
                                                         "test": pd.DataFrame({"user": [1], "item": [2]})})
        assert Evaluator(big, ["ndcg@5"]).batch_size == batch, n_items
    res = Evaluator(random_split(n_users=6, n_items=30), ["ndcg@5", "hit@5"]).evaluate_scores(
        distinct_scores(6, 30))
    assert str(res) == (f"[test | full | {res.n_users} users] ndcg@5={res.means['ndcg@5']:.4f}  "
                        f"hit@5={res.means['hit@5']:.4f}")


# ---- every input check, fed its case -----------------------------------------------------------------------------
def _imp_split(**test_cols):
    test = {"impression": [0, 0, 1, 1], "user": [1, 1, 0, 0], "item": [1, 2, 0, 3], "label": [1, 0, 0, 1]}
    test.update(test_cols)
    test = {k: v for k, v in test.items() if v is not None}
    return Split("m", "impressions", {}, 0, 2, 4, {
        "train": pd.DataFrame({"user": [0], "item": [0]}),
        "valid": pd.DataFrame({"impression": [], "user": [], "item": [], "label": []}),
        "test": pd.DataFrame(test)})


@pytest.mark.parametrize("kwargs, error, message", [
    ({"ties": "random"}, ConfigError, r"^ties must be one of expected, first, got 'random'$"),
    ({"mode": "exhaustive"}, ConfigError, r"^evaluation mode must be one of full, sampled, sampled-pop, got "
                                          r"'exhaustive'$"),
    ({"batch_size": 0}, ConfigError, r"^evaluation batch_size must be a positive integer, got 0$"),
    ({"batch_size": True}, ConfigError, r"batch_size must be a positive integer, got True"),
    ({"batch_size": 2.0}, ConfigError, r"batch_size must be a positive integer, got 2.0"),
    ({"mode": "sampled", "num_negatives": 0}, ConfigError, r"^num_negatives must be a positive integer, got 0$"),
    ({"mode": "sampled-pop", "num_negatives": 1.5}, ConfigError, r"num_negatives must be a positive integer"),
    ({"metrics": ["hit@9"]}, ConfigError, r"^cut-off 9 exceeds the number of items \(8\)$"),
])
def test_evaluator_settings_are_checked(kwargs, error, message):
    with pytest.raises(error, match=message):
        Evaluator(tiny_split(), **{"metrics": ["hit@2"], **kwargs})


def test_settings_that_are_fine():
    ev = Evaluator(tiny_split(), ["hit@8"], num_negatives=0)          # num_negatives only matters when sampling
    assert (ev.batch_size, ev.mode_label, ev.kmax, ev.metric_names) == (1024, "full", 8, ["hit@8"])
    big = Split("big", "ratio", {}, 0, 1, 2 ** 16, tiny_split().frames)
    assert Evaluator(big, ["hit@2"]).batch_size == 2 ** 25 // 2 ** 16   # score blocks of at most 2^25 entries
    assert Evaluator(tiny_split(), ["hit@2"], batch_size=np.int64(3)).batch_size == 3
    assert Evaluator(tiny_split(), ["hit@2"], mode="sampled", num_negatives=7).mode_label == "sampled-7"
    assert Evaluator(tiny_split(), ["hit@2"], mode="sampled-pop", num_negatives=5).mode_label == "sampled-pop-5"
    assert Evaluator(_imp_split(), ["auc"]).mode_label == "impressions" and Evaluator(_imp_split(), ["auc"]).kmax == 0


@pytest.mark.parametrize("scores, error, message", [
    (torch.zeros(3, 8), ValueError, r"^score matrix must be \[n_users=4, n_items=8\], got \(3, 8\)$"),
    (torch.zeros(4, 7), ValueError, r"got \(4, 7\)"),
    (torch.zeros(32), ValueError, r"got \(32,\)"),
    ("scores", TypeError, r"^scores must be a tensor \[n_users, n_items\] or a callable users -> scores$"),
    (lambda u: "many", TrainingError, r"^score\(\) at stage 'test' returned str, not a tensor or array of scores"),
    (lambda u: torch.zeros(len(u), 7), TrainingError, r"^score\(\) at stage 'test' returned shape \(3, 7\); it must "
                                                      r"be \[users asked, n_items\] = \[3, 8\]$"),
    (lambda u: torch.zeros(len(u), 8, dtype=torch.bool), TrainingError, r"returned torch.bool scores; return real"),
    (lambda u: torch.zeros(len(u), 8, dtype=torch.complex64), TrainingError, r"returned torch.complex64 scores"),
    (lambda u: torch.full((len(u), 8), float("nan")), TrainingError, r"the method returned NaN scores at stage "
                                                                     r"'test'"),
])
def test_score_sources_are_checked(scores, error, message):
    with pytest.raises(error, match=message):
        Evaluator(tiny_split(), ["hit@2"]).evaluate_scores(scores)


def test_integer_scores_are_ranked_as_numbers():
    s = torch.zeros(4, 8, dtype=torch.int64)
    s[0, 3] = s[1, 5] = s[2, 6] = s[2, 7] = 1
    assert Evaluator(tiny_split(), ["hit@1"]).evaluate_scores(lambda u: s[u]).means["hit@1"] == 1.0


def test_nan_without_a_top_k_metric_is_still_an_error():
    s = torch.zeros(4, 8)
    s[0, 5] = float("nan")
    with pytest.raises(TrainingError, match=r"the method returned NaN scores at stage 'test'"):
        Evaluator(tiny_split(), ["auc"]).evaluate_scores(s)


def test_ids_outside_the_catalogue_are_a_data_error():
    bad = tiny_split()
    bad.frames["test"] = pd.DataFrame({"user": [0, 1], "item": [3, 8]})
    with pytest.raises(DataError, match=r"^test frame: user/item ids out of range 0..3 / 0..7$"):
        Evaluator(bad, ["hit@2"]).evaluate_scores(torch.zeros(4, 8))


def test_top_k_lists_are_checked():
    ev = Evaluator(tiny_split(), ["hit@2"])
    for k in (0, 9):
        with pytest.raises(ConfigError, match=rf"^k must be in 1..8, got {k}$"):
            ev.top_k(torch.zeros(4, 8), k=k)
    users, items = ev.top_k(-torch.arange(8.0).repeat(4, 1), k=2)   # low ids first, unless known
    assert users.tolist() == [0, 1, 2] and items.tolist() == [[3, 4], [0, 1], [0, 1]]   # user 3 has no target
    empty = Split("e", "ratio", {}, 0, 4, 8, {**tiny_split().frames, "test": pd.DataFrame({"user": [], "item": []},
                                                                                        dtype=np.int64)})
    users, items = Evaluator(empty, ["hit@2"]).top_k(torch.zeros(4, 8), k=3)
    assert users.shape == (0,) and items.shape == (0, 3)
    with pytest.raises(ConfigError, match=r"^top_k lists are defined for ranking protocols, not impressions$"):
        Evaluator(_imp_split(), ["auc"]).top_k(torch.zeros(2, 4))


def test_impression_inputs_are_checked():
    with pytest.raises(ConfigError, match=r"^the impressions protocol ranks each impression's candidates; "
                                          r"mode='sampled' does not apply$"):
        Evaluator(_imp_split(), ["auc"], mode="sampled-pop")
    with pytest.raises(DataError, match=r"^impressions split: the test frame lacks column\(s\) label$"):
        Evaluator(_imp_split(label=None), ["auc"]).evaluate_scores(torch.zeros(2, 4))

    class Pairs:
        def __init__(self, out):
            self.out = out

        def score_pairs(self, users, items):
            return self.out(users, items)

    with pytest.raises(ValueError, match=r"^score_pairs returned 1 scores for 4 pairs$"):
        Evaluator(_imp_split(), ["auc"]).evaluate(Pairs(lambda u, i: torch.zeros(1)))
    with pytest.raises(TrainingError, match=r"^the method returned NaN scores at stage 'test'$"):
        Evaluator(_imp_split(), ["auc"]).evaluate(Pairs(lambda u, i: torch.full((len(u),), float("nan"))))
    res = Evaluator(_imp_split(), ["auc", "mrr"]).evaluate(Pairs(lambda u, i: i.float()))
    assert res.means == {"auc": 0.5, "mrr": 0.75} and res.unit == "impression"


def test_rating_predictions_must_match_the_pairs():
    split = tiny_split()
    split.frames["test"] = split.test.assign(rating=[4.0, 3.0, 5.0, 1.0])
    with pytest.raises(ValueError, match=r"^predict_rating returned 2 values for 4 pairs$"):
        Evaluator(split, ["mae"]).evaluate_scores(torch.zeros(4, 8), predict_rating=lambda u, i: torch.zeros(2))
    res = Evaluator(split, ["mae", "rmse"]).evaluate_scores(torch.zeros(4, 8),
                                                             predict_rating=lambda u, i: torch.full((len(u),), 3.0))
    assert res.means["mae"] == pytest.approx(1.25) and res.means["rmse"] == pytest.approx(1.5)


def test_the_result_says_what_was_measured():
    split = tiny_split()
    kept = torch.arange(32.0).reshape(4, 8)
    before = kept.clone()
    res = Evaluator(split, ["ndcg@3", "hit@2", "coverage@2"]).evaluate_scores(lambda u: kept[u], "valid")
    assert torch.equal(kept, before)                      # the method's own tensor is never masked in place
    assert list(res.means) == ["ndcg@3", "hit@2", "coverage@2"] and list(res.per_user.columns) == ["ndcg@3", "hit@2"]
    assert (res.stage, res.mode, res.unit, res.n_users) == ("valid", "full", "user", 3)
    assert res.per_user.index.name == "user" and res.per_user.index.tolist() == [0, 1, 2]
    assert res.per_user.attrs == {"mode": "full", "stage": "valid"}
    d = res.to_dict()
    assert d == {"stage": "valid", "mode": "full", "unit": "user", "n_units": 3, "metrics": res.means,
                 "timings": res.timings, "notes": res.notes}
    assert d["metrics"] is not res.means and d["timings"] is not res.timings
    assert set(res.timings) == {"adapt_s", "score_s", "total_s", "metrics_s"}
    assert res.timings["adapt_s"] == 0.0 and res.timings["total_s"] >= res.timings["score_s"] >= 0
    assert res.timings["metrics_s"] == pytest.approx(res.timings["total_s"] - res.timings["score_s"], abs=1e-12)
    text = str(res)
    assert text.startswith("[valid | full | 3 users] ndcg@3=") and f"hit@2={res.means['hit@2']:.4f}" in text
    s = Evaluator(split, ["hit@2"], mode="sampled", num_negatives=3).evaluate_scores(kept)
    assert s.mode == "sampled-3" and s.per_user.attrs["mode"] == "sampled-3" and "sampled-3" in str(s)


def test_a_method_is_adapted_on_the_support_set_and_timed():
    split = tiny_split()
    split.frames["test_support"] = pd.DataFrame({"user": [2], "item": [1]})

    class Adapting:
        seen = None

        def adapt(self, support):
            Adapting.seen = support.copy()

        def score(self, users):
            return torch.zeros(len(users), 8)

    res = Evaluator(split, ["hit@2"]).evaluate(Adapting(), "test")
    assert Adapting.seen.to_dict("list") == {"user": [2], "item": [1]}
    assert res.timings["adapt_s"] >= 0 and res.timings["total_s"] >= res.timings["adapt_s"]
    assert res.timings["metrics_s"] == pytest.approx(res.timings["total_s"] - res.timings["score_s"]
                                                     - res.timings["adapt_s"], abs=1e-12)


# ---- what each metric needs is computed whatever else is asked ---------------------------------------------------
ALL_RANKING = ["ndcg@3", "recall@3", "hit@3", "mrr@3", "precision@3", "map@3", "novelty@3", "diversity@3",
               "coverage@3", "gini@3", "auc", "gauc", "coverage@5", "gini@2"]


@pytest.mark.parametrize("ties", ["expected", "first"])
def test_a_metric_asked_alone_equals_the_same_metric_asked_with_all_others(ties):
    """Shared work (the top-K lists, the per-item counts, the self-information, the diversity basis) is set up for
    whichever metric needs it: each metric alone gives exactly what it gives in the full set. Scores with ties, so
    the tie-aware paths run too."""
    split = random_split(n_users=12, n_items=20, seed=3)
    scores = torch.randint(0, 4, (12, 20), generator=torch.Generator().manual_seed(0)).float()
    full = Evaluator(split, ALL_RANKING, ties=ties).evaluate_scores(scores)
    for name in ALL_RANKING:
        alone = Evaluator(split, [name], ties=ties).evaluate_scores(scores)
        assert list(alone.means) == [name] and alone.means[name] == full.means[name], name
    # the diversity basis (and its note) only when diversity is asked for
    assert Evaluator(tiny_split(), ["ndcg@3"]).evaluate_scores(distinct_scores(4, 8)).notes == []


# ---- the method's tensors are its own; timings say what took how long ----------------------------------------------
class KeepsItsScores:
    """Returns the same tensor object on every call (a method may cache its score block): masking it in place would
    change the method's state and every later evaluation."""

    def __init__(self, block):
        self.block = block

    def score(self, users):
        return self.block[: len(users)]   # a view of the kept tensor, contiguous


def test_the_evaluator_never_writes_into_a_tensor_the_method_returns():
    split = tiny_split()
    for ev in (Evaluator(split, ["hit@2", "auc"]), Evaluator(split, ["hit@2"], mode="sampled", num_negatives=2)):
        block = torch.arange(24.0).reshape(3, 8)           # 3 users with targets: one batch of 3
        before = block.clone()
        first = ev.evaluate(KeepsItsScores(block)).means
        assert torch.equal(block, before)
        assert ev.evaluate(KeepsItsScores(block)).means == first
        ev.evaluate_scores(lambda u: block[: len(u)])
        assert torch.equal(block, before)


def test_adaptation_only_with_a_support_set_and_timed_where_it_happens():
    import time

    class AdaptsSlowly:
        calls = []

        def adapt(self, support):
            AdaptsSlowly.calls.append(support)
            time.sleep(0.05)

        def score(self, users):
            return torch.zeros(len(users), 8)

    t0 = time.perf_counter()
    res = Evaluator(tiny_split(), ["hit@2"]).evaluate(AdaptsSlowly())   # a general split: no support set
    wall = time.perf_counter() - t0
    assert AdaptsSlowly.calls == [] and res.timings["adapt_s"] == 0.0
    assert 0 <= res.timings["score_s"] <= res.timings["total_s"] <= wall
    cold = tiny_split()
    cold.frames["test_support"] = pd.DataFrame({"user": [2], "item": [1]})
    t0 = time.perf_counter()
    res = Evaluator(cold, ["hit@2"]).evaluate(AdaptsSlowly())
    wall = time.perf_counter() - t0
    assert len(AdaptsSlowly.calls) == 1 and 0.05 <= res.timings["adapt_s"] <= res.timings["total_s"] <= wall
    t0 = time.perf_counter()
    res = Evaluator(cold, ["hit@2"]).evaluate_scores(torch.zeros(4, 8))
    assert res.timings["adapt_s"] == 0.0 and res.timings["total_s"] <= time.perf_counter() - t0


def test_settings_at_the_smallest_legal_values():
    assert Evaluator(tiny_split(), ["hit@2"], mode="sampled", num_negatives=1).mode_label == "sampled-1"
    assert Evaluator(tiny_split(), ["hit@2"], mode="sampled-pop", num_negatives=np.int64(1)).num_negatives == 1
    s = torch.zeros(4, 8)
    s[0, 5] = float("nan")   # auc only: no top-K selection to catch it, the explicit check does, in these words
    with pytest.raises(TrainingError, match=r"^the method returned NaN scores at stage 'test'$"):
        Evaluator(tiny_split(), ["auc"]).evaluate_scores(s)


def test_impression_stages_are_prepared_each_for_itself():
    from tests.toys import impressions_split

    split = impressions_split()
    scores = distinct_scores(split.n_users, split.n_items)
    ev = Evaluator(split, ["auc", "mrr", "ndcg@5"])
    valid, test = ev.evaluate_scores(scores, "valid"), ev.evaluate_scores(scores, "test")
    assert valid.means == Evaluator(split, ["auc", "mrr", "ndcg@5"]).evaluate_scores(scores, "valid").means
    assert test.means == Evaluator(split, ["auc", "mrr", "ndcg@5"]).evaluate_scores(scores, "test").means
    assert valid.n_users != test.n_users or valid.means != test.means
    with pytest.raises(DataError, match=r"^impressions split: the test frame lacks column\(s\) item, label$"):
        Evaluator(_imp_split(label=None, item=None), ["auc"]).evaluate_scores(torch.zeros(2, 4))


def test_known_items_outside_the_catalogue_are_named():
    bad = tiny_split()
    bad.frames["train"] = pd.DataFrame({"user": [0, 1], "item": [0, 8]})
    with pytest.raises(DataError, match=r"^known\(test\): user/item ids out of range 0..3 / 0..7$"):
        Evaluator(bad, ["hit@2"]).evaluate_scores(torch.zeros(4, 8))


def test_the_impression_result_says_what_was_measured():
    """Every field of an impressions result, each metric alone equal to itself among the others, the note on
    impressions with one label class, and the score-count check in a later batch (rows that do not start at 0)."""
    import time

    from tests.toys import impressions_split

    split = impressions_split()
    test = split.test.copy()
    one_class = test.impression.iloc[0]
    test.loc[test.impression == one_class, "label"] = 0       # an impression without a click: no AUC there
    split.frames["test"] = test
    scores = distinct_scores(split.n_users, split.n_items)
    names = ["auc", "mrr", "ndcg@5", "ndcg@3"]
    t0 = time.perf_counter()
    res = Evaluator(split, names, batch_size=4).evaluate_scores(scores)
    wall = time.perf_counter() - t0
    n_imp = test.impression.nunique()
    assert (res.stage, res.mode, res.unit, res.n_users) == ("test", "impressions", "impression", n_imp)
    assert list(res.means) == names and res.per_user.index.name == "impression"
    assert res.per_user.index.tolist() == sorted(test.impression.unique())
    assert list(res.per_user.columns) == ["user"] + names
    first = test.groupby("impression").user.first()
    assert res.per_user["user"].tolist() == first.loc[res.per_user.index].tolist()
    assert res.per_user.attrs == {"mode": "impressions", "stage": "test"}
    assert res.notes == ["auc: 1 impression(s) with a single label class skipped (as MIND)"]
    assert np.isnan(res.per_user.loc[one_class, "auc"]) and res.means["auc"] == pytest.approx(
        res.per_user["auc"].dropna().mean(), abs=1e-15)
    assert set(res.timings) == {"adapt_s", "score_s", "total_s", "metrics_s"}
    assert 0 < res.timings["score_s"] <= res.timings["total_s"] <= wall
    for name in names:
        alone = Evaluator(split, [name]).evaluate_scores(scores)
        assert list(alone.means) == [name] and alone.means[name] == res.means[name], name
    assert Evaluator(split, ["mrr"]).evaluate_scores(scores).notes == []   # no AUC asked: no AUC note

    rows = test.sort_values("user", kind="stable").user.to_numpy()
    batches = np.unique(rows)
    later = rows[(rows >= batches[4]) & (rows < batches[8])]           # the second batch of 4 users

    class ShortInLaterBatches:
        def score_pairs(self, users, items):
            return torch.zeros(len(users) - (1 if int(users.min()) >= batches[4] else 0))
    with pytest.raises(ValueError, match=rf"^score_pairs returned {len(later) - 1} scores for {len(later)} pairs$"):
        Evaluator(split, ["auc"], batch_size=4).evaluate(ShortInLaterBatches())


def test_nan_with_the_first_order_of_ties_names_the_stage():
    s = torch.zeros(4, 8)
    s[1, 7] = float("nan")
    with pytest.raises(TrainingError, match=r"^the method returned NaN scores at stage 'valid' \("):
        Evaluator(tiny_split(), ["hit@2"], ties="first").evaluate_scores(s, "valid")


def test_sampled_candidates_are_pinned_for_a_seed():
    """Sampled-mode numbers depend on which negatives are drawn; for a given seed the draws are part of the
    published result, so they are pinned here (uniform and popularity-weighted), on rows with several targets, no
    free item, no target counted (n_pos 0) and items of zero weight."""
    from metarec.eval.evaluator import _sample_candidates

    B, n = 5, 12
    target, known = torch.zeros(B, n, dtype=torch.bool), torch.zeros(B, n, dtype=torch.bool)
    target[0, [1, 5]], known[0, [0, 2]] = True, True
    target[1, 3], known[1, :] = True, True
    known[1, 3] = False                                           # every other item known: nothing to draw
    target[2, 7] = True                                           # n_pos 0 below: no draw
    target[3, [0, 11]], known[3, 4:8] = True, True
    target[4, 6] = True
    n_pos = torch.tensor([2, 1, 0, 2, 1])
    weights = torch.tensor([0, 3, 1, 0, 2, 5, 1, 1, 0, 4, 2, 7])
    expected = {None: [[1, 5, 6, 9, 10, 11], [3], [7], [0, 1, 2, 8, 9, 11], [0, 1, 6]],
                "pop": [[1, 5, 9, 11], [3], [7], [0, 1, 9, 11], [1, 2, 4, 6]]}
    for key, w in ((None, None), ("pop", weights)):
        cand = _sample_candidates(target, known, n_pos, 3, torch.Generator().manual_seed(7), w)
        assert [torch.nonzero(r).flatten().tolist() for r in cand] == expected[key], key
        assert not (cand & known).any() and (cand | ~target).all()
    assert torch.equal(_sample_candidates(target, known, torch.zeros(5, dtype=torch.long), 3,
                                          torch.Generator().manual_seed(7)), target)   # nothing wanted: targets only


# ---- the remaining corners the mutation run found unguarded -------------------------------------------------------
def test_category_sets_in_every_spelling():
    from metarec.eval.evaluator import _category_matrix

    col = pd.Series(["a|b", ["b", "", "c"], None, float("nan"), "", ("a",), np.array(["c"]), "|c|"], dtype=object)
    assert _category_matrix(col).to(torch.int8).tolist() == [[1, 1, 0], [0, 1, 1], [0, 0, 0], [0, 0, 0], [0, 0, 0],
                                                             [1, 0, 0], [0, 0, 1], [0, 0, 1]]
    assert _category_matrix(pd.Series([None, ""], dtype=object)).shape == (2, 1)   # no category at all


@pytest.mark.parametrize("frame", [{"user": [0, 4], "item": [3, 5]}, {"user": [-1, 1], "item": [3, 5]},
                                   {"user": [0, 1], "item": [-1, 5]}])
def test_every_bound_of_the_ids_is_checked(frame):
    bad = tiny_split()
    bad.frames["test"] = pd.DataFrame(frame)
    with pytest.raises(DataError, match=r"^test frame: user/item ids out of range 0..3 / 0..7$"):
        Evaluator(bad, ["hit@2"]).evaluate_scores(torch.zeros(4, 8))


def test_the_diversity_basis_says_which_and_why():
    from metarec.eval.evaluator import diversity_basis

    split = tiny_split()
    (kind, vec), note = diversity_basis(split)
    assert kind == "vectors" and note == (
        f"diversity@K by item vectors (cosine; rank-{vec.shape[1]} SVD of the training interactions): the split has "
        "no item categories (item_features column 'genres' or 'category')")
    short = tiny_split(item_features=pd.DataFrame({"category": ["a", "b", "c"]}))
    assert diversity_basis(short)[1].endswith(": item_features has 3 rows for 8 items")
    same = tiny_split(item_features=pd.DataFrame({"category": ["a"] * 8}))
    assert diversity_basis(same)[1].endswith(": every item has the same categories in column 'category'")
    two = tiny_split(item_features=pd.DataFrame({"category": ["a", "b"] * 4}))   # two distinct sets are enough
    (kind, cats), note = diversity_basis(two)
    assert kind == "categories" and note is None and cats.shape == (8, 2)


def test_a_cut_off_as_long_as_the_catalogue_with_ties():
    res = Evaluator(tiny_split(), ["hit@8", "ndcg@8", "coverage@8"]).evaluate_scores(torch.zeros(4, 8))
    assert res.means["hit@8"] == 1.0 and res.means["ndcg@8"] < 1.0 and res.means["coverage@8"] == 1.0


def test_a_stage_without_targets_gives_an_empty_result():
    empty = Split("e", "ratio", {}, 0, 4, 8, {**tiny_split().frames, "test": pd.DataFrame(
        {"user": [], "item": []}, dtype=np.int64)})
    res = Evaluator(empty, ["ndcg@2", "auc", "gauc", "coverage@2"]).evaluate_scores(torch.zeros(4, 8))
    assert res.n_users == 0 and res.per_user.shape == (0, 2) and list(res.per_user.columns) == ["ndcg@2", "auc"]
    assert np.isnan(res.means["ndcg@2"]) and np.isnan(res.means["auc"]) and np.isnan(res.means["gauc"])
    assert res.means["coverage@2"] == 0.0


def test_auc_rows_in_chunks_when_users_outnumber_items(monkeypatch):
    import metarec.eval.evaluator as E

    split = random_split(n_users=30, n_items=12, per_user=(4, 8), seed=5)
    scores = distinct_scores(30, 12)
    whole = Evaluator(split, ["auc", "gauc"]).evaluate_scores(scores)
    monkeypatch.setattr(E, "_AUC_CHUNK", 12 * 2)                        # two rows per chunk, 28 rows per batch
    chunked = Evaluator(split, ["auc", "gauc"]).evaluate_scores(scores)
    assert chunked.means == whole.means and chunked.n_users == whole.n_users == 28


def test_scoring_time_adds_up_every_batch_and_the_rating_predictions():
    import time

    split = tiny_split()
    split.frames["test"] = split.test.assign(rating=[4.0, 3.0, 5.0, 1.0])

    def slow_scores(u):
        time.sleep(0.02)
        return torch.zeros(len(u), 8)

    def slow_ratings(u, i):
        time.sleep(0.05)
        return torch.full((len(u),), 3.0)

    res = Evaluator(split, ["hit@2"], batch_size=1).evaluate_scores(slow_scores)     # three batches
    assert res.timings["score_s"] >= 0.06
    res = Evaluator(split, ["hit@2", "rmse"]).evaluate_scores(slow_scores, predict_rating=slow_ratings)
    assert 0.07 <= res.timings["score_s"] <= res.timings["total_s"]
    assert list(res.means) == ["hit@2", "rmse"] and res.means["rmse"] == pytest.approx(1.5)
    assert Evaluator(split, ["rmse"]).evaluate_scores(slow_scores, predict_rating=slow_ratings).means == {
        "rmse": pytest.approx(1.5)}
    res = Evaluator(split, ["mae", "hit@1"]).evaluate(Fake(split), "test")
    assert res.notes == ["mae/rmse skipped: the method does not predict ratings (no predict_rating)"]


def test_popularity_sampling_through_the_evaluator_never_draws_an_item_nobody_trained_on():
    split = random_split(n_users=30, n_items=40, seed=2)
    split.frames["train"] = split.train[split.train.item >= 4].reset_index(drop=True)
    unseen = [0, 1, 2, 3]                                               # nobody trained on these
    scores = torch.zeros(30, 40)
    scores[:, unseen] = 10.0                                            # rank them first wherever they are drawn
    targets = set(zip(split.test.user, split.test.item))
    for mode, drawn in (("sampled-pop", False), ("sampled", True)):
        users, items = Evaluator(split, ["hit@5"], mode=mode, num_negatives=20).top_k(scores, k=5)
        listed = {(u, i) for u, row in zip(users, items) for i in row if i in unseen and (u, i) not in targets}
        assert bool(listed) == drawn, mode
    full = Evaluator(split, ["ndcg@5"]).evaluate_scores(distinct_scores(30, 40)).means["ndcg@5"]
    sampled = Evaluator(split, ["ndcg@5"], mode="sampled", num_negatives=3).evaluate_scores(
        distinct_scores(30, 40)).means["ndcg@5"]
    assert sampled > full                                               # fewer candidates: higher ranks


@pytest.mark.parametrize("ties", ["expected", "first"])
def test_coverage_and_gini_do_not_depend_on_the_batch_size_with_ties(ties):
    split = random_split(n_users=12, n_items=20, seed=4)
    scores = torch.randint(0, 3, (12, 20), generator=torch.Generator().manual_seed(1)).float()
    names = ["coverage@3", "gini@3", "novelty@3", "ndcg@3"]
    one = Evaluator(split, names, batch_size=1, ties=ties).evaluate_scores(scores).means
    many = Evaluator(split, names, ties=ties).evaluate_scores(scores).means
    assert one == pytest.approx(many, abs=1e-12, rel=0)


def test_an_auc_of_no_impression_is_undefined():
    from tests.toys import impressions_split

    split = impressions_split()
    split.frames["test"] = split.test.assign(label=0)
    res = Evaluator(split, ["auc", "mrr"]).evaluate_scores(distinct_scores(split.n_users, split.n_items))
    assert np.isnan(res.means["auc"]) and res.per_user["auc"].isna().all()


def test_top_k_lists_in_every_setting():
    split = random_split(n_users=10, n_items=30, seed=6)
    ev = Evaluator(split, ["hit@5"])
    scores = distinct_scores(10, 30)
    users, items = ev.top_k(scores)
    assert items.shape == (len(users), 10)                               # the default cut-off
    assert ev.top_k(scores, k=30)[1].shape == (len(users), 30)          # up to the whole catalogue
    kept = scores[: len(users)].clone()
    before = kept.clone()
    ev.top_k(lambda u: kept[: len(u)], k=3)                              # a tensor the callable keeps: untouched
    assert torch.equal(kept, before)
    sampled = Evaluator(split, ["hit@5"], mode="sampled", num_negatives=2)
    torch.manual_seed(1)
    a = sampled.top_k(scores, k=3)[1]
    torch.manual_seed(2)
    b = sampled.top_k(scores, k=3)[1]
    assert np.array_equal(a, b)                                          # the evaluator's seed, not the global one
    assert not np.array_equal(a, ev.top_k(scores, k=3)[1])               # and really sampled
    bad = scores.clone()
    bad[0, :] = float("nan")
    with pytest.raises(TrainingError, match=r"^the method returned NaN scores at stage 'valid' \("):
        ev.top_k(bad, stage="valid")
    with pytest.raises(TrainingError, match=r"^score\(\) at stage 'valid' returned shape"):
        ev.top_k(lambda u: torch.zeros(len(u), 3), stage="valid")


def test_impressions_without_candidates_and_their_checks():
    import time

    from tests.toys import impressions_split

    split = impressions_split()
    empty = impressions_split()
    empty.frames["test"] = split.test.iloc[:0]
    res = Evaluator(empty, ["auc", "mrr"]).evaluate_scores(torch.zeros(split.n_users, split.n_items))
    assert res.n_users == 0 and np.isnan(res.means["auc"]) and np.isnan(res.means["mrr"])
    with pytest.raises(TrainingError, match=r"^score\(\) at stage 'valid' returned shape"):
        Evaluator(split, ["auc"]).evaluate_scores(lambda u: torch.zeros(len(u), 3), "valid")

    def slow(u):
        time.sleep(0.02)
        return torch.zeros(len(u), split.n_items)

    n_batches = -(-split.test.user.nunique() // 4)
    assert n_batches >= 3
    res = Evaluator(split, ["auc"], batch_size=4).evaluate_scores(slow)
    assert res.timings["score_s"] >= 0.02 * n_batches


def test_sampling_draws_a_single_wanted_item_and_the_last_item_of_the_batch():
    from metarec.eval.evaluator import _sample_candidates

    target, known = torch.zeros(2, 6, dtype=torch.bool), torch.ones(2, 6, dtype=torch.bool)
    target[0, 0], target[1, 0] = True, True
    known[0, 0], known[1, 0] = False, False
    known[1, 5] = False                                                  # row 1: one free item, the batch's last
    cand = _sample_candidates(target, known, torch.tensor([0, 1]), 1, torch.Generator().manual_seed(0))
    assert cand.tolist() == [[True] + [False] * 5, [True] + [False] * 4 + [True]]


@pytest.mark.parametrize("ties", ["expected", "first"])
def test_short_lists_at_a_smaller_cut_off_than_the_largest(ties):
    """A user with 4 rankable items of 20: short at K = 6, not at K = 3. Each cut-off's beyond-accuracy metrics
    are those of its own lists (alone or beside a larger K), and coverage counts only listed items, never the
    masked ones that pad a short list."""
    rng = np.random.default_rng(0)
    train = [(0, i) for i in range(16)] + [(u, int(i)) for u in range(1, 8) for i in rng.choice(20, 5, replace=False)]
    test = [(0, 16)] + [(u, int(i)) for u in range(1, 8) for i in rng.choice(20, 2, replace=False)
                        if (u, int(i)) not in set(train)]
    split = Split("s", "ratio", {}, 0, 8, 20, {"train": pd.DataFrame(train, columns=["user", "item"]),
                                              "valid": pd.DataFrame({"user": [], "item": []}, dtype=np.int64),
                                              "test": pd.DataFrame(test, columns=["user", "item"])})
    scores = torch.randint(0, 3, (8, 20), generator=torch.Generator().manual_seed(3)).float()
    if ties == "first":
        scores = distinct_scores(8, 20, seed=3)
    small = ["novelty@3", "diversity@3", "coverage@3"]
    alone = Evaluator(split, small, ties=ties).evaluate_scores(scores).means
    beside = Evaluator(split, small + ["hit@6"], ties=ties).evaluate_scores(scores).means
    for name in small:
        assert beside[name] == pytest.approx(alone[name], abs=1e-12), name
    low = distinct_scores(8, 20, seed=3)
    low[:, :2] = -100.0                     # nobody's list reaches items 0 and 1, which pad user 0's short list
    cov = Evaluator(split, ["coverage@6"], ties=ties).evaluate_scores(low).means
    users, items = Evaluator(split, ["coverage@6"]).top_k(low, k=6)
    known = set(map(tuple, split.train[["user", "item"]].to_numpy()))
    listed = {int(i) for u, row in zip(users, items) for i in row if (u, int(i)) not in known}
    assert cov["coverage@6"] == pytest.approx(len(listed) / 20, abs=1e-12)


def test_rating_metrics_of_a_rated_stage_without_rows():
    split = tiny_split()
    split.frames["test"] = pd.DataFrame({"user": [], "item": [], "rating": []}).astype(
        {"user": np.int64, "item": np.int64})
    res = Evaluator(split, ["mae", "rmse"]).evaluate_scores(torch.zeros(4, 8),
                                                          predict_rating=lambda u, i: torch.zeros(len(u)))
    assert np.isnan(res.means["mae"]) and np.isnan(res.means["rmse"]) and res.n_users == 0


def test_a_single_masked_item_padding_a_whole_catalogue_list_is_not_covered():
    """K = n_items and one known item: the list is padded by exactly one masked item, so no two scores tie and the
    plain path runs (one user per batch: the other user's padding ties); the padding is still not a recommendation."""
    frames = {"train": pd.DataFrame({"user": [0, 1, 1], "item": [0, 0, 1]}),
              "valid": pd.DataFrame({"user": [], "item": []}, dtype=np.int64),
              "test": pd.DataFrame({"user": [0, 1], "item": [3, 4]})}
    split = Split("one", "ratio", {}, 0, 2, 6, frames)
    res = Evaluator(split, ["coverage@6", "hit@6"], batch_size=1).evaluate_scores(distinct_scores(2, 6))
    assert res.means["coverage@6"] == pytest.approx(5 / 6, abs=1e-12) and res.means["hit@6"] == 1.0
