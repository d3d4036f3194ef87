"""Figures (PNG + PDF) from the tidy results table. A family's figure is drawn when that family has results and
skipped (with a reason) when it has none."""
from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from metarec.report.stats import mean_interval  # noqa: E402
from metarec.report.tables import summary  # noqa: E402


def _stem(metric: str) -> str:
    """A file-name-safe form of a metric name: 'ndcg@10' -> 'ndcg10', 'query/mae' -> 'query_mae'."""
    return metric.replace("@", "").replace("/", "_")


_WRITE_FILES = [True]


@contextmanager
def figure_files(write: bool):
    """Within: figures are drawn but, when ``write`` is False, not saved (``_save`` returns no files)."""
    _WRITE_FILES.append(bool(write))
    try:
        yield
    finally:
        _WRITE_FILES.pop()


def _save(fig, folder: Path, stem: str) -> list[Path]:
    if not _WRITE_FILES[-1]:
        plt.close(fig)
        return []
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for ext in ("png", "pdf"):
        p = folder / f"{stem}.{ext}"
        # fixed metadata: regenerating identical results gives identical files
        fig.savefig(p, dpi=130, bbox_inches="tight",
                    metadata={"Software": None} if ext == "png" else {"Creator": None, "Producer": None,
                                                                        "CreationDate": None})
        out.append(p)
    plt.close(fig)
    return out


def metric_bars(tidy: pd.DataFrame, metric: str, folder: Path) -> list[Path]:
    summ = summary(tidy)
    summ = summ[summ.metric == metric]
    groups = list(summ.groupby(["dataset", "protocol"], sort=True))
    if not groups:
        return []
    fig, axes = plt.subplots(1, len(groups), figsize=(max(4.5, 3.2 * len(groups)), 3.4), squeeze=False)
    for ax, ((ds, proto), g) in zip(axes[0], groups):
        g = g.sort_values("mean")
        colors = [{"baseline": "#7f7f7f", "distill": "#1f77b4", "multitask": "#2ca02c", "meta": "#d62728"}.get(f, "#9467bd")
                  for f in g.family]
        ax.barh(g.method, g["mean"], xerr=g["std"].fillna(0.0), color=colors, capsize=3)   # one seed: no bar
        ax.set_title(f"{ds} / {proto}", fontsize=9)
        ax.set_xlabel(f"{metric} (test, mean ± std over seeds)", fontsize=8)
        ax.tick_params(labelsize=8)
    fig.tight_layout()
    return _save(fig, folder, f"bars_{_stem(metric)}")


def scatter(tidy: pd.DataFrame, metric: str, x: str, xlabel: str, folder: Path, stem: str, families=None,
            logx: bool = False) -> list[Path]:
    sel = tidy[(tidy.selected) & (tidy.stage == "test") & (tidy.metric == metric)]
    if families is not None:
        sel = sel[sel.family.isin(families)]
    if sel.empty:
        return []
    agg = sel.groupby(["dataset", "protocol", "method"]).agg(y=("value", "mean"), ys=("value", "std"),
                                                            x=(x, "mean")).reset_index()
    groups = list(agg.groupby(["dataset", "protocol"]))
    fig, axes = plt.subplots(1, len(groups), figsize=(max(4.5, 3.6 * len(groups)), 3.4), squeeze=False)
    for ax, ((ds, proto), g) in zip(axes[0], groups):
        ax.errorbar(g.x, g.y, yerr=g.ys.fillna(0), fmt="o", capsize=3)
        for _, r in g.iterrows():
            ax.annotate(r.method, (r.x, r.y), fontsize=7, xytext=(3, 3), textcoords="offset points")
        if logx:
            ax.set_xscale("log")
        ax.set_title(f"{ds} / {proto}", fontsize=9)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.set_ylabel(metric, fontsize=8)
        ax.tick_params(labelsize=8)
    fig.tight_layout()
    return _save(fig, folder, stem)


