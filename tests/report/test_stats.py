"""Seed-level statistics: tests checked against scipy on known data, Holm with several methods, bootstrap interval
coverage measured in a simulation."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sst

from metarec.report.stats import compare, holm


def frame(values: dict[str, np.ndarray]) -> pd.DataFrame:
    """values: method -> [seeds, users] array -> the long per-user frame the report reads."""
    rows = []
    for m, v in values.items():
        for s in range(v.shape[0]):
            rows.append(pd.DataFrame({"method": m, "seed": s, "user": np.arange(v.shape[1]), "ndcg@10": v[s]}))
    return pd.concat(rows, ignore_index=True)


def simulate(rng, seeds=5, users=200, delta=0.01, split_sd=0.01, user_sd=0.1, seed_effect_sd=0.0):
    base = rng.normal(0.3, 0.05, (seeds, 1)) + rng.normal(0, user_sd, (seeds, users))
    diff = delta + rng.normal(0, split_sd, (seeds, 1)) + rng.normal(0, user_sd, (seeds, users))
    return {"ref": base, "m": base + diff}


def test_holm_against_the_definition_with_several_methods():
    p = [0.01, 0.04, 0.03, 0.005, float("nan")]
    # sorted 0.005, 0.01, 0.03, 0.04 -> x4, x3, x2, x1, running max
    assert holm(p)[:4] == pytest.approx([0.03, 0.06, 0.06, 0.02]) and np.isnan(holm(p)[4])
    assert holm([0.02, 0.5]) == pytest.approx([0.04, 0.5])


@pytest.mark.parametrize("m", [3, 4, 7, 12])
def test_holm_equals_statsmodels_multipletests(m, monkeypatch):
    """An independent implementation (statsmodels' ``multipletests(method="holm")``) on random p-values with
    ties, values near 1 (the cap) and m comparisons, 50 draws each."""
    import gc

    from statsmodels.stats.multitest import multipletests

    # multipletests ends with a full gc.collect(): ~0.15 s a call on this suite's heap, for nothing we test
    monkeypatch.setattr(gc, "collect", lambda *a: 0)
    rng = np.random.default_rng(m)
    for _ in range(50):
        p = rng.choice([rng.uniform(0, 0.06), rng.uniform(0, 1), 0.01], size=m)
        assert holm(p.tolist()) == pytest.approx(list(multipletests(p, method="holm")[1]), rel=1e-12, abs=0)


def test_seed_level_test_on_a_published_example():
    """Student's sleep data (Cushny & Peebles 1905; R's ``sleep``, ``t.test(extra ~ group, paired = TRUE)``): ten
    patients, two drugs. Read as ten seeds of one user each, the seed-level comparison must print R's published
    numbers: mean difference 1.58, t = 4.0621, df = 9, p = 0.002833, 95 % interval [0.7001142, 2.4598858]."""
    drug1 = np.array([0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0])
    drug2 = np.array([1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4])
    r = compare(frame({"drug1": drug1[:, None], "drug2": drug2[:, None]}), "drug1", "ndcg@10", n_boot=50).iloc[0]
    assert r.n_seeds == 10 and r.delta == pytest.approx(1.58, abs=1e-12)
    assert r.seed_t == pytest.approx(4.0621, abs=5e-5) and r.seed_p == pytest.approx(0.002833, abs=5e-7)
    assert (r.ci_low, r.ci_high) == pytest.approx((0.7001142, 2.4598858), abs=5e-8)
    assert r.significant


def test_seed_level_test_and_combined_user_tests_equal_scipy():
    rng = np.random.default_rng(1)
    v = simulate(rng, seeds=5, users=50, delta=0.02)
    v["other"] = v["ref"] + 0.05 + rng.normal(0, 0.1, v["ref"].shape)
    out = compare(frame(v), "ref", "ndcg@10", n_boot=200).set_index("method")
    for m in ("m", "other"):
        pm, pr = v[m].mean(1), v["ref"].mean(1)
        r = out.loc[m]
        assert r.seed_p == pytest.approx(sst.ttest_rel(pm, pr).pvalue, rel=1e-9, abs=0)
        assert r.delta == pytest.approx((pm - pr).mean(), rel=1e-12, abs=0)
        assert r.rel_delta == pytest.approx((pm - pr).mean() / pr.mean(), rel=1e-12, abs=0)
        assert r.d_z == pytest.approx((pm - pr).mean() / (pm - pr).std(ddof=1), rel=1e-9, abs=0)
        one = [sst.ttest_rel(v[m][s], v["ref"][s], alternative="greater").pvalue for s in range(5)]
        g = sst.combine_pvalues(one, method="stouffer").pvalue
        assert r.user_p == pytest.approx(2 * min(g, 1 - g), rel=1e-9, abs=0)
    assert list(out.seed_p_holm) == pytest.approx(holm(list(out.seed_p)), rel=1e-12, abs=0)
    assert out.loc["other", "significant"] and out.loc["other", "ci_low"] > 0


def test_one_seed_has_no_seed_test_and_no_marker():
    rng = np.random.default_rng(2)
    v = simulate(rng, seeds=1, users=300, delta=0.05)
    r = compare(frame(v), "ref", "ndcg@10", n_boot=200).iloc[0]
    assert np.isnan(r.seed_p) and not r.significant and r.user_p < 1e-3   # users say it differs, seeds cannot


def test_users_paired_within_their_seed_only():
    """Users evaluated by only one of the two methods are left out, and a user id in two seeds is two units."""
    v = {"ref": np.zeros((2, 4)), "m": np.ones((2, 4))}
    f = frame(v)
    f = f[~((f.method == "m") & (f.seed == 0) & (f.user == 3))]
    r = compare(f, "ref", "ndcg@10", n_boot=50).iloc[0]
    assert r.n_users == 7 and r.delta == 1.0


def simulate_effects(rng, seeds, users, delta, split_sd, user_sd=0.1):
    """Like ``simulate`` but also returns the per-seed true differences (delta + that split's effect)."""
    base = rng.normal(0.3, 0.05, (seeds, 1)) + rng.normal(0, user_sd, (seeds, users))
    effect = delta + rng.normal(0, split_sd, seeds)
    return {"ref": base, "m": base + effect[:, None] + rng.normal(0, user_sd, (seeds, users))}, effect


@pytest.mark.parametrize("split_sd", [0.0, 0.03])
def test_intervals_cover_their_targets_about_95_percent(split_sd):
    """200 simulated 5-seed grids (a split effect of sd ``split_sd`` on the difference, noisy users). The seed
    interval covers the expected difference across splits ~95 % of the time whatever the split effect; the
    users-within-seed bootstrap covers the difference on the grid's own splits ~95 %, and so undercovers the
    expected one once splits matter (why it never marks the main table); the hierarchical bootstrap that also
    resamples users inside resampled seeds (percentile interval) is measured beside them: it counts user noise
    twice and still misses at five seeds when splits matter."""
    rng = np.random.default_rng(10)
    n, seed_hits, user_hits, user_hits_across, hier_hits = 200, 0, 0, 0, 0
    for _ in range(n):
        v, effect = simulate_effects(rng, 5, 100, 0.01, split_sd)
        r = compare(frame(v), "ref", "ndcg@10", n_boot=200, seed=int(rng.integers(1 << 30))).iloc[0]
        seed_hits += r.ci_low <= 0.01 <= r.ci_high
        user_hits += r.ci_users_low <= effect.mean() <= r.ci_users_high
        user_hits_across += r.ci_users_low <= 0.01 <= r.ci_users_high
        d = v["m"] - v["ref"]
        pick = rng.integers(0, 5, (200, 5))
        users = rng.integers(0, d.shape[1], (200, 5, d.shape[1]))
        lo, hi = np.percentile(d[pick[..., None], users].mean((1, 2)), [2.5, 97.5])
        hier_hits += lo <= 0.01 <= hi
    assert 0.92 <= seed_hits / n <= 0.98, seed_hits / n
    assert 0.92 <= user_hits / n <= 0.98, user_hits / n
    print(f"split_sd {split_sd}: seed {seed_hits / n:.3f}, users (own splits) {user_hits / n:.3f}, users "
          f"(across splits) {user_hits_across / n:.3f}, hierarchical percentile {hier_hits / n:.3f}")
    if split_sd >= 0.03:
        assert user_hits_across / n < 0.8 and hier_hits / n < 0.92


def test_every_column_of_a_comparison_against_a_direct_computation():
    """Two seeds of unequal size: the per-seed means (not the pooled mean), relative values, both intervals, the
    user-level effect size and the Holm columns, each against a direct computation."""
    rng = np.random.default_rng(5)
    ref = [rng.normal(0.3, 0.1, 40), rng.normal(0.5, 0.1, 10)]
    m = [r + 0.02 + rng.normal(0, 0.05, len(r)) for r in ref]
    rows = [pd.DataFrame({"method": name, "seed": s, "user": np.arange(len(v[s])), "ndcg@10": v[s]})
            for name, v in (("ref", ref), ("m", m)) for s in (0, 1)]
    r = compare(pd.concat(rows), "ref", "ndcg@10", n_boot=400, seed=3).iloc[0]
    dm = np.array([(m[s] - ref[s]).mean() for s in (0, 1)])
    rm = np.array([ref[s].mean() for s in (0, 1)])
    assert (r.method, r.reference, r.metric, r.n_seeds, r.n_users) == ("m", "ref", "ndcg@10", 2, 50)
    assert r.delta == pytest.approx(dm.mean(), abs=1e-15) and r.reference_mean == pytest.approx(rm.mean(), abs=1e-15)
    assert r["mean"] == pytest.approx(rm.mean() + dm.mean(), abs=1e-15)
    half = sst.t.ppf(0.975, 1) * dm.std(ddof=1) / np.sqrt(2)
    assert (r.ci_low, r.ci_high) == pytest.approx((dm.mean() - half, dm.mean() + half), abs=1e-12)
    assert (r.rel_ci_low, r.rel_ci_high) == pytest.approx((r.ci_low / rm.mean(), r.ci_high / rm.mean()), abs=1e-12)
    assert r.seed_t == pytest.approx(sst.ttest_rel(dm + rm, rm).statistic, rel=1e-9)
    d = [m[s] - ref[s] for s in (0, 1)]
    assert r.user_d == pytest.approx(np.mean([x.mean() / x.std(ddof=1) for x in d]), rel=1e-9)
    # users-within-seed bootstrap: the same replicates by hand
    g = np.random.default_rng(3)
    boot = np.zeros(400)
    for x in d:
        boot += x[g.integers(0, len(x), size=(400, len(x)))].sum(1) / len(x)
    lo, hi = np.percentile(boot / 2, [2.5, 97.5])
    assert (r.ci_users_low, r.ci_users_high) == pytest.approx((lo, hi), abs=1e-12)
    assert r.seed_p_holm == r.seed_p and r.user_p_holm == r.user_p     # one comparison: Holm changes nothing


def test_degenerate_comparisons():
    """No metric or no reference: an empty frame. Identical per-seed differences: p 0 (or 1 when all are 0), no
    t or d_z. A seed whose users all differ by the same amount gives the combined user test its strongest vote."""
    v = {"ref": np.zeros((3, 4)), "m": np.zeros((3, 4)) + 0.1, "same": np.zeros((3, 4))}
    f = frame(v)
    assert compare(f, "ref", "recall@10").empty and compare(f, "nobody", "ndcg@10").empty
    out = compare(f, "ref", "ndcg@10", n_boot=20).set_index("method")
    m, same = out.loc["m"], out.loc["same"]
    assert m.seed_p == 0.0 and np.isnan(m.seed_t) and np.isnan(m.d_z) and m.significant
    assert same.seed_p == 1.0 and same.delta == 0 and not same.significant
    assert m.user_p == pytest.approx(2 * sst.norm.sf(8.0 * 3 / np.sqrt(3)), rel=1e-9, abs=0) and np.isnan(m.user_d)
    assert same.user_p == 1.0
    zero_ref = compare(frame({"ref": np.zeros((2, 3)), "m": np.ones((2, 3))}), "ref", "ndcg@10", n_boot=10).iloc[0]
    assert np.isnan(zero_ref.rel_delta) and np.isnan(zero_ref.rel_ci_low) and np.isnan(zero_ref.rel_ci_high)


def test_users_interval_only_when_asked_and_impressions_are_the_unit():
    rng = np.random.default_rng(4)
    v = simulate(rng, seeds=3, users=30)
    r = compare(frame(v), "ref", "ndcg@10", n_boot=50, user_ci=False).iloc[0]
    assert np.isnan(r.ci_users_low) and np.isnan(r.ci_users_high) and not np.isnan(r.ci_low)
    one = compare(frame(simulate(rng, seeds=1, users=30)), "ref", "ndcg@10", n_boot=50, user_ci=False).iloc[0]
    assert not np.isnan(one.ci_users_low) and (one.ci_low, one.ci_high) == (one.ci_users_low, one.ci_users_high)
    # impressions: two impressions of the same user are two units
    f = frame({"ref": np.zeros((1, 4)), "m": np.array([[0.0, 1.0, 0.0, 1.0]])})
    f["impression"] = f["user"]
    f["user"] = 7
    r = compare(f, "ref", "ndcg@10", n_boot=20).iloc[0]
    assert r.n_users == 4 and r.delta == 0.5


def test_significance_needs_two_seeds_and_the_holm_adjusted_p_below_alpha():
    """Three methods: Holm multiplies the smallest seed p by 3; alpha is the threshold for the adjusted value."""
    rng = np.random.default_rng(8)
    base = rng.normal(0.3, 0.05, (4, 30))
    v = {"ref": base, "a": base + 0.01 + rng.normal(0, 0.004, (4, 1)), "b": base + 0.002 + rng.normal(0, 0.01, (4, 1)),
         "c": base - 0.03 + rng.normal(0, 0.004, (4, 1))}
    out = compare(frame(v), "ref", "ndcg@10", n_boot=20).set_index("method")
    assert list(out.seed_p_holm) == pytest.approx(holm(list(out.seed_p)), rel=1e-12, abs=0)
    assert out.seed_p_holm.min() == pytest.approx(3 * out.seed_p.min(), rel=1e-12, abs=0)
    for alpha in (0.05, 0.01, 1e-4):
        got = compare(frame(v), "ref", "ndcg@10", n_boot=20, alpha=alpha).set_index("method").significant
        assert (got == (out.seed_p_holm < alpha)).all()
    assert out.significant.any() and not out.significant.all()


def test_edge_rules_of_the_comparison():
    # two seeds with the same difference: no spread, yet two seeds agree (p 0, marked)
    two = compare(frame({"ref": np.zeros((2, 3)), "m": np.full((2, 3), 0.2)}), "ref", "ndcg@10", n_boot=10).iloc[0]
    assert two.n_seeds == 2 and two.seed_p == 0.0 and two.significant
    # a method evaluated on no unit the reference was: left out, and the methods after it still compared
    f = frame({"ref": np.zeros((1, 3)), "a_none": np.ones((1, 3)), "b": np.ones((1, 3))})
    f.loc[f.method == "a_none", "user"] += 100
    assert compare(f, "ref", "ndcg@10", n_boot=10).method.tolist() == ["b"]
    # the same (seed, user, method) twice: the first value counts
    g = frame({"ref": np.zeros((1, 2)), "m": np.ones((1, 2))})
    g = pd.concat([g, g[g.method == "m"].assign(**{"ndcg@10": 5.0})], ignore_index=True)
    assert compare(g, "ref", "ndcg@10", n_boot=10).iloc[0].delta == 1.0


def test_the_users_bootstrap_is_seeded():
    f = frame(simulate(np.random.default_rng(11), seeds=2, users=20))
    default = compare(f, "ref", "ndcg@10", n_boot=100).iloc[0]
    assert default.ci_users_low == compare(f, "ref", "ndcg@10", n_boot=100, seed=0).iloc[0].ci_users_low
    assert default.ci_users_low != compare(f, "ref", "ndcg@10", n_boot=100, seed=1).iloc[0].ci_users_low


def test_holm_reads_missing_p_values_as_nan():
    out = holm([0.01, None, 0.02])
    assert out[0] == pytest.approx(0.02) and np.isnan(out[1]) and out[2] == pytest.approx(0.02)
    assert holm([]) == []


def test_user_level_test_with_two_users_a_seed_and_a_seed_without_spread():
    """Two users with different differences are a t-test with one degree of freedom (scipy's); a seed whose users
    all differ by exactly 1 votes with z = 8 (p ~ 1e-15), as strongly as any seed can."""
    ref = np.array([[0.1, 0.5], [0.2, 0.4]])
    m = ref + np.array([[0.3, 0.1], [0.25, 0.05]])
    r = compare(frame({"ref": ref, "m": m}), "ref", "ndcg@10", n_boot=10).iloc[0]
    one = [sst.ttest_rel(m[s], ref[s], alternative="greater").pvalue for s in range(2)]
    g = sst.combine_pvalues(one, method="stouffer").pvalue
    assert r.user_p == pytest.approx(2 * min(g, 1 - g), rel=1e-9, abs=0)
    flat = compare(frame({"ref": np.zeros((1, 3)), "m": np.ones((1, 3))}), "ref", "ndcg@10", n_boot=10).iloc[0]
    assert flat.user_p == pytest.approx(2 * sst.norm.sf(8.0), rel=1e-9, abs=0)


def test_mean_interval_is_the_student_interval_of_the_mean():
    """The interval the K-shot figures and the summaries' tables draw: scipy's t interval around the mean (sem)."""
    from metarec.report.stats import mean_interval

    rng = np.random.default_rng(3)
    for n in (2, 5, 12):
        v = rng.normal(0.1, 0.02, size=n)
        mean, half = mean_interval(v)
        lo, hi = sst.t.interval(0.95, n - 1, loc=v.mean(), scale=sst.sem(v))
        assert mean == pytest.approx(v.mean(), rel=1e-12) and half == pytest.approx((hi - lo) / 2, rel=1e-9)
    assert mean_interval([0.3, np.nan])[0] == 0.3 and np.isnan(mean_interval([0.3, np.nan])[1])   # one seed
    assert all(np.isnan(x) for x in mean_interval([]))
