"""Report summaries: the analyses a grid names (``summaries: [vs_reference, kshot, distill_goals]``), built by
``metarec report`` / ``metarec paper`` from the exported results folder alone, like the tables and figures.

A summary is a function ``fn(ctx) -> list[Path]`` (the files it wrote) registered under a name with
``@register_summary("name")``; outside packages add one through the entry-point group ``metarec.summaries``
(``name = "package.module:function"``). ``ctx`` (``SummaryContext``) holds the folder, the tidy table, the per-user
test values (or None) and the folder's meta (grid name, metrics, valid metric, reference).

Built in:
    vs_reference    metric x method tables against the grid's ``reference`` (mean ± std over seeds, paired tests on
                    per-user values, Holm across methods): the multi-task vs-single-task and the meta-learning
                    vs-fine-tuning comparisons (tables/vs_reference.md, .csv)
    kshot           cold start: K-shot curves for every reported metric and a per-K table (tables/kshot.md)
    distill_goals   distillation: each student against its teacher and its student-alone (params %, NDCG %,
                    inference speed-up, gain over alone) and the issue's goals (tables/distill_goals.md)
    text_frontier   text encoders: NDCG against parameters and encoding throughput, the distilled student's goals
    leaderboard     one ranked table per setting: test metrics with intervals, rank, Δ to the best tuned classical
                    baseline with its interval and seed-level p, links to the runs' cards (leaderboard.md)
"""
from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from metarec.errors import ConfigError, UnknownNameError
from metarec.report.macros import each_setting
from metarec.report.stats import mean_interval
from metarec.utils import atomic_write_text

ENTRY_POINT_GROUP = "metarec.summaries"
_BUILTIN: dict[str, Callable] = {}
ALPHA = 0.05


@dataclass
class SummaryContext:
    folder: Path
    tidy: pd.DataFrame
    per_user: pd.DataFrame | None
    meta: dict

    @property
    def selected_test(self) -> pd.DataFrame:
        return self.tidy[self.tidy.selected & (self.tidy.stage == "test")]

    def write(self, relative: str, text: str) -> Path:
        return atomic_write_text(self.folder / relative, text)


def register_summary(name: str):
    def deco(fn: Callable) -> Callable:
        if name in _BUILTIN and _BUILTIN[name] is not fn:
            raise ValueError(f"summary {name!r} registered twice")
        _BUILTIN[name] = fn
        return fn
    return deco


def list_summaries() -> dict[str, str]:
    out = {name: "builtin" for name in _BUILTIN}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        out.setdefault(ep.name, f"plugin {ep.value}")
    return dict(sorted(out.items()))


def get_summary(name: str) -> Callable:
    if name in _BUILTIN:
        return _BUILTIN[name]
    plugins = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
    if name in plugins:
        try:
            fn = plugins[name].load()
        except Exception as e:
            raise ConfigError(f"plugin summary {name!r} ({plugins[name].value}) failed to load: {e}") from None
        if not callable(fn):
            raise ConfigError(f"plugin summary {name!r} ({plugins[name].value}) is not callable")
        return fn
    raise UnknownNameError("summary", name, list_summaries())


def run_summaries(names: list[str], ctx: SummaryContext) -> dict[str, list[Path]]:
    return {name: list(get_summary(name)(ctx) or []) for name in names}


def _mean_std(v: pd.Series) -> str:
    return f"{v.mean():.4f} ± {v.std(ddof=1):.4f}" if len(v) > 1 else f"{v.mean():.4f}"   # one seed: no spread


def one_setting_each(sel: pd.DataFrame, summary: str, folder) -> None:
    """The summaries that draw one row or point per method of a dataset x protocol (text_frontier, distill_goals,
    accuracy_diversity) would pool the seeds of different protocol settings into one mean: refuse such a grid."""
    if sel.empty or "protocol_params" not in sel:
        return
    counts = sel.groupby(["dataset", "protocol"]).protocol_params.nunique()
    several = counts[counts > 1]
    if not several.empty:
        (ds, proto), n = next(iter(several.items()))
        raise ConfigError(f"{folder}: summary {summary} shows one setting per dataset x protocol, but {ds} / {proto} "
                          f"has {n} protocol settings; run it on a grid with one, or use the kshot/leaderboard "
                          "summaries")


# ---- vs_reference ------------------------------------------------------------------------------------------
@register_summary("vs_reference")
def vs_reference(ctx: SummaryContext) -> list[Path]:
    from metarec.report.stats import compare

    reference = ctx.meta.get("reference")
    if not reference:
        raise ConfigError(f"{ctx.folder}: summary vs_reference needs the grid's reference: method")
    sel = ctx.selected_test
    lines = [f"# {ctx.meta['grid']}: every method against {reference}\n"]
    rows = []
    for ds, proto, pp, label, g in each_setting(sel):
        order = {m: i for i, m in enumerate(ctx.meta.get("methods") or [])}  # the grid's order, else by name
        methods = [reference] + sorted((m for m in g.method.unique() if m != reference),
                                       key=lambda m: (order.get(m, len(order)), m))
        if reference not in set(g.method):
            continue
        pu = None
        if ctx.per_user is not None:
            pu = ctx.per_user[(ctx.per_user.dataset == ds) & (ctx.per_user.protocol == proto)]
            if "protocol_params" in pu.columns:
                pu = pu[pu.protocol_params == pp]
        lines.append(f"\n## {ds} / {proto}{' ' + label if label else ''} (test; mean ± std over "
                     f"{g.seed.nunique()} seeds)\n")
        lines.append("| metric | " + " | ".join(methods) + " |")
        lines.append("|---|" + "---|" * len(methods))
        for metric in sorted(g.metric.unique(), key=lambda m: ("/" in m, m)):
            col = g[g.metric == metric]
            tests = pd.DataFrame()
            if pu is not None and metric in pu.columns:
                tests = compare(pu, reference, metric, alpha=ALPHA, user_ci=False)
            cells = []
            for m in methods:
                v = col[col.method == m].value
                if v.empty:
                    cells.append("–")
                    continue
                c = _mean_std(v)
                if m != reference:
                    if tests.empty or m not in set(tests.method):
                        c += " (n/a)"
                    else:
                        t = tests[tests.method == m].iloc[0]
                        p = "" if np.isnan(t.seed_p_holm) else f" p={t.seed_p_holm:.2g}"
                        c += (f" Δ{t.delta:+.4f} [{t.ci_low:+.4f}, {t.ci_high:+.4f}]{p}"
                              f"{'*' if t.significant else ''}")
                        rows.append({"dataset": ds, "protocol": proto, "protocol_params": pp, "metric": metric,
                                     **t.to_dict()})
                cells.append(c)
            lines.append(f"| {metric} | " + " | ".join(cells) + " |")
        lines.append(f"\n_Δ: mean over seeds of the per-seed paired differences vs {reference} [95 % interval: "
                     "Student t on the per-seed differences]; p: paired t-test on the per-seed "
                     f"means, Holm-corrected over the methods; * p < {ALPHA} (needs two seeds or more); (n/a): "
                     "aggregate-only metric, no per-unit values to pair. User-level tests: "
                     "tables/significance.csv._")
    out = [ctx.write("tables/vs_reference.md", "\n".join(lines) + "\n")]
    if rows:
        table = pd.DataFrame(rows)
        out.append(ctx.write("tables/vs_reference.csv", table.to_csv(index=False)))
        out += _gains_figure(ctx, table, reference)
    return out


