"""Figures (PNG + PDF) from the tidy results table. A family's figure is drawn when that family has results and
skipped (with a reason) when it has none."""
from __future__ import annotations

import functools
import json
import re
import warnings
from contextlib import contextmanager
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from metarec.report.stats import mean_interval  # noqa: E402


def _stem(metric: str) -> str:
    """A file-name-safe form of a metric name: 'ndcg@10' -> 'ndcg10', 'query/mae' -> 'query_mae'."""
    return metric.replace("@", "").replace("/", "_")


#: the paper's text width (paper/paper.tex: 11 pt article, 2.2 cm margins on letter paper): every figure is
#: included at \linewidth, so a figure drawn wider than this is shrunk and its text with it
TEXT_WIDTH_IN = 6.7
#: the smallest text, in points as printed at the paper's text width, a figure may carry
MIN_FONT_PT = 6.5
#: one type scale for every figure (points at the drawn size; figures are drawn at or below TEXT_WIDTH_IN)
STYLE = {"font.size": 8, "axes.titlesize": 8.5, "axes.labelsize": 8, "xtick.labelsize": 7.5,
         "ytick.labelsize": 7.5, "legend.fontsize": 7.5, "legend.title_fontsize": 7.5, "figure.titlesize": 8.5,
         "figure.labelsize": 8}


class IllegibleFigure(UserWarning):
    """A figure whose smallest text would print below ``MIN_FONT_PT`` at the paper's text width."""


#: the tallest a figure may be drawn (inches): the paper's text height on letter paper with 2.2 cm margins is
#: 9.27 in, less a caption; LaTeX cannot place a taller float and drops it ("Float(s) lost")
MAX_HEIGHT_IN = 8.3


class OversizeFigure(UserWarning):
    """A figure drawn taller than ``MAX_HEIGHT_IN``: no page of the paper can hold it."""


def paper_style(draw):
    """Decorator: a figure function draws under ``STYLE`` (text sizes are fixed when an artist is made)."""
    @functools.wraps(draw)
    def wrapper(*args, **kwargs):
        with plt.rc_context(STYLE):
            return draw(*args, **kwargs)
    return wrapper


def printed_text_pt(fig) -> float:
    """The smallest visible text of ``fig`` in points as printed at ``TEXT_WIDTH_IN`` (the figure's tight width
    above it shrinks every text by the same factor; a narrower figure is not enlarged here)."""
    from matplotlib.text import Text

    renderer = fig.canvas.get_renderer()
    width_in = fig.get_tightbbox(renderer).width   # inches: what bbox_inches="tight" saves
    sizes = [t.get_fontsize() for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]
    return min(sizes, default=float("inf")) * min(1.0, TEXT_WIDTH_IN / width_in)


def check_legible(fig, stem: str) -> float:
    """Warn (``IllegibleFigure``) when ``fig``'s smallest text prints below ``MIN_FONT_PT``; returns that size."""
    pt = printed_text_pt(fig)
    if pt < MIN_FONT_PT:
        warnings.warn(f"figure {stem}: its smallest text prints at {pt:.1f} pt at the paper's text width "
                      f"({TEXT_WIDTH_IN} in; the floor is {MIN_FONT_PT} pt)", IllegibleFigure, stacklevel=3)
    return pt


FAMILY_COLOURS = {"baseline": "#7f7f7f", "distill": "#1f77b4", "multitask": "#2ca02c", "meta": "#d62728"}


LEGEND_COLUMNS, LEGEND_ROW_IN = 4, 0.17