def kshot_curve(tidy: pd.DataFrame, metric: str, folder: Path) -> list[Path]:
    sel = tidy[(tidy.selected) & (tidy.stage == "test") & (tidy.metric == metric) & (tidy.protocol == "cold_start")]
    if "protocol_params" not in sel or sel.empty:
        return []
    sel = sel.assign(k=sel.protocol_params.map(lambda s: json.loads(s).get("k_shot")))
    if sel.k.nunique() < 2:
        return []
    ks = sorted(sel.k.unique())
    methods = sorted(sel.method.unique())
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for i, method in enumerate(methods):
        g = sel[sel.method == method]
        # the 95 % interval of the mean over seeds (Student t), the interval every table of the suite reports
        a = pd.DataFrame([(k, *mean_interval(v)) for k, v in g.groupby("k")["value"]], columns=["k", "mean", "half"])
        half = a["half"].fillna(0.0)   # one seed: no interval to draw
        # methods side by side at each K (a small multiplicative offset on the log axis), so no bar hides another
        x = a.k * 1.035 ** (i - (len(methods) - 1) / 2)
        baseline = (g.family == "baseline").any() if "family" in g.columns else False
        ax.errorbar(x, a["mean"], yerr=half, marker="o", markersize=4, capsize=2, linewidth=1.2,
                    linestyle="--" if baseline else "-", label=method)
    ax.set_xscale("log")
    ax.set_xticks(ks)
    ax.set_xticklabels([str(k) for k in ks])
    ax.minorticks_off()
    ax.set_xlabel("support examples per cold user (K)")
    ax.set_ylabel(f"{metric} (mean, 95 % CI over seeds)")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), title="dashed: baselines",
              title_fontsize=7)
    fig.tight_layout()
    return _save(fig, folder, f"kshot_{_stem(metric)}")


def frontier(table: pd.DataFrame, metric: str, folder: Path, stem: str) -> list[Path]:
    """Two panels: ``metric`` (mean, 95 % interval) against parameters and against encoding items/s (log x), one
    point per method (``table``: method, mean, ci, parameters, items_per_s)."""
    if table.empty:
        return []
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for ax, col, label in ((axes[0], "parameters", "parameters at inference (log)"),
                           (axes[1], "items_per_s", "item texts encoded per second (log)")):
        for r in table.itertuples():
            x = getattr(r, col)
            if not np.isfinite(x):
                continue
            ax.errorbar([x], [r.mean], yerr=[0.0 if np.isnan(r.ci) else r.ci], marker="o", capsize=3,
                        label=r.method)
            ax.annotate(r.method.split(":")[-1], (x, r.mean), fontsize=6, xytext=(3, 3), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel(metric)
    fig.tight_layout()
    return _save(fig, folder, _stem(stem))


def per_task_bars(tidy: pd.DataFrame, folder: Path) -> list[Path]:
    """One panel per task metric (two columns, as many rows as needed): every method's test mean with its 95 %
    interval over seeds, as horizontal bars so the method names stay readable at the paper's column width."""
    sel = tidy[(tidy.selected) & (tidy.stage == "test") & tidy.metric.str.contains("/")]
    if sel.empty:
        return []
    metrics = sorted(sel.metric.unique())
    methods = sorted(sel.method.unique())
    cols = min(2, len(metrics))
    rows = -(-len(metrics) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.9 * cols, rows * (0.7 + 0.26 * len(methods))), squeeze=False)
    for ax, metric in zip(axes.flat, metrics):
        stats = [mean_interval(sel[(sel.metric == metric) & (sel.method == m)].value) for m in methods]
        y = np.arange(len(methods))
        ax.barh(y, [m for m, _ in stats], xerr=[0.0 if np.isnan(h) else h for _, h in stats], capsize=2,
                color="#2ca02c")
        ax.set_yticks(y)
        ax.set_yticklabels(methods, fontsize=8)
        ax.invert_yaxis()
        ax.set_title(metric, fontsize=9)
        ax.tick_params(axis="x", labelsize=8)
    for ax in list(axes.flat)[len(metrics):]:
        ax.axis("off")
    fig.supxlabel("test mean, 95 % CI over seeds", fontsize=8)
    fig.tight_layout()
    return _save(fig, folder, "per_task")


def all_figures(tidy: pd.DataFrame, metric: str, folder: Path) -> dict[str, list[Path] | str]:
    fams = set(tidy.family)
    out: dict[str, list[Path] | str] = {"bars": metric_bars(tidy, metric, folder)}
    out["time_vs_accuracy"] = scatter(tidy, metric, "fit_s", "training time (s, log)", folder, "time_vs_accuracy",
                                      logx=True)
    if "distill" in fams:
        out["size_vs_accuracy"] = scatter(tidy, metric, "num_parameters", "trainable parameters (log)", folder,
                                          "size_vs_accuracy", logx=True)
        out["inference_vs_accuracy"] = scatter(tidy, metric, "score_s", "time to score all test users (s, log)",
                                               folder, "inference_vs_accuracy", logx=True)
    else:
        out["size_vs_accuracy"] = out["inference_vs_accuracy"] = "skipped: no distillation results"
    out["kshot"] = kshot_curve(tidy, metric, folder) if "meta" in fams else "skipped: no meta-learning results"
    out["per_task"] = per_task_bars(tidy, folder) if "multitask" in fams else "skipped: no multi-task results"
    return out
