"""Report summaries: the registry, the grid key, and each built-in summary on data whose answer is known."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from metarec.bench import parse_grid
from metarec.errors import ConfigError, UnknownNameError
from metarec.report.stats import holm
from metarec.report.summaries import SummaryContext, get_summary, list_summaries, register_summary, run_summaries


def tidy_rows(cells: dict, protocol="general", params="{}", extra=None) -> pd.DataFrame:
    """cells: (method, seed, metric) -> value; one test and one valid row each, all selected."""
    rows = []
    for (method, seed, metric), value in cells.items():
        for stage in ("valid", "test"):
            rows.append({"run": f"{method}-{seed}-{params}", "dataset": "d", "protocol": protocol,
                         "protocol_params": params, "method": method, "family": "baseline", "params": "{}",
                         "seed": seed, "stage": stage, "metric": metric, "value": value, "num_parameters": 100,
                         "fit_s": 1.0, "score_s": 0.5, "selected": True, **(extra or {}).get(method, {})})
    return pd.DataFrame(rows)


def test_registry_lists_builtins_and_rejects_unknown_names():
    assert {"vs_reference", "kshot", "distill_goals"} <= set(list_summaries())
    with pytest.raises(UnknownNameError, match="unknown summary 'kshots'.*did you mean 'kshot'"):
        get_summary("kshots")
    grid = {"datasets": ["ml-100k"], "methods": {"pop": {}}}
    with pytest.raises(ConfigError, match=r"summaries\[0\]: unknown summary"):
        parse_grid({**grid, "summaries": ["nope"]})
    with pytest.raises(ConfigError, match="vs_reference needs the grid's reference"):
        parse_grid({**grid, "summaries": ["vs_reference"]})
    assert parse_grid({**grid, "summaries": ["kshot"]}).summaries == ["kshot"]


def test_a_registered_summary_runs_with_the_context(tmp_path):
    seen = []

    @register_summary("test-probe")
    def probe(ctx):
        seen.append((ctx.meta["grid"], len(ctx.tidy)))
        return [ctx.write("tables/probe.md", "ok\n")]

    out = run_summaries(["test-probe"], SummaryContext(tmp_path, pd.DataFrame({"a": [1]}), None, {"grid": "g"}))
    assert seen == [("g", 1)] and out["test-probe"][0].read_text() == "ok\n"


def test_vs_reference_matches_scipy_and_holm(tmp_path):
    rng = np.random.default_rng(0)
    users = np.arange(40)
    base = rng.random(40)
    per_user, cells = [], {}
    shifts = {"ref": 0.0, "better": 0.2, "same": 0.0, "worse": -0.05}
    for seed in (0, 1, 2):
        for method, shift in shifts.items():
            v = np.clip(base + shift + rng.normal(0, 0.05, 40), 0, None) if method != "ref" else base
            per_user.append(pd.DataFrame({"user": users, "seed": seed, "method": method, "dataset": "d",
                                          "protocol": "general", "protocol_params": "{}", "ndcg@10": v}))
            cells[(method, seed, "ndcg@10")] = float(v.mean())
            cells[(method, seed, "mae")] = 0.5  # aggregate only: no per-user values
    pu = pd.concat(per_user, ignore_index=True)
    ctx = SummaryContext(tmp_path, tidy_rows(cells), pu, {"grid": "g", "reference": "ref",
                                                          "methods": ["ref", "worse", "better", "same"]})
    md, csv, *figures = get_summary("vs_reference")(ctx)
    table = pd.read_csv(csv)
    # the figure of the gains: one file per format, the setting's, beside the table
    assert sorted(f.name for f in figures) == ["gains_d_general.pdf", "gains_d_general.png"]
    raw = {}
    for m in ("better", "same", "worse"):   # the seed is the unit: per-seed means, paired
        a = pu[pu.method == m].groupby("seed")["ndcg@10"].mean().to_numpy()
        b = pu[pu.method == "ref"].groupby("seed")["ndcg@10"].mean().to_numpy()
        raw[m] = stats.ttest_rel(a, b).pvalue
        assert table.set_index("method").loc[m, "delta"] == pytest.approx((a - b).mean(), abs=1e-12)
    order = sorted(raw, key=raw.get)  # Holm: the k-th smallest p is multiplied by (3 - k), running max
    expected, running = {}, 0.0
    for k, m in enumerate(order):
        running = max(running, (3 - k) * raw[m])
        expected[m] = min(1.0, running)
    for m, p in expected.items():
        assert table.set_index("method").loc[m, "seed_p_holm"] == pytest.approx(p, rel=1e-9, abs=0)
    text = md.read_text()
    header = next(line for line in text.splitlines() if line.startswith("| metric |"))
    assert header == "| metric | ref | worse | better | same |"   # reference first, then the grid's order
    mae = next(line for line in text.splitlines() if line.startswith("| mae |"))
    assert mae.count("(n/a)") == 3
    better = next(line for line in text.splitlines() if line.startswith("| ndcg@10 |")).split("|")[4]
    assert "*" in better and "Δ+0." in better


def test_kshot_table_and_curves(tmp_path):
    frames = []
    for k in (1, 5):
        cells = {(m, s, "ndcg@10"): 0.1 * k + (0.01 if m == "a" else 0.0) + 0.001 * s for m in ("a", "b")
                 for s in (0, 1)}
        frames.append(tidy_rows(cells, protocol="cold_start", params=json.dumps({"k_shot": k, "n_query": 10})))
    ctx = SummaryContext(tmp_path, pd.concat(frames, ignore_index=True), None,
                         {"grid": "g", "metrics": ["ndcg@10"]})
    files = get_summary("kshot")(ctx)
    assert (tmp_path / "figures" / "kshot_ndcg10.png") in files
    md = (tmp_path / "tables" / "kshot.md").read_text()
    assert "## d, K = 1" in md and "## d, K = 5" in md
    row = next(line for line in md.split("## d, K = 5")[1].splitlines() if line.startswith("| a |"))
    assert "0.5105 ± 0.0007 (2)" in row


def test_kshot_compares_each_meta_learner_with_the_best_baseline_of_each_k(tmp_path):
    rng = np.random.default_rng(0)
    params = json.dumps({"k_shot": 3, "n_query": 10})
    base = {"pop": 0.05, "meta:finetune": 0.08, "meta:maml": 0.09}     # finetune: the best baseline
    cells, pu = {}, []
    per_seed_gain = [0.004, 0.012, 0.006, 0.010, 0.008]              # maml - finetune per seed: mean 0.008
    for s in range(5):
        users = rng.random(30) * 0.02
        noise = rng.normal(0, 1e-3, 30)
        noise -= noise.mean()                                         # per-user spread, per-seed mean kept exact
        for m, v in base.items():
            vals = users + base["meta:finetune"] + (per_seed_gain[s] + noise if m == "meta:maml" else 0.0) \
                if m != "pop" else users + v
            cells[(m, s, "ndcg@10")] = float(vals.mean())
            pu.append(pd.DataFrame({"user": np.arange(30), "ndcg@10": vals, "dataset": "d", "protocol": "cold_start",
                                    "protocol_params": params, "method": m, "seed": s}))
    extra = {"meta:maml": {"family": "meta", "adapt_ms": 0.25}, "meta:finetune": {"adapt_ms": 0.125},
             "pop": {"adapt_ms": float("nan")}}
    ctx = SummaryContext(tmp_path, tidy_rows(cells, protocol="cold_start", params=params, extra=extra),
                         pd.concat(pu, ignore_index=True), {"grid": "g", "metrics": ["ndcg@10"]})
    get_summary("kshot")(ctx)
    md = (tmp_path / "tables" / "kshot.md").read_text()
    assert next(line for line in md.splitlines() if line.startswith("| meta:maml |")).endswith("| 0.25 |")
    assert next(line for line in md.splitlines() if line.startswith("| pop |")).endswith("| – |")
    vs = pd.read_csv(tmp_path / "tables" / "kshot_vs_best_baseline.csv")
    assert vs.baseline.tolist() == ["meta:finetune"] and vs.method.tolist() == ["meta:maml"]
    d = np.array(per_seed_gain)
    half = stats.t.ppf(0.975, 4) * d.std(ddof=1) / np.sqrt(5)
    assert vs.delta.iloc[0] == pytest.approx(0.008)
    assert (vs.ci_low.iloc[0], vs.ci_high.iloc[0]) == pytest.approx((0.008 - half, 0.008 + half))
    assert "| meta:maml vs meta:finetune | ndcg@10 | +0.0080 [" in md


def test_distill_goals_ratios_and_goal_counts(tmp_path):
    cells = {}
    for s in (0, 1):
        cells.update({("distill:teacher", s, "ndcg@10"): 0.10, ("distill:student", s, "ndcg@10"): 0.09,
                      ("distill:kd-rd", s, "ndcg@10"): 0.11})
    extra = {"distill:teacher": {"num_parameters": 1000, "infer_s": 0.9},
             "distill:student": {"num_parameters": 100, "infer_s": 0.3},
             "distill:kd-rd": {"num_parameters": 100, "infer_s": 0.2}}
    ctx = SummaryContext(tmp_path, tidy_rows(cells, protocol="sequential", extra=extra), None, {"grid": "g"})
    get_summary("distill_goals")(ctx)
    md = (tmp_path / "tables" / "distill_goals.md").read_text()
    kd = next(line for line in md.splitlines() if line.startswith("| distill:kd-rd |")).split("|")
    # without per-user values the gain over the student alone is a difference of means: never a met goal
    assert [c.strip() for c in kd[2:3] + kd[7:12]] == ["distill:teacher", "10.0", "110.0", "4.5x",
                                                      "+0.0200 (untested)", "3/4"]
    alone = next(line for line in md.splitlines() if line.startswith("| distill:student |")).split("|")
    assert [c.strip() for c in alone[7:12]] == ["10.0", "90.0", "3.0x", "", "2/3"]  # 90 % < 95 %
    assert "fastest of repeated passes" in md
    data = json.loads((tmp_path / "tables" / "distill_goals.json").read_text())
    assert data["d/sequential"]["distill:kd-rd"]["speedup"] == pytest.approx(4.5)


def test_distill_goals_compare_a_student_with_the_teacher_it_learned_from_at_the_seed_level(tmp_path):
    """A KD student taught by a tuned mf-bpr (its runs' teacher_method) is compared with mf-bpr, not the backbone
    teacher; its gain over the student alone counts as a goal only when it holds at the seed level (Holm over the
    KD rows)."""
    rng = np.random.default_rng(1)
    gain = {"distill:kd-soft": [0.010, 0.012, 0.011, 0.009, 0.010],    # every seed: a real gain
            "distill:kd-rd": [0.020, -0.018, 0.015, -0.012, 0.001]}     # a positive mean that seeds do not back
    base = {"distill:student": 0.30, "mf-bpr": 0.29, "distill:teacher": 0.28, **{m: 0.30 for m in gain}}
    cells, pu = {}, []
    for s in range(5):
        users = rng.random(40) * 0.05
        for m, v in base.items():
            vals = users + v + (gain[m][s] if m in gain else 0.0)
            cells[(m, s, "ndcg@10")] = float(vals.mean())
            pu.append(pd.DataFrame({"user": np.arange(40), "ndcg@10": vals, "dataset": "d", "protocol": "general",
                                    "protocol_params": "{}", "method": m, "seed": s}))
    taught = json.dumps({"teacher_method": "mf-bpr", "teacher_params": {"lr": 0.001}})
    extra = {"mf-bpr": {"num_parameters": 400, "infer_s": float("nan")},
             "distill:teacher": {"num_parameters": 1000, "infer_s": 0.9},
             "distill:student": {"num_parameters": 100, "infer_s": 0.3},
             **{m: {"num_parameters": 100, "infer_s": 0.3, "params": taught} for m in gain}}
    ctx = SummaryContext(tmp_path, tidy_rows(cells, extra=extra), pd.concat(pu, ignore_index=True), {"grid": "g"})
    get_summary("distill_goals")(ctx)
    md = (tmp_path / "tables" / "distill_goals.md").read_text()
    soft, rd = (next(line for line in md.splitlines() if line.startswith(f"| {m} |")).split("|")
                for m in ("distill:kd-soft", "distill:kd-rd"))
    pct = 100 * np.mean([cells[("distill:kd-soft", s, "ndcg@10")] for s in range(5)]) / \
        np.mean([cells[("mf-bpr", s, "ndcg@10")] for s in range(5)])
    assert [c.strip() for c in soft[2:3] + soft[7:10]] == ["mf-bpr", "25.0", f"{pct:.1f}", "n/a"]
    assert soft[10].strip().startswith("+0.0104 [") and soft[11].strip() == "3/4"   # params, NDCG %, gain
    assert rd[10].strip().startswith("+0.0012 [-") and rd[11].strip() == "2/4"      # the gain does not hold
    data = json.loads((tmp_path / "tables" / "distill_goals.json").read_text())
    assert data["d/general"]["distill:kd-soft"]["teacher"] == "mf-bpr"
    assert data["d/general"]["distill:kd-soft"]["vs_alone"]["seed_p_holm"] < 0.05 < \
        data["d/general"]["distill:kd-rd"]["vs_alone"]["seed_p_holm"]


@pytest.mark.slow
def test_tradeoff_and_protocol_robustness_summaries_from_a_real_grid(tmp_path):
    """A tiny real grid (ml-100k general, pop, mf-bpr and MMR-re-ranked pop, two seeds, both sampled modes):
    the accuracy-diversity figure and table (re-ranker as a curve, Pareto front), and the robustness table with
    Kendall tau between settings."""
    from metarec import report
    from metarec.bench import parse_grid, run_grid

    g = parse_grid({"name": "t", "seeds": [0, 1], "metrics": ["ndcg@10", "diversity@10"], "valid_metric": "ndcg@10",
                    "also_eval": ["sampled", "sampled-pop"], "summaries": ["accuracy_diversity", "protocol_robustness"],
                    "datasets": [{"name": "ml-100k", "protocols": ["general"]}],
                    "methods": {"pop": {}, "mf-bpr": {"params": {"max_epochs": 1, "progress_bar": False, "dim": 8}},
                                "rerank:mmr": {"params": {"base": "pop", "candidates": 30, "length": 10},
                                               "grid": {"lam": [1.0, 0.0]}}}})
    out = run_grid(g, root=tmp_path / "store", progress=False)
    assert out["counts"]["failed"] == 0
    stages = set(out["tidy"].stage)
    assert {"test", "test[sampled-100]", "test[sampled-pop-100]"} <= stages
    folder = report.export(g, out["tidy"], out["store"], tmp_path / "results")
    built = report.build(folder)
    ad = pd.read_csv(folder / "tables" / "accuracy_diversity.csv")
    mmr = ad[ad.method == "rerank:mmr"]
    assert len(mmr) == 2 and ad.pareto.any()          # both lam values, every configuration kept
    lam0 = mmr[mmr.params.str.contains('"lam": 0.0')].diversity.mean()
    lam1 = mmr[mmr.params.str.contains('"lam": 1.0')].diversity.mean()
    assert lam0 > lam1
    assert any(str(p).endswith("accuracy_diversity_ml_100k_general.png") for p in built["figures"]["summary accuracy_diversity"])
    rob = pd.read_csv(folder / "tables" / "protocol_robustness.csv")
    assert {"general full", "general sampled-100", "general sampled-pop-100"} == \
        set(rob.setting_a) | set(rob.setting_b) and len(rob) == 3
    assert rob.kendall_tau.between(-1, 1).all() and (rob.n_methods == 3).all()


def test_text_frontier_checks_the_student_against_the_teacher_and_the_control(tmp_path):
    cells, extra = {}, {}
    # (NDCG@10, recommender parameters, text-encoder parameters, items/s, seconds to score every test user); the
    # backbones have 1 M parameters
    sizes = {"distill:text-mpnet-12": (0.300, 110_000_000, 109_000_000, 30.0, 0.4),
             "distill:text-mpnet-6": (0.291, 67_000_000, 66_000_000, 60.0, 0.4),
             "distill:text-mpnet-6-random": (0.250, 67_000_000, 66_000_000, 60.0, 0.4),
             "distill:teacher": (0.280, 500_000, float("nan"), float("nan"), 0.2)}
    for m, (v, n, enc, speed, infer) in sizes.items():
        for s in range(3):
            cells[(m, s, "ndcg@10")] = v + 0.002 * (s - 1)
        extra[m] = {"num_parameters": n, "encoder_parameters": enc, "encode_items_per_s": speed, "infer_s": infer}
    # per-user values: 20 users per seed, a per-(method, seed) shift so the seed-level differences vary
    rng = np.random.default_rng(0)
    base = rng.random(20)
    shift = {m: rng.normal(0, 0.01, 3) for m in sizes}
    per_user = pd.concat([pd.DataFrame({"user": np.arange(20), "seed": s, "method": m, "dataset": "d",
                                        "protocol": "sequential", "ndcg@10": base + v + shift[m][s]})
                          for m, (v, *_) in sizes.items() for s in range(3)], ignore_index=True)
    ctx = SummaryContext(tmp_path, tidy_rows(cells, protocol="sequential", extra=extra), per_user,
                         {"grid": "g", "valid_metric": "ndcg@10"})
    files = get_summary("text_frontier")(ctx)
    assert any(f.name == "text_frontier_d_sequential.png" for f in files)
    md = (tmp_path / "tables" / "text_frontier.md").read_text()
    half = stats.t.ppf(0.975, 2) * 0.002 / np.sqrt(3)                  # std of (-0.002, 0, +0.002) is 0.002
    # latency: 0.4 s over 20 test users = 20 ms per user
    assert f"| distill:text-mpnet-6 | 0.2910 ± {half:.4f} | 3 | 67,000,000 | 66,000,000 | 60.0 | 20.000 |" in md
    assert "| distill:teacher | 0.2800 ± " in md and "| 500,000 | – | – | 10.000 |" in md
    data = json.loads((tmp_path / "tables" / "text_frontier.json").read_text())["d/sequential"]
    # the goal compares the encoders (66/109 = 60.55 %); the recommenders' share (67/110 = 60.91 %) beside it
    assert data["ndcg_pct"] == pytest.approx(97.0) and data["params_pct"] == pytest.approx(60.550, rel=1e-4)
    assert data["recommender_params_pct"] == pytest.approx(60.909, rel=1e-4)
    assert data["speedup"] == pytest.approx(2.0) and all(data["met"].values())
    assert data["vs_control"] == pytest.approx(0.041)
    assert "3/3 goals met" in md

    def seed_level(m, ref):   # the per-seed differences of the per-user values, by hand
        d = np.array([(base + sizes[m][0] + shift[m][s]).mean() - (base + sizes[ref][0] + shift[ref][s]).mean()
                      for s in range(3)])
        h = stats.t.ppf(0.975, 2) * d.std(ddof=1) / np.sqrt(3)
        return d.mean(), d.mean() - h, d.mean() + h, stats.ttest_rel(d, np.zeros(3)).pvalue

    control = data["vs_control_test"]
    want = seed_level("distill:text-mpnet-6", "distill:text-mpnet-6-random")
    assert [control[k] for k in ("delta", "ci_low", "ci_high", "seed_p")] == pytest.approx(want, rel=1e-6)
    teacher_ref = np.mean([(base + 0.300 + shift["distill:text-mpnet-12"][s]).mean() for s in range(3)])
    lo, hi = seed_level("distill:text-mpnet-6", "distill:text-mpnet-12")[1:3]
    assert data["ndcg_pct_ci"] == pytest.approx([100 * (1 + lo / teacher_ref), 100 * (1 + hi / teacher_ref)])
    assert f"% [{data['ndcg_pct_ci'][0]:.1f}, {data['ndcg_pct_ci'][1]:.1f}] of its ndcg@10" in md
    # does text help: every text row against the id-only backbone, Holm over the three
    vs_id = data["vs_id_only"]
    assert set(vs_id) == {"distill:text-mpnet-12", "distill:text-mpnet-6", "distill:text-mpnet-6-random"}
    p = {m: seed_level(m, "distill:teacher")[3] for m in vs_id}
    holm_p = dict(zip(p, holm(list(p.values()))))
    for m, c in vs_id.items():
        assert c["delta"] == pytest.approx(seed_level(m, "distill:teacher")[0])
        assert c["seed_p_holm"] == pytest.approx(holm_p[m])
    row = next(line for line in md.splitlines() if line.startswith("| distill:text-mpnet-6-random | ") and " [" in line)
    assert row.endswith(f"| {holm_p['distill:text-mpnet-6-random']:.3g} |")

    # the id-only runs timed on another CPU (a grid resumed on another machine): their timings are left out
    mixed = tidy_rows(cells, protocol="sequential", extra=extra)
    mixed["cpu"] = np.where(mixed.method == "distill:teacher", "CPU B", "CPU A")
    get_summary("text_frontier")(SummaryContext(tmp_path / "mixed", mixed, per_user,
                                                {"grid": "g", "valid_metric": "ndcg@10"}))
    md = (tmp_path / "mixed" / "tables" / "text_frontier.md").read_text()
    assert "| distill:teacher | 0.2800 ± " in md and "| 500,000 | – | – | – |" in md
    assert f"| distill:text-mpnet-6 | 0.2910 ± {half:.4f} | 3 | 67,000,000 | 66,000,000 | 60.0 | 20.000 |" in md
    assert ("Timings: the 9 of 12 runs on CPU A (runs on CPU B left out: seconds on different CPUs do not compare); "
            "no timing for distill:teacher, which ran only there.") in md

    # the text_emb artifacts kept with the results hold the throughput the runs copied (corrected there by
    # encoder_speed.py --remeasure): the table follows them; an encoder with two kept artifacts keeps the runs' copy
    kept = tmp_path / "kept"
    for key, enc, max_len, speed in [("a", "mpnet-6", 64, 90.0), ("b", "mpnet-12", 64, 45.0),
                                     ("c", "mpnet-12", 128, 20.0), ("e", "mpnet-6", 64, 70.0)]:
        ds = "other" if key == "e" else "d"
        (kept / "artifacts" / "text_emb" / key).mkdir(parents=True)
        again = {"remeasured": {"rounds": 3, "side_by_side": ["mpnet-12", "mpnet-6"], "cpu": "CPU C",
                                "date": "2026-12-04T10:00:00"}, "first_pass": {"items_per_s": 55.0},
                 "threads": 2} if key == "a" else {}
        (kept / "artifacts" / "text_emb" / key / "meta.json").write_text(json.dumps(
            {"identity": {"dataset": ds, "encoder": enc, "max_len": max_len}, "items_per_s": speed, **again}))
    get_summary("text_frontier")(SummaryContext(kept, tidy_rows(cells, protocol="sequential", extra=extra), per_user,
                                                {"grid": "g", "valid_metric": "ndcg@10"}))
    md = (kept / "tables" / "text_frontier.md").read_text()
    assert f"| distill:text-mpnet-6 | 0.2910 ± {half:.4f} | 3 | 67,000,000 | 66,000,000 | 90.0 | 20.000 |" in md
    assert "| 110,000,000 | 109,000,000 | 30.0 |" in md                  # mpnet-12: two artifacts, the runs' copy
    assert ("Encoding throughput: median of 3 interleaved rounds over all the item texts, every encoder side by side "
            "(mpnet-12, mpnet-6; 2 threads, CPU C, 2026-12-04; benchmarks/encoder_speed.py --remeasure). One pass "
            "each when the vectors were built, items/s: mpnet-6 55.0.") in md
    assert json.loads((kept / "tables" / "text_frontier.json").read_text())["d/sequential"]["speedup"] == \
        pytest.approx(3.0)


def test_leaderboard_ranks_every_method_against_the_best_baseline(tmp_path):
    rng = np.random.default_rng(1)
    users = np.arange(30)
    base = rng.random(30)
    per_user, cells, extra = [], {}, {}
    shifts = {"pop": (-0.2, "baseline"), "knn": (0.0, "baseline"), "ours": (0.1, "multitask"), "tie": (0.0, "meta")}
    for seed in range(4):
        for method, (shift, fam) in shifts.items():
            v = np.clip(base + shift + rng.normal(0, 0.03, 30), 0, None)
            per_user.append(pd.DataFrame({"user": users, "seed": seed, "method": method, "dataset": "d",
                                          "protocol": "general", "protocol_params": "{}", "ndcg@10": v}))
            cells[(method, seed, "ndcg@10")] = float(v.mean())
            if method != "tie":   # a method without one of the metrics (MeLU's rating models: no recall)
                cells[(method, seed, "recall@10")] = 0.5 + shift
            extra[method] = {"family": fam}
    pu = pd.concat(per_user, ignore_index=True)
    tidy = tidy_rows(cells, extra=extra)
    tidy["run"] = tidy.method + "-s" + tidy.seed.astype(str)
    left_out = [{"dataset": "d", "protocol": "general", "protocol_params": '{"ratios": [0.8, 0.1, 0.1]}',
                 "method": "slow", "reason": "one trial > 1200 CPU-s"}] + [
                {"dataset": "d", "protocol": "cold_start", "protocol_params": f'{{"k_shot": {k}}}', "method": "knn",
                 "reason": ""} for k in (1, 5)]
    ctx = SummaryContext(tmp_path, tidy, pu, {"grid": "g", "valid_metric": "ndcg@10",
                                              "metrics": ["recall@10", "ndcg@10"], "excluded": left_out,
                                              "excluded_methods": {"gru": "GPU-sized"}})
    md, csv = get_summary("leaderboard")(ctx)
    table = pd.read_csv(csv).set_index("method")
    means = pu.groupby("method")["ndcg@10"].mean()
    assert table["rank"].to_dict() == means.rank(ascending=False, method="min").astype(int).to_dict()
    assert set(table.baseline) == {"knn"}                    # the better of the two baselines is the bar
    a = pu[pu.method == "ours"].groupby("seed")["ndcg@10"].mean().to_numpy()
    b = pu[pu.method == "knn"].groupby("seed")["ndcg@10"].mean().to_numpy()
    d = a - b
    half = stats.t.ppf(0.975, 3) * d.std(ddof=1) / np.sqrt(4)
    assert table.loc["ours", "delta"] == pytest.approx(d.mean(), abs=1e-12)
    assert table.loc["ours", "delta_ci_low"] == pytest.approx(d.mean() - half, abs=1e-12)
    per_seed = pu.groupby(["method", "seed"])["ndcg@10"].mean()
    assert table.loc["ours", "ndcg@10"] == pytest.approx(per_seed["ours"].mean(), abs=1e-12)
    text = md.read_text()
    assert "Registered methods not run: gru (GPU-sized)" in text   # a missing row is never silent
    assert ("- d / general: slow — one trial > 1200 CPU-s\n- d / cold_start {\"k_shot\": 1}: knn\n"
            "- d / cold_start {\"k_shot\": 5}: knn\n") in text
    header = next(line for line in text.splitlines() if line.startswith("| rank |"))
    assert header == "| rank | method | family | ndcg@10 | recall@10 | Δ ndcg@10 vs knn | cards |"  # primary first
    first = next(line for line in text.splitlines() if line.startswith("| 1 |"))
    assert "| ours | multitask |" in first and "[0](cards/ours-s0.md) [1](cards/ours-s1.md)" in first
    assert "*" in first.split("|")[6]                        # +0.1 over 4 seeds: significant
    knn = next(line for line in text.splitlines() if "| knn |" in line)
    assert "| reference |" in knn
    # the same table for the paper: every method's row, ranked, the Δ with its interval and p
    tex = (tmp_path / "tables" / "leaderboard.tex").read_text()
    body = [line for line in tex.splitlines() if line.endswith("\\\\") and not line.startswith("rank &")]
    assert [line.split(" & ")[1] for line in body] == ["ours", "knn", "tie", "pop"]
    assert body[1].endswith("& reference \\\\") and "$^*$" in body[0]
    # a metric a method does not report is a dash, not "nan"
    assert "nan" not in tex and "nan" not in text
    assert body[2].split(" & ")[4] == "--" and next(line for line in text.splitlines() if "| tie |" in line
                                                    ).split(" | ")[4] == "–"
    assert f"${table.loc['ours', 'delta']:+.4f}$ [${table.loc['ours', 'delta_ci_low']:+.4f}$" in body[0]


@pytest.mark.parametrize("name", ["text_frontier", "distill_goals", "accuracy_diversity"])
def test_a_one_row_per_method_summary_refuses_to_pool_protocol_settings(tmp_path, name):
    """These summaries show one row (or point) per method of a dataset x protocol: a grid with two settings of one
    protocol (K = 1 and K = 10) would average them into a number no setting has. One setting passes."""
    cells = {("pop", s, m): 0.1 + 0.01 * s for s in range(2) for m in ("ndcg@10", "recall@10", "diversity@10")}
    one = tidy_rows(cells, protocol="cold_start", params='{"k_shot": 1}')
    two = pd.concat([one, tidy_rows(cells, protocol="cold_start", params='{"k_shot": 10}')], ignore_index=True)
    meta = {"grid": "g", "valid_metric": "ndcg@10", "metrics": ["ndcg@10", "recall@10", "diversity@10"]}
    (tmp_path / "tables").mkdir()
    (tmp_path / "figures").mkdir()
    get_summary(name)(SummaryContext(tmp_path, one, None, meta))
    with pytest.raises(ConfigError, match=f"summary {name} shows one setting.*d / cold_start has 2 protocol settings"):
        get_summary(name)(SummaryContext(tmp_path, two, None, meta))


def test_a_composition_draws_one_kshot_curve_per_dataset_and_setting(tmp_path, monkeypatch):
    """MovieLens with and without new items and a second dataset: three curves, each from its own rows only (one
    axis over all of them would average a method's points at one K across datasets)."""
    from metarec.report import plots

    frames = []
    for dataset, new_items, level in (("d", False, 0.1), ("d", True, 0.2), ("e", False, 0.3)):
        for k in (1, 5):
            cells = {(m, s, "ndcg@10"): level + 0.01 * k for m in ("a", "b") for s in (0, 1)}
            part = tidy_rows(cells, protocol="cold_start",
                             params=json.dumps({"k_shot": k, "n_query": 10, "new_items": new_items}))
            frames.append(part.assign(dataset=dataset))
    drawn = []
    real = plots._kshot_figure
    monkeypatch.setattr(plots, "_kshot_figure", lambda sel, metric, title, folder, stem: drawn.append(
        (title, stem, sorted(set(sel.dataset)), sorted(set(sel.value)))) or real(sel, metric, title, folder, stem))
    files = plots.kshot_curve(pd.concat(frames, ignore_index=True), "ndcg@10", tmp_path)
    assert [(t, s, d) for t, s, d, _ in drawn] == [
        ("d, new_items=False", "kshot_ndcg10_d_new_itemsFalse", ["d"]),
        ("d, new_items=True", "kshot_ndcg10_d_new_itemsTrue", ["d"]),
        ("e", "kshot_ndcg10_e", ["e"])]   # e has one setting: its title needs no parameter
    assert [[round(x, 9) for x in v] for *_, v in drawn] == [[0.11, 0.15], [0.21, 0.25], [0.31, 0.35]]
    assert {p.name for p in files} >= {"kshot_ndcg10_d_new_itemsTrue.png", "kshot_ndcg10_e.pdf"}


def test_kshot_curves_tell_fifteen_methods_apart(tmp_path, monkeypatch):
    """The composition's MovieLens cold-start panel has fifteen methods: no two may share colour and marker."""
    from metarec.report import plots

    cells = {(f"m{i:02d}", s, "ndcg@10"): 0.01 * i for i in range(15) for s in (0, 1)}
    tidy = pd.concat([tidy_rows(cells, protocol="cold_start", params=json.dumps({"k_shot": k})) for k in (1, 5)],
                     ignore_index=True)
    looks = []

    def keep(fig, folder, stem):
        looks.extend((line.get_color(), line.get_marker()) for line in fig.axes[0].get_lines()
                     if line.get_marker() not in (None, "None", "", "_"))
        plots.plt.close(fig)
        return []

    monkeypatch.setattr(plots, "_save", keep)
    plots.kshot_curve(tidy, "ndcg@10", tmp_path)
    assert len(looks) == 15 and len(set(looks)) == 15