def legend_height_in(entries: int) -> float:
    """Inches a legend of ``entries`` under the panels takes (``LEGEND_COLUMNS`` a row): add it to the figure."""
    return LEGEND_ROW_IN * -(-entries // LEGEND_COLUMNS)


def legend_below(fig, handles, labels) -> None:
    """One legend under every panel and the panels laid out above it: beside the axes, a legend widens the figure
    past the text width. The figure's height must include ``legend_height_in(len(labels))``."""
    fig.legend(handles, labels, loc="lower center", ncol=LEGEND_COLUMNS, frameon=False)
    fig.tight_layout(rect=(0, (legend_height_in(len(labels)) + 0.05) / fig.get_figheight(), 1, 1))


def grid_shape(panels: int, max_cols: int = 2) -> tuple[int, int]:
    """(rows, columns) for ``panels`` panels at most ``max_cols`` wide: panels wrap into rows instead of shrinking."""
    cols = max(1, min(max_cols, panels))
    return -(-panels // cols), cols


_WRITE_FILES = [True]


@contextmanager
def figure_files(write: bool):
    """Within: figures are drawn but, when ``write`` is False, not saved (``_save`` returns no files)."""
    _WRITE_FILES.append(bool(write))
    try:
        yield
    finally:
        _WRITE_FILES.pop()


def check_fits(fig, stem: str) -> float:
    """Warn (``OversizeFigure``) when ``fig`` is drawn taller than ``MAX_HEIGHT_IN``; returns its height."""
    height = fig.get_figheight()
    if height > MAX_HEIGHT_IN:
        warnings.warn(f"figure {stem}: drawn {height:.1f} in tall, over a page ({MAX_HEIGHT_IN} in): split its "
                      "panels over several figures (plots.pages)", OversizeFigure, stacklevel=3)
    return height


def pages(heights: list[float], cols: int, room: float) -> list[list[int]]:
    """The panels (by index, in order) of each page of a figure: rows of ``cols`` panels, a row as tall as its
    tallest panel (``heights``), as many rows a page as fit in ``room`` inches (always at least one). A grid
    with many datasets x protocols (the paper's composition: over twenty) draws one figure a page instead of one
    figure no page can hold."""
    rows = [list(range(i, min(i + cols, len(heights)))) for i in range(0, len(heights), cols)]
    out: list[list[int]] = []
    used = 0.0
    for row in rows:
        tall = max(heights[i] for i in row)
        if not out or used + tall > room:
            out.append([])
            used = 0.0
        out[-1].extend(row)
        used += tall
    return out


def row_heights(heights: list[float], panels: list[int], cols: int) -> list[float]:
    """The height of each row of one page (``panels``: its panels' indices into ``heights``, ``cols`` a row)."""
    return [max(heights[i] for i in panels[r:r + cols]) for r in range(0, len(panels), cols)]


def page_stem(stem: str, page: int) -> str:
    """File stem of a figure's ``page`` (0-based): the first keeps the figure's own name."""
    return stem if page == 0 else f"{stem}_p{page + 1}"


def _save(fig, folder: Path, stem: str) -> list[Path]:
    check_legible(fig, stem)   # drawn-only figures too: the tests measure every figure without writing it
    check_fits(fig, stem)
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


def setting_panels(sel: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """(panel title, rows) per dataset x protocol x setting of ``sel`` (macros.each_setting): a K-shot grid gets a
    panel per K, never one bar pooling every K's seeds into a mean and an interval that describe no setting."""
    from metarec.report.macros import each_setting

    return [(f"{ds} / {proto}" + (f", {label}" if label else ""), rows)
            for ds, proto, _, label, rows in each_setting(sel)]


@paper_style
def metric_bars(tidy: pd.DataFrame, metric: str, folder: Path) -> list[Path]:
    """Per dataset x protocol x setting, every method's test mean and 95 % Student interval over seeds (the interval
    of every table), best on top, coloured by family."""
    sel = tidy[(tidy.selected) & (tidy.stage == "test") & (tidy.metric == metric)]
    if sel.empty:
        return []
    from metarec.eval.registry import lower_is_better

    lower = lower_is_better(metric)   # MAE, RMSE: the smallest is the best
    keys = ["method", "family"]
    groups = [(title, pd.DataFrame([(*key, *mean_interval(g.value)) for key, g in rows.groupby(keys)],
                                   columns=keys + ["mean", "half"]))
              for title, rows in setting_panels(sel)]
    _, cols = grid_shape(len(groups))
    width = TEXT_WIDTH_IN if cols > 1 else 4.5
    heights = [0.9 + 0.2 * len(g) for _, g in groups]   # a panel as tall as its own methods need
    out: list[Path] = []
    for page, panels in enumerate(pages(heights, cols, MAX_HEIGHT_IN)):
        tall = row_heights(heights, panels, cols)
        fig, axes = plt.subplots(len(tall), cols, figsize=(width, sum(tall)), squeeze=False,
                                 gridspec_kw={"height_ratios": tall})
        for ax, i in zip(axes.flat, panels):
            title, g = groups[i]
            g = g.sort_values("mean", ascending=not lower)   # barh draws the last row on top: the best
            colors = [FAMILY_COLOURS.get(f, "#9467bd") for f in g.family]
            ax.barh(g.method, g["mean"], xerr=g["half"].fillna(0.0), color=colors, capsize=3)   # one seed: no bar
            ax.set_title(title)
            ax.set_xlabel(f"test {metric} (mean, 95 % CI)")
            ax.xaxis.set_major_locator(plt.MaxNLocator(4))   # half the text width: more tick labels run together
        for ax in list(axes.flat)[len(panels):]:
            ax.axis("off")
        fig.tight_layout()
        out += _save(fig, folder, page_stem(f"bars_{_stem(metric)}", page))
    return out


def log_x(ax, values) -> None:
    """A log x axis whose tick labels never crowd: within one decade matplotlib labels every minor tick
    ("1.2x10^5 1.3x10^5 ..." running into each other), so there three ticks spread over the values' range, in plain
    numbers of two significant digits, are the only labels; minor ticks are never labelled."""
    ax.set_xscale("log")
    xs = pd.Series(values, dtype=float)
    xs = xs[np.isfinite(xs) & (xs > 0)]
    if len(xs) and xs.max() < 10 * xs.min():
        ticks = sorted({float(f"{v:.2g}") for v in np.geomspace(xs.min(), xs.max(), 3)})
        ax.xaxis.set_major_locator(matplotlib.ticker.FixedLocator(ticks))
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())


@paper_style
def scatter(tidy: pd.DataFrame, metric: str, x: str, xlabel: str, folder: Path, stem: str, families=None,
            logx: bool = False) -> list[Path]:
    sel = tidy[(tidy.selected) & (tidy.stage == "test") & (tidy.metric == metric)]
    if families is not None:
        sel = sel[sel.family.isin(families)]
    if sel.empty:
        return []
    groups = [(title, pd.DataFrame([(m, *mean_interval(g.value), g[x].mean()) for m, g in rows.groupby("method")],
                                   columns=["method", "y", "ys", "x"]))   # ys: the 95 % interval's half-width
              for title, rows in setting_panels(sel)]
    methods = sorted(sel.method.unique())
    # one colour and marker per method, the same in every panel, named once in a legend under the panels (names
    # written beside the points overlap wherever two methods cost about the same)
    colours, markers = plt.get_cmap("tab20").colors, "os^DvP*X<>"
    look = {m: {"color": colours[i % len(colours)], "marker": markers[(i // len(colours) + i) % len(markers)]}
            for i, m in enumerate(methods)}
    _, cols = grid_shape(len(groups))
    width = TEXT_WIDTH_IN if cols > 1 else 4.5
    out: list[Path] = []
    # a page's legend names that page's methods; keep room for the longest legend any page could need
    for page, panels in enumerate(pages([2.6] * len(groups), cols, MAX_HEIGHT_IN - legend_height_in(len(methods)))):
        shown = sorted({m for i in panels for m in groups[i][1].method})
        rows = -(-len(panels) // cols)
        fig, axes = plt.subplots(rows, cols, figsize=(width, 2.6 * rows + legend_height_in(len(shown))),
                                 squeeze=False)
        for ax, i in zip(axes.flat, panels):
            title, g = groups[i]
            for r in g.itertuples():
                ax.errorbar([r.x], [r.y], yerr=[0.0 if np.isnan(r.ys) else r.ys], capsize=2, linestyle="none",
                            markersize=5, label=r.method, **look[r.method])
            if logx:
                log_x(ax, g.x)
            ax.set_title(title)
            ax.set_xlabel(xlabel)
            ax.set_ylabel(f"test {metric} (mean, 95 % CI)")
        for ax in list(axes.flat)[len(panels):]:
            ax.axis("off")
        handles = [plt.Line2D([], [], linestyle="none", markersize=5, **look[m]) for m in shown]
        legend_below(fig, handles, shown)
        out += _save(fig, folder, page_stem(stem, page))
    return out


@paper_style
def kshot_curve(tidy: pd.DataFrame, metric: str, folder: Path) -> list[Path]:
    """One K-shot curve per dataset and cold-start setting (the protocol's parameters but ``k_shot``): a
    composition holds several (MovieLens with and without new items, MovieLens-1M, Amazon), and a method's points at
    one K from different datasets are not one curve. One setting: ``kshot_<metric>``; several: one figure each,
    ``kshot_<metric>_<dataset>`` with the setting's differing parameters in the name and the title."""
    sel = tidy[(tidy.selected) & (tidy.stage == "test") & (tidy.metric == metric) & (tidy.protocol == "cold_start")]
    if "protocol_params" not in sel or sel.empty:
        return []
    params = sel.protocol_params.map(json.loads)
    sel = sel.assign(k=params.map(lambda p: p.get("k_shot")),
                     setting=params.map(lambda p: json.dumps({k: v for k, v in p.items() if k != "k_shot"},
                                                            sort_keys=True)))
    curves = [(ds, st, g) for (ds, st), g in sel.groupby(["dataset", "setting"], sort=True) if g.k.nunique() >= 2]
    files: list[Path] = []
    for ds, st, g in curves:
        # what tells this setting from the dataset's others (MovieLens with and without new items): its name
        mine = json.loads(st)
        others = [json.loads(t) for d, t, _ in curves if d == ds]
        differ = sorted(k for k in mine if len({json.dumps(o.get(k)) for o in others}) > 1)
        label = ", ".join(f"{k}={mine[k]}" for k in differ)
        stem = f"kshot_{_stem(metric)}" if len(curves) == 1 else re.sub(
            r"[^A-Za-z0-9_.-]", "", f"kshot_{_stem(metric)}_{ds}" + "".join(f"_{k}{mine[k]}" for k in differ))
        files += _kshot_figure(g, metric, f"{ds}{', ' + label if label else ''}" if len(curves) > 1 else None,
                               folder, stem)
    return files


def _kshot_figure(sel: pd.DataFrame, metric: str, title: str | None, folder: Path, stem: str) -> list[Path]:
    ks = sorted(sel.k.unique())
    methods = sorted(sel.method.unique())
    fig, ax = plt.subplots(figsize=(TEXT_WIDTH_IN, 3.4))
    # a colour and a marker of its own per method: a composition's cold-start panel has fifteen methods, more
    # than one ten-colour cycle tells apart
    colours, markers = plt.get_cmap("tab20").colors, "os^DvP*X<>"
    for i, method in enumerate(methods):
        g = sel[sel.method == method]
        # the 95 % interval of the mean over seeds (Student t), the interval every table of the suite reports
        a = pd.DataFrame([(k, *mean_interval(v)) for k, v in g.groupby("k")["value"]], columns=["k", "mean", "half"])
        half = a["half"].fillna(0.0)   # one seed: no interval to draw
        # methods side by side at each K (a small multiplicative offset on the log axis), so no bar hides another
        x = a.k * 1.035 ** (i - (len(methods) - 1) / 2)
        baseline = (g.family == "baseline").any() if "family" in g.columns else False
        ax.errorbar(x, a["mean"], yerr=half, marker=markers[i % len(markers)], markersize=4, capsize=2,
                    linewidth=1.2, color=colours[i % len(colours)], linestyle="--" if baseline else "-",
                    label=method)
    ax.set_xscale("log")
    ax.set_xticks(ks)
    ax.set_xticklabels([str(k) for k in ks])
    ax.minorticks_off()
    ax.set_xlabel("support examples per cold user (K)")
    ax.set_ylabel(f"{metric} (mean, 95 % CI over seeds)")
    if title:
        ax.set_title(title)
    # the legend below the axes, not beside them: beside, it widens the figure past the text width
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=4, title="dashed: baselines")
    fig.tight_layout()
    return _save(fig, folder, stem)


@paper_style
def frontier(table: pd.DataFrame, metric: str, folder: Path, stem: str) -> list[Path]:
    """``metric`` (mean, 95 % interval) against parameters, against encoding items/s and, where the table has it,
    against milliseconds of inference per test user (log x), one point per method (``table``: method, mean, ci,
    parameters, items_per_s[, latency_ms])."""
    if table.empty:
        return []
    # a method without parameters (popularity) has no place on a cost frontier, and drawn at its accuracy it
    # squeezes every model into the top of the axis: it is named in the legend with its value instead
    free = table[table.parameters.fillna(0) <= 0]
    table = table[table.parameters.fillna(0) > 0]
    if table.empty:
        return []
    panels = [("parameters", "parameters at inference"), ("items_per_s", "item texts encoded per s")]
    if "latency_ms" in table and np.isfinite(table["latency_ms"]).any():
        panels.append(("latency_ms", "ms per test user"))
    methods = list(table.method)
    # one colour and marker per method in every panel, named once under the panels (a method without a value on a
    # panel's axis, e.g. an id-only model's encoding speed, is absent there but keeps its look elsewhere)
    colours, markers = plt.get_cmap("tab10").colors, "os^DvP*X<>"
    look = {m: {"color": colours[i % len(colours)], "marker": markers[i % len(markers)]} for i, m in enumerate(methods)}
    fig, axes = plt.subplots(1, len(panels), figsize=(TEXT_WIDTH_IN, 2.6 + legend_height_in(len(methods) + len(free))),
                             sharey=True)
    for ax, (col, label) in zip(np.atleast_1d(axes), panels):
        for r in table.itertuples():
            x = getattr(r, col)
            if not np.isfinite(x) or x <= 0:   # no point on a log axis (an id-only model's encoding speed)
                continue
            ax.errorbar([x], [r.mean], yerr=[0.0 if np.isnan(r.ci) else r.ci], capsize=2, linestyle="none",
                        markersize=5, **look[r.method])
        log_x(ax, table[col])
        ax.margins(x=0.25)
        ax.set_xlabel(f"{label} (log)")
    np.atleast_1d(axes)[0].set_ylabel(f"test {metric} (mean, 95 % CI)")
    handles = [plt.Line2D([], [], linestyle="none", markersize=5, **look[m]) for m in methods]
    labels = methods + [f"{r.method}: {r.mean:.4f} (no parameters; not drawn)" for r in free.itertuples()]
    handles += [plt.Line2D([], [], linestyle="none")] * len(free)
    legend_below(fig, handles, labels)
    return _save(fig, folder, _stem(stem))


@paper_style
def per_task_bars(tidy: pd.DataFrame, folder: Path) -> list[Path]:
    """One panel per task metric (two columns, as many rows as needed): every method's test mean with its 95 %
    interval over seeds, as horizontal bars so the method names stay readable at the paper's column width. A grid
    with more than one dataset x protocol x setting gets a panel per setting and metric, titled with both."""
    sel = tidy[(tidy.selected) & (tidy.stage == "test") & tidy.metric.str.contains("/")]
    if sel.empty:
        return []
    settings = setting_panels(sel)
    panels = [(metric if len(settings) == 1 else f"{title}: {metric}", rows[rows.metric == metric])
              for title, rows in settings for metric in sorted(rows.metric.unique())]
    _, cols = grid_shape(len(panels))
    heights = [0.7 + 0.26 * g.method.nunique() for _, g in panels]   # each panel lists the methods it has
    out: list[Path] = []
    for page, shown in enumerate(pages(heights, cols, MAX_HEIGHT_IN - 0.3)):   # 0.3 in: the shared x label
        tall = row_heights(heights, shown, cols)
        fig, axes = plt.subplots(len(tall), cols, figsize=(TEXT_WIDTH_IN / 2 * cols, sum(tall) + 0.3),
                                 squeeze=False, gridspec_kw={"height_ratios": tall})
        for ax, i in zip(axes.flat, shown):
            title, g = panels[i]
            methods = sorted(g.method.unique())
            stats = [mean_interval(g[g.method == m].value) for m in methods]
            y = np.arange(len(methods))
            ax.barh(y, [m for m, _ in stats], xerr=[0.0 if np.isnan(h) else h for _, h in stats], capsize=2,
                    color="#2ca02c")
            ax.set_yticks(y)
            ax.set_yticklabels(methods)
            ax.invert_yaxis()
            ax.set_title(title)
            ax.xaxis.set_major_locator(plt.MaxNLocator(4))
        for ax in list(axes.flat)[len(shown):]:
            ax.axis("off")
        fig.supxlabel("test mean, 95 % CI over seeds")
        fig.tight_layout()
        out += _save(fig, folder, page_stem("per_task", page))
    return out


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