def _gains_figure(ctx: SummaryContext, tests: pd.DataFrame, reference: str) -> list[Path]:
    """``figures/gains_<dataset>_<protocol>``: per setting, one panel per metric (the task metrics, ``task/...``,
    where the grid has them, else every paired metric) with each method's Δ against the reference and its 95 %
    interval over seeds; a filled bar is significant at the seed level (Holm). Error metrics are flipped so that a
    bar to the right is always a gain."""
    import matplotlib.pyplot as plt

    from metarec.eval.registry import lower_is_better
    from metarec.report.macros import settings
    from metarec.report.plots import MAX_HEIGHT_IN, STYLE, TEXT_WIDTH_IN, _save, grid_shape, page_stem, pages

    out: list[Path] = []
    tests = tests.assign(setting=settings(tests))
    with plt.rc_context(STYLE):   # one type scale with every other figure (plots.STYLE)
        for (ds, proto, setting), g in tests.groupby(["dataset", "protocol", "setting"], sort=True):
            tasks = sorted(m for m in g.metric.unique() if "/" in m)
            primary = ctx.meta.get("valid_metric")
            metrics = ([primary] if primary in set(g.metric) else []) + tasks if tasks else sorted(g.metric.unique())
            methods = sorted(g.method.unique())
            _, cols = grid_shape(len(metrics), max_cols=3)
            panel_in = 0.28 * len(methods) + 1.0
            stem = f"gains_{ds}_{proto}{'_' + setting if setting else ''}".replace("-", "_").replace("=", "")
            for page, shown in enumerate(pages([panel_in] * len(metrics), cols, MAX_HEIGHT_IN - 0.4)):  # title
                rows = -(-len(shown) // cols)
                fig, axes = plt.subplots(rows, cols, figsize=(TEXT_WIDTH_IN, rows * panel_in + 0.4),
                                         squeeze=False, sharey=True)
                for ax, metric in zip(axes.flat, [metrics[i] for i in shown]):
                    sign = -1.0 if lower_is_better(metric) else 1.0
                    m = g[g.metric == metric].set_index("method").reindex(methods)
                    y = np.arange(len(methods))
                    d = sign * m.delta.to_numpy(float)
                    lo, hi = sign * m.ci_low.to_numpy(float), sign * m.ci_high.to_numpy(float)
                    lo, hi = np.minimum(lo, hi), np.maximum(lo, hi)
                    sig = np.array([s is True or s == 1 for s in m.significant], dtype=bool)   # NaN: not tested
                    ax.barh(y, d, color=["tab:blue" if s else "white" for s in sig], edgecolor="tab:blue")
                    ax.errorbar(d, y, xerr=[d - lo, hi - d], fmt="none", ecolor="black", capsize=2, lw=0.8)
                    ax.axvline(0.0, color="grey", lw=0.8)
                    # one method far off the others' scale (popularity against a trained model) would flatten
                    # every other bar: the axis follows the others and that bar is cut at the edge, its value
                    # written on it
                    size = np.abs(np.nan_to_num(d))
                    order = np.argsort(size)[::-1]
                    if np.isfinite(d).sum() >= 4 and size[order[0]] > 5 * size[order[1]] > 0:
                        rest = np.delete(np.arange(len(d)), order[0])
                        left, right = np.nanmin(np.r_[lo[rest], 0.0]), np.nanmax(np.r_[hi[rest], 0.0])
                        pad = 0.15 * (right - left)
                        ax.set_xlim(left - pad, right + pad)
                        edge = left - pad if d[order[0]] < 0 else right + pad
                        ax.annotate(f"{d[order[0]]:+.4f} (off scale)", (edge, y[order[0]]), fontsize=7, va="center",
                                    ha="left" if d[order[0]] < 0 else "right")
                    ax.set_yticks(y)
                    ax.set_yticklabels(methods)
                    ax.xaxis.set_major_locator(plt.MaxNLocator(4))
                    ax.set_title(metric + ("\n(lower is better: sign flipped)" if sign < 0 else ""))
                for ax in list(axes.flat)[len(shown):]:
                    ax.axis("off")
                fig.suptitle(f"{ds} / {proto}{' ' + setting if setting else ''}: gain over {reference} (Δ, 95 % CI "
                             f"over seeds; filled: p < {ALPHA}, Holm)")
                fig.tight_layout()
                out += _save(fig, ctx.folder / "figures", page_stem(stem, page))
    return out


# ---- kshot -------------------------------------------------------------------------------------------------
@register_summary("kshot")
def kshot(ctx: SummaryContext) -> list[Path]:
    from metarec.report.plots import kshot_curve

    sel = ctx.selected_test[ctx.selected_test.protocol == "cold_start"].copy()
    if sel.empty:
        return [ctx.write("tables/kshot.md", "# K-shot\n\nNo cold_start results in this grid.\n")]
    sel["k"] = sel.protocol_params.map(lambda s: int(json.loads(s)["k_shot"]))
    sel["new_items"] = sel.protocol_params.map(lambda s: bool(json.loads(s).get("new_items", False)))
    metrics = [m for m in ctx.meta["metrics"] if m in set(sel.metric)] + \
        sorted(m for m in set(sel.metric) - set(ctx.meta["metrics"]) if m.startswith("query/"))
    files = []
    safe = sel.assign(metric=sel.metric.str.replace("/", "_"))
    for metric in metrics:
        files += kshot_curve(safe, metric.replace("/", "_"), ctx.folder / "figures")
    lines = ["# K-shot: test mean ± std over seeds (n), mean fit seconds, adaptation ms per test user\n"]
    fit = sel.drop_duplicates("run").groupby(["dataset", "new_items", "k", "method"])["fit_s"].mean()
    adapt = (sel.drop_duplicates("run").groupby(["dataset", "new_items", "k", "method"])["adapt_ms"].mean()
             if "adapt_ms" in sel.columns else pd.Series(dtype=float))
    rows = []
    for (ds, new, k), g in sel.groupby(["dataset", "new_items", "k"], sort=True):
        lines.append(f"\n## {ds}{' (new items)' if new else ''}, K = {k}\n")
        lines.append("| method | " + " | ".join(metrics) + " | fit s | adapt ms/user |")
        lines.append("|---|" + "---|" * (len(metrics) + 2))
        for method in sorted(g.method.unique()):
            cells = []
            for m in metrics:
                v = g[(g.method == method) & (g.metric == m)].value
                cells.append(f"{_mean_std(v)} ({len(v)})" if len(v) else "–")
            ms = adapt.get((ds, new, k, method), np.nan)
            lines.append(f"| {method} | " + " | ".join(cells) + f" | {fit.get((ds, new, k, method), np.nan):.1f} | "
                         f"{'–' if np.isnan(ms) else f'{ms:.2f}'} |")
        lines += _vs_best_baseline(ctx, g, metrics, rows)
    out = files + [ctx.write("tables/kshot.md", "\n".join(lines) + "\n")]
    if rows:
        out.append(ctx.write("tables/kshot_vs_best_baseline.csv", pd.DataFrame(rows).to_csv(index=False)))
    return out


def _vs_best_baseline(ctx: SummaryContext, g: pd.DataFrame, metrics: list[str], rows: list[dict]) -> list[str]:
    """Per metric, every non-baseline method against the best baseline of this setting (the ``baseline``-family
    method with the best test mean on that metric): Δ with its 95 % interval over seeds and the seed-level p."""
    from metarec.eval.registry import lower_is_better
    from metarec.report.stats import compare

    if ctx.per_user is None or "family" not in g.columns:
        return []
    pp = g.protocol_params.iloc[0]
    pu = ctx.per_user[(ctx.per_user.dataset == g.dataset.iloc[0]) & (ctx.per_user.protocol == "cold_start")]
    if "protocol_params" in pu.columns:
        pu = pu[pu.protocol_params == pp]
    base = g[g.family == "baseline"]
    ours = sorted(set(g.method) - set(base.method))
    lines = []
    for metric in metrics:
        means = base[base.metric == metric].groupby("method").value.mean()
        if means.empty or metric not in pu.columns or not ours:
            continue
        best = means.idxmin() if lower_is_better(metric) else means.idxmax()
        tests = compare(pu[pu.method.isin(ours + [best])], best, metric, alpha=ALPHA, user_ci=False)
        if tests.empty:
            continue
        if not lines:
            lines.append("\n| vs best baseline | metric | Δ [95 % interval] | seed-level p (Holm) |")
            lines.append("|---|---|---|---|")
        for _, t in tests.iterrows():
            p = "–" if np.isnan(t.seed_p_holm) else f"{t.seed_p_holm:.2g}{'*' if t.significant else ''}"
            lines.append(f"| {t.method} vs {best} | {metric} | {t.delta:+.4f} [{t.ci_low:+.4f}, {t.ci_high:+.4f}] | "
                         f"{p} |")
            rows.append({"dataset": g.dataset.iloc[0], "protocol_params": pp, "metric": metric, "baseline": best,
                         **t.to_dict()})
    return lines


# ---- text_frontier -----------------------------------------------------------------------------------------
#: the text encoders' rows (distill:text-<encoder>) and the goals of the BERT-scale distillation
TEXT_TEACHER, TEXT_STUDENT, TEXT_CONTROL = "distill:text-mpnet-12", "distill:text-mpnet-6", "distill:text-mpnet-6-random"
TEXT_GOALS = {"ndcg_pct": 95.0, "params_pct": 61.0, "speedup": 1.8}


@register_summary("text_frontier")
def text_frontier(ctx: SummaryContext) -> list[Path]:
    """Per dataset x protocol: every method's test metric (mean and 95 % interval over seeds) against its parameters,
    its per-user inference latency and, for item-text encoders, their encoding throughput (``kept_text_emb``: the
    artifacts' number, where a side-by-side remeasure replaces the first pass); the distilled 6-layer
    student against the 12-layer teacher (share of NDCG with its seed-level interval, of parameters, throughput
    ratio: goals >= 95 %, <= 61 %, >= 1.8x) and against the random-init control; every text recommender against the
    id-only backbone (``distill:teacher``: does text help?), seed-level with Holm; figures NDCG vs parameters, vs
    throughput and vs latency."""
    from metarec.report.plots import frontier

    metric = ctx.meta.get("valid_metric") or "ndcg@10"
    sel = ctx.selected_test[ctx.selected_test.metric == metric]
    one_setting_each(sel, "text_frontier", ctx.folder)
    lines = [f"# Text encoders: {metric} against size and speed (test; mean ± 95 % interval over seeds)\n",
             "Latency: milliseconds per test user to score the whole catalogue (the run's fastest timed pass over "
             "every test user, item vectors precomputed); encoding: item texts per second on the grid's threads. "
             "Δ rows: seed-level paired differences (mean over seeds, 95 % Student interval, Holm over the rows of "
             "one comparison).\n"]
    files: list[Path] = []
    out: dict = {}
    kept = kept_text_emb(ctx.folder)
    for (ds, proto), g in sel.groupby(["dataset", "protocol"], sort=True):
        runs = g.drop_duplicates("run")
        pu = None
        if ctx.per_user is not None and metric in ctx.per_user.columns:
            pu = ctx.per_user[(ctx.per_user.dataset == ds) & (ctx.per_user.protocol == proto)]
        # timings compare only between runs on one CPU model (a grid resumed on another machine mixes them): the
        # table's timing columns come from the model that ran most of its runs; throughput, a property of the
        # (encoder, dataset) embedding, from that model's runs of any protocol on the dataset
        cpu = _timing_cpu(runs)
        timed = runs if cpu is None else runs[runs.cpu == cpu]
        same_ds = sel[sel.dataset == ds].drop_duplicates("run")
        timed_ds = same_ds if cpu is None else same_ds[same_ds.cpu == cpu]
        rows = []
        for method, m in g.groupby("method"):
            mean, half = mean_interval(m.value)
            r = runs[runs.method == method]
            t = timed_ds[timed_ds.method == method]
            speed = kept.get((ds, method.removeprefix("distill:text-")), {}).get("items_per_s")
            if speed is None:
                speed = t["encode_items_per_s"].mean() if "encode_items_per_s" in t and len(t) else float("nan")
            enc = r["encoder_parameters"].mean() if "encoder_parameters" in r else float("nan")
            rows.append({"method": method, "mean": mean, "ci": half, "n": len(m), "parameters": r.num_parameters.mean(),
                         "encoder_parameters": enc, "items_per_s": speed,
                         "latency_ms": _latency_ms(timed[timed.method == method], pu, method)})
        table = pd.DataFrame(rows).sort_values("parameters")
        lines.append(f"\n## {ds} / {proto}\n")
        lines.append(f"| method | {metric} | seeds | parameters | of which text encoder | encoding items/s | ms/user |")
        lines.append("|---|---|---|---|---|---|---|")
        for r in table.itertuples():
            ci = "" if np.isnan(r.ci) else f" ± {r.ci:.4f}"
            speed = "–" if np.isnan(r.items_per_s) else f"{r.items_per_s:.1f}"
            enc = "–" if np.isnan(r.encoder_parameters) else f"{r.encoder_parameters:,.0f}"
            lat = "–" if np.isnan(r.latency_ms) else f"{r.latency_ms:.3f}"
            lines.append(f"| {r.method} | {r.mean:.4f}{ci} | {r.n} | {r.parameters:,.0f} | {enc} | {speed} | {lat} |")
        source = _throughput_source(kept, ds)
        if source:
            lines.append(source)
        if cpu is not None and runs.cpu.nunique() > 1:
            untimed = sorted(set(runs.method) - set(timed.method))
            lines.append(f"\nTimings: the {len(timed)} of {len(runs)} runs on {cpu} (runs on "
                         f"{', '.join(sorted(set(runs.cpu) - {cpu}))} left out: seconds on different CPUs do not "
                         "compare)" + (f"; no timing for {', '.join(untimed)}, which ran only there." if untimed
                                       else "."))
        by = table.set_index("method")
        entry: dict = {"methods": {r.method: {"mean": r.mean, "ci": r.ci, "parameters": r.parameters,
                                              "encoder_parameters": r.encoder_parameters,
                                              "items_per_s": r.items_per_s, "latency_ms": r.latency_ms}
                                   for r in table.itertuples()}}
        if TEXT_TEACHER in by.index and TEXT_STUDENT in by.index:
            t, st = by.loc[TEXT_TEACHER], by.loc[TEXT_STUDENT]
            # the goal is about the distilled encoder against its teacher (as the throughput); the whole
            # recommenders' share, which adds the same backbone to both, is reported beside it
            goal = {"ndcg_pct": 100.0 * st["mean"] / t["mean"] if t["mean"] else float("nan"),
                    "params_pct": 100.0 * st.encoder_parameters / t.encoder_parameters,
                    "recommender_params_pct": 100.0 * st.parameters / t.parameters,
                    "speedup": st.items_per_s / t.items_per_s if t.items_per_s else float("nan")}
            met = {"ndcg_pct": goal["ndcg_pct"] >= TEXT_GOALS["ndcg_pct"],
                   "params_pct": goal["params_pct"] <= TEXT_GOALS["params_pct"],
                   "speedup": goal["speedup"] >= TEXT_GOALS["speedup"]}
            c = _paired(pu, [TEXT_STUDENT], TEXT_TEACHER, metric).get(TEXT_STUDENT)
            interval = ""
            if c is not None:
                goal["ndcg_pct_ci"] = [100.0 * (1 + c["rel_ci_low"]), 100.0 * (1 + c["rel_ci_high"])]
                interval = f" [{goal['ndcg_pct_ci'][0]:.1f}, {goal['ndcg_pct_ci'][1]:.1f}]"
            lines.append(f"\n{TEXT_STUDENT} vs {TEXT_TEACHER}: {goal['ndcg_pct']:.1f} %{interval} of its {metric} (goal "
                         f">= {TEXT_GOALS['ndcg_pct']:.0f} %), {goal['params_pct']:.2f} % of its text encoder's parameters "
                         f"(goal <= {TEXT_GOALS['params_pct']:.0f} %; the whole recommender: "
                         f"{goal['recommender_params_pct']:.2f} %), {goal['speedup']:.2f}x its encoding throughput "
                         f"(goal >= {TEXT_GOALS['speedup']}x): {sum(met.values())}/3 goals met.")
            entry.update({**goal, "met": met})
            if TEXT_CONTROL in by.index:
                d = st["mean"] - by.loc[TEXT_CONTROL]["mean"]
                entry["vs_control"] = d
                c = _paired(pu, [TEXT_STUDENT], TEXT_CONTROL, metric).get(TEXT_STUDENT)
                if c is None:
                    lines.append(f"Against the random-init control {TEXT_CONTROL}: Δ {d:+.4f} (means over seeds).")
                else:
                    entry["vs_control_test"] = c
                    lines.append(f"Against the random-init control {TEXT_CONTROL}: {_delta_text(c)}.")
        texts = sorted(m for m in by.index if m.startswith("distill:text-"))
        if ID_ONLY in by.index and texts and pu is not None:
            vs_id = _paired(pu, texts, ID_ONLY, metric)   # Holm over the text rows: compare's own
            if vs_id:
                lines.append(f"\nDoes text help? Each text recommender against the id-only backbone {ID_ONLY}:\n")
                lines.append(f"| method | Δ {metric} [95 % interval] | seed p | Holm p |")
                lines.append("|---|---|---|---|")
                for m, c in vs_id.items():
                    lines.append(f"| {m} | {c['delta']:+.4f} [{c['ci_low']:+.4f}, {c['ci_high']:+.4f}] | "
                                 f"{c['seed_p']:.3g} | {c['seed_p_holm']:.3g} |")
                entry["vs_id_only"] = vs_id
        out[f"{ds}/{proto}"] = entry
        files += frontier(table, metric, ctx.folder / "figures", f"text_frontier_{ds}_{proto}")
    files.append(ctx.write("tables/text_frontier.md", "\n".join(lines) + "\n"))
    files.append(ctx.write("tables/text_frontier.json", json.dumps(out, indent=2, default=float) + "\n"))
    return files


#: the id-only recommender the text rows share their backbone with
ID_ONLY = "distill:teacher"


def kept_text_emb(folder: Path) -> dict[tuple[str, str], dict]:
    """(dataset, encoder) -> meta of the ``text_emb`` artifacts kept with the results (``keep_artifacts``).

    The artifact is where every run copies its encoder's throughput from (``items_per_s``: one pass timed when the
    vectors were built, or the side-by-side median ``benchmarks/encoder_speed.py --remeasure`` put there), so the
    table follows the artifact, not the runs' copies. A (dataset, encoder) with several kept artifacts (e.g. two text
    lengths) is left to the runs."""
    found: dict[tuple[str, str], list[dict]] = {}
    for meta_file in sorted((Path(folder) / "artifacts" / "text_emb").glob("*/meta.json")):
        meta = json.loads(meta_file.read_text())
        ident = meta.get("identity") or {}
        if meta.get("items_per_s") and ident.get("dataset") and ident.get("encoder"):
            found.setdefault((ident["dataset"], ident["encoder"]), []).append(meta)
    return {key: metas[0] for key, metas in found.items() if len(metas) == 1}


def _throughput_source(kept: dict[tuple[str, str], dict], dataset: str) -> str:
    """One line on where a dataset's encoding throughputs come from, when they were measured again side by side."""
    again = {enc: m for (ds, enc), m in sorted(kept.items()) if ds == dataset and m.get("remeasured")}
    if not again:
        return ""
    one = next(iter(again.values()))   # one remeasure times every encoder of the dataset together
    r = one["remeasured"]
    first = ", ".join(f"{enc} {m['first_pass']['items_per_s']:.1f}" for enc, m in again.items()
                      if (m.get("first_pass") or {}).get("items_per_s"))
    return (f"\nEncoding throughput: median of {r['rounds']} interleaved rounds over all the item texts, every "
            f"encoder side by side ({', '.join(r['side_by_side'])}; {one['threads']} threads, "
            f"{r['cpu']}, {r['date'][:10]}; benchmarks/encoder_speed.py --remeasure). One pass each when the vectors "
            f"were built, items/s: {first}.")


def _timing_cpu(runs: pd.DataFrame) -> str | None:
    """The CPU model that ran most of ``runs`` (ties: the first by name); None for a table without the column."""
    if "cpu" not in runs or runs.empty:
        return None
    counts = runs.cpu.fillna("unknown").value_counts()
    return sorted(counts[counts == counts.max()].index)[0]


def _latency_ms(runs: pd.DataFrame, per_user: pd.DataFrame | None, method: str) -> float:
    """Milliseconds per test user: the fastest timed pass over every test user (``infer_s``, else the one timed
    test scoring ``score_s``), divided by the run's test users (counted in the per-user values), mean over seeds."""
    if per_user is None or runs.empty:
        return float("nan")
    timing = runs["infer_s"] if "infer_s" in runs and runs["infer_s"].notna().all() else runs["score_s"]
    users = per_user[per_user.method == method].groupby("seed").size()
    per_seed = [1000.0 * t / users[s] for s, t in zip(runs.seed, timing) if users.get(s, 0) > 0]
    return float(np.mean(per_seed)) if per_seed else float("nan")


def _paired(per_user: pd.DataFrame | None, methods: list[str], reference: str, metric: str) -> dict[str, dict]:
    """Seed-level comparison of ``methods`` against ``reference`` (``stats.compare``, Holm over ``methods``):
    method -> its row."""
    from metarec.report.stats import compare

    if per_user is None:
        return {}
    c = compare(per_user[per_user.method.isin([*methods, reference])], reference, metric, user_ci=False)
    return {row["method"]: row for row in c.to_dict("records")}


def _delta_text(c: dict) -> str:
    return (f"Δ {c['delta']:+.4f} [{c['ci_low']:+.4f}, {c['ci_high']:+.4f}], seed-level p {c['seed_p']:.3g} "
            f"({int(c['n_seeds'])} seeds)")


# ---- distill_goals -----------------------------------------------------------------------------------------
STUDENTS = ("distill:kd-soft", "distill:kd-rd", "distill:kd-rrd")
#: student -> (its teacher, the same student trained alone)
DISTILL_PAIRS = {**{m: ("distill:teacher", "distill:student") for m in STUDENTS},
                 "distill:student": ("distill:teacher", None),
                 "distill:text-student": ("distill:text-teacher", "distill:text-student-alone"),
                 "distill:text-student-alone": ("distill:text-teacher", None)}
ORDER = ("distill:teacher", "distill:student", *STUDENTS, "distill:text-teacher", "distill:text-student",
         "distill:text-student-alone")
GOALS = {"params_pct": 25.0, "ndcg_pct": 95.0, "speedup": 3.0}


@register_summary("distill_goals")
def distill_goals(ctx: SummaryContext) -> list[Path]:
    """The goal table. Inference time: the run's ``infer_s`` (fastest of repeated passes scoring every test user,
    recorded when the grid sets ``inference_repeats``), else its single timed test evaluation (``score_s``)."""
    sel = ctx.selected_test
    one_setting_each(sel, "distill_goals", ctx.folder)
    timing = "infer_s" if "infer_s" in sel.columns and sel["infer_s"].notna().any() else "score_s"
    lines = [f"# {ctx.meta['grid']}: distillation goals\n",
             f"Goals: student <= {GOALS['params_pct']:.0f} % of its teacher's parameters, >= {GOALS['ndcg_pct']:.0f} % "
             f"of its NDCG@10, >= {GOALS['speedup']:.0f}x faster inference, better than the same student alone. "
             f"Inference time: {'fastest of repeated passes scoring every test user' if timing == 'infer_s' else 'one timed scoring of the test users (the grid did not set inference_repeats)'}.\n"]
    out: dict = {}
    for (ds, proto), g in sel.groupby(["dataset", "protocol"], sort=True):
        rows, taught_by = {}, {}
        for method, h in g.groupby("method", sort=False):
            nd, rc = (h[h.metric == m].value for m in ("ndcg@10", "recall@10"))
            runs = h.drop_duplicates("run")
            rows[method] = {"ndcg": nd.mean(), "ndcg_s": _mean_std(nd), "recall_s": _mean_std(rc) if len(rc) else "–",
                            "params": int(runs.num_parameters.iloc[0]), "infer": float(runs[timing].min())}
            # a student's teacher is the one its runs learned from (teacher_method, e.g. a tuned mf-bpr), else the
            # family's backbone teacher
            taught_by[method] = json.loads(runs.params.iloc[0]).get("teacher_method") \
                or DISTILL_PAIRS.get(method, (None, None))[0]
        pu = None
        if ctx.per_user is not None and "ndcg@10" in ctx.per_user.columns:
            pu = ctx.per_user[(ctx.per_user.dataset == ds) & (ctx.per_user.protocol == proto)]
        vs_alone = {}   # the gain over the student alone, seed-level (Holm over the students of one reference)
        for alone in {a for m, (_, a) in DISTILL_PAIRS.items() if a in rows and m in rows}:
            vs_alone.update(_paired(pu, [m for m, (_, a) in DISTILL_PAIRS.items() if a == alone and m in rows],
                                    alone, "ndcg@10"))
        lines.append(f"\n## {ds} / {proto} (test; {g.seed.nunique()} seeds)\n")
        lines.append("| method | teacher | NDCG@10 | Recall@10 | params | inference s | params % | NDCG % | speed-up | "
                     "vs alone [95 % interval], seed p (Holm) | goals |")
        lines.append("|---|---|---|---|---|---|---|---|---|---|---|")
        for m in [m for m in ORDER if m in rows] + sorted(set(rows) - set(ORDER)):
            r, cells = rows[m], ["", "", "", "", ""]
            teacher, alone = taught_by[m], DISTILL_PAIRS.get(m, (None, None))[1]
            if teacher in rows:
                t = rows[teacher]
                r["teacher"] = teacher
                r["params_pct"] = 100 * r["params"] / t["params"]
                r["ndcg_pct"] = 100 * r["ndcg"] / t["ndcg"]
                # nan when either side's runs were not timed (e.g. copied from a grid without inference_repeats)
                r["speedup"] = t["infer"] / r["infer"] if r["infer"] > 0 else float("nan")
                cells[:3] = [f"{r['params_pct']:.1f}", f"{r['ndcg_pct']:.1f}",
                             "n/a" if math.isnan(r["speedup"]) else f"{r['speedup']:.1f}x"]
                met = [r["params_pct"] <= GOALS["params_pct"], r["ndcg_pct"] >= GOALS["ndcg_pct"],
                       r["speedup"] >= GOALS["speedup"]]
                if alone in rows:
                    r["gain_vs_alone"] = r["ndcg"] - rows[alone]["ndcg"]
                    c = vs_alone.get(m)
                    if c is None:   # no per-user values: means only, and no goal can be claimed from them
                        cells[3] = f"{r['gain_vs_alone']:+.4f} (untested)"
                        met.append(False)
                    else:
                        r["vs_alone"] = c
                        cells[3] = (f"{c['delta']:+.4f} [{c['ci_low']:+.4f}, {c['ci_high']:+.4f}], "
                                    f"{c['seed_p_holm']:.2g}")
                        met.append(bool(c["delta"] > 0 and c["seed_p_holm"] < 0.05))
                cells[4] = f"{sum(met)}/{len(met)}"
            lines.append(f"| {m} | {teacher if teacher in rows else ''} | {r['ndcg_s']} | {r['recall_s']} | "
                         f"{r['params']:,} | {r['infer']:.4f} | " + " | ".join(cells) + " |")
        out[f"{ds}/{proto}"] = rows
    lines.append("\n_teacher: the model a row is compared with (a KD student's: the one it learned from); goals: how "
                 "many the row meets (params, NDCG %, speed-up, and for KD rows a gain over the student alone that "
                 "holds at the seed level: paired t-test on the per-seed means, Holm over the KD rows, p < 0.05); "
                 "speed-up n/a: a side's runs were not timed._")
    return [ctx.write("tables/distill_goals.md", "\n".join(lines) + "\n"),
            ctx.write("tables/distill_goals.json", json.dumps(out, indent=2, sort_keys=True, default=float) + "\n")]


# ---- protocol_robustness -----------------------------------------------------------------------------------
@register_summary("protocol_robustness")
def protocol_robustness(ctx: SummaryContext) -> list[Path]:
    """How far method *rankings* agree across evaluation protocols: per dataset, the primary metric of every method
    under each setting — a split protocol (general, temporal, sequential, ...) crossed with full ranking and the
    sampled modes a grid adds with ``also_eval`` (stages ``test[sampled-100]``, ``test[sampled-pop-100]``) — and
    Kendall's tau between the method orderings of every pair of settings (scipy.stats.kendalltau, tau-b)."""
    from scipy.stats import kendalltau

    from metarec.eval.registry import higher_is_better

    metric = ctx.meta["valid_metric"]
    sel = ctx.tidy[ctx.tidy.selected & ctx.tidy.stage.str.startswith("test") & (ctx.tidy.metric == metric)]
    lines = [f"# {ctx.meta['grid']}: do method rankings survive a change of protocol? ({metric}, test)\n"]
    rows = []
    for ds, g in sel.groupby("dataset", sort=True):
        settings: dict[str, pd.Series] = {}
        for (proto, pp, stage), h in g.groupby(["protocol", "protocol_params", "stage"], sort=True):
            mode = "full" if stage == "test" else stage[len("test["):-1]
            label = f"{proto} {mode}" + ("" if len(g[g.protocol == proto].protocol_params.unique()) < 2 else f" {pp}")
            settings[label] = h.groupby("method")["value"].mean()
        if len(settings) < 2:
            continue
        labels = list(settings)
        methods = sorted(set().union(*[set(v.index) for v in settings.values()]))
        sign = -1.0 if higher_is_better(metric) else 1.0
        lines.append(f"\n## {ds}\n")
        lines.append("| method | " + " | ".join(labels) + " |")
        lines.append("|---|" + "---|" * len(labels))
        ranks = {lab: (sign * v).rank(method="min") for lab, v in settings.items()}
        for m in methods:
            cells = [f"{settings[lab][m]:.4f} ({int(ranks[lab][m])})" if m in settings[lab].index else "–"
                     for lab in labels]
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
        lines.append("\n_value (rank among the methods of that setting)._\n")
        lines.append("| Kendall τ | " + " | ".join(labels) + " |")
        lines.append("|---|" + "---|" * len(labels))
        for a in labels:
            cells = []
            for b in labels:
                common = sorted(set(settings[a].index) & set(settings[b].index))
                if a == b or len(common) < 3:
                    cells.append("–" if a != b else "1")
                    continue
                tau, p = kendalltau(settings[a][common].to_numpy(), settings[b][common].to_numpy())
                cells.append(f"{tau:+.2f}")
                if a < b:
                    rows.append({"dataset": ds, "setting_a": a, "setting_b": b, "metric": metric,
                                 "n_methods": len(common), "kendall_tau": float(tau), "p": float(p)})
            lines.append(f"| {a} | " + " | ".join(cells) + " |")
        lines.append(f"\n_τ between the orderings of the methods both settings rank (at least 3); 1 = same order, "
                     "−1 = reversed._\n")
    out = [ctx.write("tables/protocol_robustness.md", "\n".join(lines) + "\n")]
    if rows:
        out.append(ctx.write("tables/protocol_robustness.csv", pd.DataFrame(rows).to_csv(index=False)))
    return out


# ---- accuracy_diversity ------------------------------------------------------------------------------------
def _pareto(points: list[tuple[float, float]]) -> list[bool]:
    """Non-dominated points when both coordinates are better higher."""
    return [not any((x2 >= x and y2 >= y) and (x2 > x or y2 > y) for x2, y2 in points) for x, y in points]


@register_summary("accuracy_diversity")
def accuracy_diversity(ctx: SummaryContext) -> list[Path]:
    """Accuracy against intra-list diversity per dataset x protocol: every method a point (mean over seeds with a
    95 % Student interval on both axes), every re-ranked method (``rerank:*``) a curve over its configurations
    (one curve per base: e.g. MMR's lam from 1 to 0), the Pareto front (no point better on both axes) circled.
    Accuracy = the grid's valid metric; diversity = the grid's first diversity@K metric."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from metarec.report.plots import _save

    acc = ctx.meta["valid_metric"]
    div = next((m for m in ctx.meta.get("metrics", []) if m.startswith("diversity@")), None)
    if div is None:
        raise ConfigError(f"{ctx.folder}: summary accuracy_diversity needs a diversity@K metric in the grid")
    test = ctx.tidy[(ctx.tidy.stage == "test") & ctx.tidy.metric.isin([acc, div])]
    rerank = test.method.str.startswith("rerank:")
    # plain methods: their selected configuration; re-rankers: every configuration (the trade-off curve)
    test = test[(test.selected & ~rerank) | rerank]
    one_setting_each(test, "accuracy_diversity", ctx.folder)
    out, rows = [], []
    for (ds, proto), g in test.groupby(["dataset", "protocol"], sort=True):
        wide = g.pivot_table(index=["method", "params", "seed"], columns="metric", values="value").dropna()
        if wide.empty or acc not in wide or div not in wide:
            continue
        pts = []
        for (method, params), h in wide.groupby(level=["method", "params"], sort=True):
            (acc_mean, acc_ci), (div_mean, div_ci) = mean_interval(h[acc]), mean_interval(h[div])
            pts.append({"dataset": ds, "protocol": proto, "method": method, "params": params, "seeds": len(h),
                        # one seed: no interval (drawn and written as 0)
                        "accuracy": acc_mean, "accuracy_ci": np.nan_to_num(acc_ci), "diversity": div_mean,
                        "diversity_ci": np.nan_to_num(div_ci)})
        front = _pareto([(p["diversity"], p["accuracy"]) for p in pts])
        for p, f in zip(pts, front):
            p["pareto"] = f
        rows += pts
        fig, ax = plt.subplots(figsize=(5.6, 4.2))
        plain = [p for p in pts if not p["method"].startswith("rerank:")]
        for p in plain:
            ax.errorbar(p["diversity"], p["accuracy"], xerr=p["diversity_ci"], yerr=p["accuracy_ci"], fmt="o",
                        ms=4, capsize=2, label=p["method"])
        curves: dict[tuple[str, str], list[dict]] = {}
        for p in pts:
            if p["method"].startswith("rerank:"):
                d = json.loads(p["params"])
                sweep = {k: v for k, v in d.items() if k != "lam"}
                curves.setdefault((p["method"], json.dumps(sweep, sort_keys=True)), []).append({**p, "lam": d.get("lam")})
        for (method, sweep), c in curves.items():
            c = sorted(c, key=lambda p: p["lam"] if p["lam"] is not None else 0)
            base = json.loads(sweep).get("base", "")
            ax.errorbar([p["diversity"] for p in c], [p["accuracy"] for p in c], xerr=[p["diversity_ci"] for p in c],
                        yerr=[p["accuracy_ci"] for p in c], fmt="s--", ms=3, capsize=2, label=f"{method}({base})")
            for p in c:
                ax.annotate(f"λ={p['lam']}", (p["diversity"], p["accuracy"]), fontsize=7, xytext=(3, 3),
                            textcoords="offset points")
        fr = [p for p in pts if p["pareto"]]
        ax.scatter([p["diversity"] for p in fr], [p["accuracy"] for p in fr], s=140, facecolors="none",
                   edgecolors="black", linewidths=0.8, label="Pareto front")
        ax.set_xlabel(f"{div} (test)", fontsize=8)
        ax.set_ylabel(f"{acc} (test)", fontsize=8)
        ax.set_title(f"{ds} / {proto}: accuracy vs diversity (mean, 95 % CI over seeds)", fontsize=8)
        ax.tick_params(labelsize=7.5)
        ax.legend(fontsize=7, loc="best")
        out += _save(fig, ctx.folder / "figures", f"accuracy_diversity_{ds}_{proto}".replace("-", "_"))
    if rows:
        out.append(ctx.write("tables/accuracy_diversity.csv", pd.DataFrame(rows).to_csv(index=False)))
    return out


# ---- leaderboard -------------------------------------------------------------------------------------------
LEADERBOARD_COLUMNS = 6   # metrics shown in leaderboard.md (all of them in tables/leaderboard.csv)


def _leaderboard_tex(rows: list[dict], metrics: list[str], primary: str, best: str | None, title: str) -> str:
    """One setting's leaderboard as a LaTeX table: rank, method, family, the first metrics (mean ± 95 % half-width)
    and the Δ to the best tuned baseline with its interval and seed-level p (Holm)."""
    esc = lambda t: str(t).replace("_", "\\_").replace("%", "\\%")  # noqa: E731
    head = (["rank", "method", "family"] + [esc(m) for m in metrics]
            + [f"$\\Delta$ {esc(primary)} vs {esc(best or '–')}"])
    out = ["\\begin{table}[!htbp]", "\\centering", "\\small",
           f"\\caption{{Leaderboard, {esc(title)} (test): mean $\\pm$ 95\\,\\% interval half-width over seeds; "
           "$\\Delta$ against the best tuned classical baseline with its 95\\,\\% interval and the seed-level paired "
           "$t$-test, Holm-corrected ($^*$: $p<0.05$).}",
           "\\resizebox{\\linewidth}{!}{%", "\\begin{tabular}{rll" + "r" * len(metrics) + "l}", "\\toprule",
           " & ".join(head) + " \\\\", "\\midrule"]
    for r in rows:
        cells = [str(r["rank"]), esc(r["method"]), esc(r["family"])]
        for m in metrics:
            mean, half = r.get(m, float("nan")), r.get(f"{m}_ci", float("nan"))
            cells.append("--" if np.isnan(mean) else   # a metric the method does not report (MeLU: no recall)
                         f"{mean:.4f}" + ("" if np.isnan(half) else f" $\\pm$ {half:.4f}"))
        if r["method"] == best:
            cells.append("reference")
        elif "delta" in r:
            p = r["seed_p_holm"]
            star = "$^*$" if not np.isnan(p) and p < ALPHA else ""
            cells.append(f"${r['delta']:+.4f}$ [${r['delta_ci_low']:+.4f}$, ${r['delta_ci_high']:+.4f}$]"
                         + ("" if np.isnan(p) else f", $p$ {p:.2g}{star}"))
        else:
            cells.append("–")
        out.append(" & ".join(cells) + " \\\\")
    out += ["\\bottomrule", "\\end{tabular}}", "\\end{table}"]
    return "\n".join(out) + "\n"


@register_summary("leaderboard")
def leaderboard(ctx: SummaryContext) -> list[Path]:
    """One ranked table per dataset x protocol setting (``leaderboard.md`` in the results folder, every metric in
    ``tables/leaderboard.csv``): every method's test metrics (mean and 95 % interval over seeds), its rank on the
    grid's primary metric, its Δ to the best tuned classical baseline (the ``baseline``-family method with the best
    test mean on that metric: the strongest bar, so the Δ is conservative) with the 95 % interval over seeds and the
    seed-level paired p (Holm across methods), and a link to each seed's reproducibility card (cards/<run>.md)."""
    from metarec.eval.registry import lower_is_better
    from metarec.report.stats import compare

    sel = ctx.selected_test
    primary = ctx.meta.get("valid_metric") or "ndcg@10"
    order = [m for m in (ctx.meta.get("metrics") or []) if m in set(sel.metric)] or sorted(sel.metric.unique())
    if primary in order:
        order = [primary] + [m for m in order if m != primary]
    lines = [f"# {ctx.meta.get('grid', '')} leaderboard\n",
             f"Test metrics, mean [95 % interval over seeds; each seed its own split and training seed]; rank on "
             f"{primary}; Δ against the best tuned classical baseline of the setting (best test mean on {primary} "
             f"among the baseline family), with its 95 % interval over seeds and the seed-level paired t-test "
             f"(Holm across methods; * p < 0.05); cards: each seed's reproducibility card.\n"]
    missing, deferred = ctx.meta.get("members_missing") or [], ctx.meta.get("deferred") or {}
    if missing:   # a composition: say which member grids' cells these tables do not hold yet, and why
        lines.append("Not in these tables (member grids without exported results): " + "; ".join(
            f"{m} (deferred: {deferred[m]})" if m in deferred else f"{m} (not reported yet)" for m in missing) + "\n")
    if ctx.meta.get("excluded_methods"):   # registered methods no member runs
        lines.append("Registered methods not run: " + "; ".join(
            f"{m} ({why})" for m, why in ctx.meta["excluded_methods"].items()) + "\n")
    spent = ctx.meta.get("compute")
    if spent:   # a composition: what its exported members cost (compose.compute_spent)
        machines = ", ".join(f"{cpu} {n:,}" for cpu, n in spent["cpus"].items())
        lines.append(f"Compute (the exported members, each run and trial counted once; CPU time of all threads as "
                     f"measured on the machine that ran it): {spent['runs']:,} runs, {spent['run_cpu_h']:,.1f} CPU-h "
                     f"(wall {spent['run_wall_h']:,.1f} h; runs per CPU: {machines}); {spent['trials']:,} tuning "
                     f"trials in {spent['studies']:,} studies, {spent['trial_cpu_h']:,.1f} CPU-h (wall "
                     f"{spent['trial_wall_h']:,.1f} h); total **{spent['cpu_h']:,.1f} CPU-h**"
                     + (f" ({spent['runs_wall_only']:,} runs recorded without CPU time count their wall time)"
                        if spent.get("runs_wall_only") else "") + ".\n")
    if ctx.meta.get("excluded"):   # cells the grid leaves out (a method's exclude:), each with the YAML's reason
        lines.append("Cells not run:\n")
        settings = Counter((c["dataset"], c["protocol"], c["method"]) for c in ctx.meta["excluded"])
        for c in ctx.meta["excluded"]:   # a protocol's parameters only where they tell two left-out cells apart
            params = f" {c['protocol_params']}" if settings[(c["dataset"], c["protocol"], c["method"])] > 1 else ""
            lines.append(f"- {c['dataset']} / {c['protocol']}{params}: {c['method']}"
                         + (f" — {c['reason']}" if c["reason"] else ""))
        lines.append("")
    rows: list[dict] = []
    tex: list[str] = []   # the same tables for the paper (tables/leaderboard.tex): primary metric, Δ, two more
    for ds, proto, pp, label, g in each_setting(sel):
        metrics = [m for m in order if m in set(g.metric)]
        if primary not in metrics:
            continue
        low = lower_is_better(primary)
        score = g[g.metric == primary].groupby("method").value.mean()
        rank = score.rank(ascending=low, method="min").astype(int)
        family = g.drop_duplicates("method").set_index("method").family
        base = score[family.reindex(score.index) == "baseline"]
        best = (base.idxmin() if low else base.idxmax()) if len(base) else None
        tests = pd.DataFrame()
        if best is not None and ctx.per_user is not None and primary in ctx.per_user.columns:
            pu = ctx.per_user[(ctx.per_user.dataset == ds) & (ctx.per_user.protocol == proto)]
            if "protocol_params" in pu.columns:
                pu = pu[pu.protocol_params == pp]
            tests = compare(pu, best, primary, alpha=ALPHA, user_ci=False)
        by_method = tests.set_index("method") if not tests.empty else pd.DataFrame()
        shown = metrics[:LEADERBOARD_COLUMNS]
        lines.append(f"\n## {ds} / {proto}{' ' + label if label else ''}\n")
        lines.append("| rank | method | family | " + " | ".join(shown) + f" | Δ {primary} vs {best or '–'} | cards |")
        lines.append("|---" * (len(shown) + 5) + "|")
        for method in sorted(score.index, key=lambda m: (rank[m], m)):
            m_rows = g[g.method == method]
            cells, row = [], {"dataset": ds, "protocol": proto, "protocol_params": pp, "rank": int(rank[method]),
                              "method": method, "family": family.get(method, ""), "baseline": best}
            for metric in metrics:
                mean, half = mean_interval(m_rows[m_rows.metric == metric].value)
                row[metric], row[f"{metric}_ci"] = mean, half
                if metric in shown:
                    cells.append("–" if np.isnan(mean) else   # a metric the method does not report
                                 f"{mean:.4f}" + ("" if np.isnan(half) else f" [±{half:.4f}]"))
            if method == best:
                delta = "reference"
            elif method in by_method.index:
                t = by_method.loc[method]
                p = "–" if np.isnan(t.seed_p_holm) else f"p {t.seed_p_holm:.2g}{'*' if t.significant else ''}"
                delta = f"{t.delta:+.4f} [{t.ci_low:+.4f}, {t.ci_high:+.4f}], {p}"
                row.update(delta=t.delta, delta_ci_low=t.ci_low, delta_ci_high=t.ci_high, seed_p_holm=t.seed_p_holm)
            else:
                delta = "–"
            runs = m_rows.drop_duplicates("run").sort_values("seed")
            cards = " ".join(f"[{s}](cards/{r}.md)" for s, r in zip(runs.seed, runs.run))
            lines.append(f"| {rank[method]} | {method} | {row['family']} | " + " | ".join(cells) +
                         f" | {delta} | {cards} |")
            rows.append(row)
        tex.append(_leaderboard_tex(rows[-len(score):], metrics[:3], primary, best,
                                    f"{ds} / {proto}{' ' + label if label else ''}"))
    if tex:
        ctx.write("tables/leaderboard.tex", "\n".join(tex))
    files = [ctx.write("leaderboard.md", "\n".join(lines) + "\n")]
    files.append(ctx.write("tables/leaderboard.csv", pd.DataFrame(rows).to_csv(index=False)))
    return files
