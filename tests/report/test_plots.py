"""Figures stay legible in the paper: every figure is included at the text width, so its smallest text is measured
as printed there (plots.printed_text_pt) and a figure below the floor warns (IllegibleFigure; an error under
pytest: pyproject's filterwarnings)."""
from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd
import pytest

from metarec.report import plots
from metarec.report.plots import IllegibleFigure, plt

REPO = Path(__file__).resolve().parents[2]


def _figure(width_in: float, fontsize: float):
    fig, ax = plt.subplots(figsize=(width_in, 3))
    ax.set_title("title", fontsize=fontsize)
    ax.tick_params(labelsize=fontsize)
    ax.set_xlabel("x", fontsize=fontsize)
    ax.set_ylabel("y", fontsize=fontsize)
    return fig


def test_a_figure_wider_than_the_text_prints_its_text_smaller():
    narrow, wide = _figure(plots.TEXT_WIDTH_IN / 2, 8), _figure(2.5 * plots.TEXT_WIDTH_IN, 8)
    assert plots.printed_text_pt(narrow) == pytest.approx(8)   # not enlarged: it may be included narrower
    # drawn 2.5x the text width: saved tight (blank margins cropped) it is still over twice as wide as the text
    assert 8 / 2.5 < plots.printed_text_pt(wide) < 8 / 2
    plt.close("all")


def test_an_illegible_figure_warns_and_a_legible_one_does_not():
    with plots.figure_files(False):
        with pytest.warns(IllegibleFigure, match="figure too_wide: its smallest text prints at 2.*pt"):
            plots._save(_figure(3 * plots.TEXT_WIDTH_IN, 7), Path("unused"), "too_wide")
        with pytest.warns(IllegibleFigure, match="tiny_font"):   # at the text width, a 5 pt label
            plots._save(_figure(plots.TEXT_WIDTH_IN, 5), Path("unused"), "tiny_font")
        with warnings.catch_warnings():
            warnings.simplefilter("error", IllegibleFigure)
            assert plots._save(_figure(plots.TEXT_WIDTH_IN, plots.MIN_FONT_PT), Path("unused"), "ok") == []


@pytest.mark.parametrize("pairs,shape", [(1, (1, 1)), (2, (1, 2)), (3, (2, 2)), (5, (3, 2))])
def test_panels_wrap_into_rows_instead_of_shrinking(pairs, shape):
    assert plots.grid_shape(pairs) == shape
    assert plots.grid_shape(7, max_cols=3) == (3, 3)


def test_panels_fill_a_page_row_by_row_and_continue_on_the_next():
    # rows of two: (3, 1) -> 3 in, (2, 2.5) -> 2.5 in, (4,) -> 4 in; 3 + 2.5 fit 6 in, the third row does not
    assert plots.pages([3, 1, 2, 2.5, 4], cols=2, room=6) == [[0, 1, 2, 3], [4]]
    assert plots.pages([3, 1, 2, 2.5, 4], cols=2, room=5.5) == [[0, 1, 2, 3], [4]]   # exactly full
    assert plots.pages([3, 1, 2, 2.5, 4], cols=2, room=5.4) == [[0, 1], [2, 3], [4]]
    assert plots.pages([9, 1], cols=1, room=8) == [[0], [1]]   # a panel taller than a page still gets one
    assert plots.pages([], cols=2, room=8) == []
    assert [plots.page_stem("bars", i) for i in range(3)] == ["bars", "bars_p2", "bars_p3"]


def test_a_figure_taller_than_a_page_warns():
    with plots.figure_files(False):
        with pytest.warns(plots.OversizeFigure, match="figure tall: drawn 9.0 in tall"):
            plots._save(plt.figure(figsize=(plots.TEXT_WIDTH_IN, 9.0)), Path("unused"), "tall")
        with warnings.catch_warnings():
            warnings.simplefilter("error", plots.OversizeFigure)
            plots._save(plt.figure(figsize=(plots.TEXT_WIDTH_IN, plots.MAX_HEIGHT_IN)), Path("unused"), "fits")


def _many_settings(settings: int = 14, methods: int = 12) -> pd.DataFrame:
    """A composition's tidy rows: ``settings`` datasets (one protocol each), ``methods`` methods, 3 seeds, a ranking
    metric and two task metrics."""
    rows = []
    for d in range(settings):
        for m in range(methods):
            for seed in range(3):
                for metric in ("ndcg@10", "task/auc", "task/mae"):
                    rows.append({"dataset": f"data-{d}", "protocol": "general", "method": f"method-{m}",
                                 "protocol_params": "{}", "family": "multitask", "selected": True, "stage": "test",
                                 "metric": metric, "value": 0.1 + 0.01 * m + 0.001 * seed, "seed": seed,
                                 "fit_s": 1.0 + m})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("draw", ["bars", "scatter", "per_task"])
def test_a_grid_of_many_settings_draws_page_sized_figures_with_every_panel(draw, monkeypatch):
    """The paper's composition has over twenty datasets x protocols: drawn as one figure, its bars were 58 in tall
    and LaTeX dropped the float. Each page now fits, the first keeps the figure's name, and together the pages
    hold every setting's panel once."""
    saved = []

    def keep(fig, folder, stem):
        plots.check_fits(fig, stem)   # OversizeFigure is an error under pytest (pyproject)
        saved.append((stem, [ax.get_title() for ax in fig.axes if ax.get_title()]))
        plt.close(fig)
        return []

    monkeypatch.setattr(plots, "_save", keep)
    tidy = _many_settings()
    if draw == "bars":
        plots.metric_bars(tidy, "ndcg@10", Path("unused"))
        stem, per_setting = "bars_ndcg10", 1
    elif draw == "scatter":
        plots.scatter(tidy, "ndcg@10", "fit_s", "fit s", Path("unused"), "time_vs_accuracy")
        stem, per_setting = "time_vs_accuracy", 1
    else:
        plots.per_task_bars(tidy, Path("unused"))
        stem, per_setting = "per_task", 2
    assert len(saved) > 1 and saved[0][0] == stem and saved[1][0] == f"{stem}_p2"
    titles = [t for _, page in saved for t in page]
    assert len(titles) == len(set(titles)) == 14 * per_setting


@pytest.mark.parametrize("grid", ["tuned-ml100k", "meta", "multitask_mind", "tradeoff"])
def test_every_figure_of_a_committed_grid_is_legible_at_the_text_width(grid):
    """The widest cases the paper has: many datasets x protocols (tradeoff: five panels), 30 methods (tuned-ml100k),
    the K-shot curve (meta), per-task panels (multitask_mind). Drawn, not written."""
    path = REPO / "results" / grid / "results.parquet"
    if not path.is_file():
        pytest.skip(f"results/{grid} not committed")
    tidy = pd.read_parquet(path)
    with warnings.catch_warnings(), plots.figure_files(False):
        warnings.simplefilter("error", IllegibleFigure)
        drawn = plots.all_figures(tidy, "ndcg@10" if grid != "multitask_mind" else "auc", Path("unused"))
    assert set(drawn) >= {"bars", "time_vs_accuracy"}
    plt.close("all")


def _two_settings() -> pd.DataFrame:
    """A K-shot grid's tidy rows: at K = 1 method a scores 0.1, at K = 10 0.5 (three seeds each, a small spread)."""
    rows = []
    for k, level in ((10, 0.5), (1, 0.1)):
        for method, offset in (("a", 0.0), ("b", 0.02)):
            for seed in range(3):
                for metric, value in (("ndcg@10", level + offset + 0.001 * seed),
                                      ("task/mae", 1.0 + level + 0.001 * seed)):
                    rows.append({"dataset": "ml-100k", "protocol": "cold_start", "method": method,
                                 "protocol_params": f'{{"k_shot": {k}, "n_query": 10}}', "family": "meta",
                                 "selected": True, "stage": "test", "metric": metric, "value": value,
                                 "seed": seed, "fit_s": 1.0 + k})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("draw", ["bars", "scatter", "per_task"])
def test_every_figure_draws_one_setting_per_panel_never_a_pool_of_settings(draw, monkeypatch):
    """A bar, point or per-task bar shows one dataset x protocol x setting: pooling K = 1 and K = 10 would draw
    a mean (0.3) that no setting has, with an interval spanning both."""
    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, folder, stem: figures.append(fig) or [])
    tidy = _two_settings()
    if draw == "bars":
        plots.metric_bars(tidy, "ndcg@10", Path("unused"))
    elif draw == "scatter":
        plots.scatter(tidy, "ndcg@10", "fit_s", "fit s", Path("unused"), "time_vs_accuracy")
    else:
        plots.per_task_bars(tidy, Path("unused"))
    axes = [ax for ax in figures[0].axes if ax.get_title()]
    titles = [ax.get_title() for ax in axes]
    assert len(axes) == 2 and "k_shot=1" in titles[0] and "k_shot=10" in titles[1], titles   # by value, not text
    for ax, level in zip(axes, (0.1, 0.5)):
        if draw == "scatter":
            ys = sorted(c.lines[0].get_ydata()[0] for c in ax.containers)   # each point's marker, not its caps
        else:
            ys = sorted(p.get_width() for p in ax.patches)
        expected = [1.0 + level + 0.001] * 2 if draw == "per_task" else [level + 0.001, level + 0.021]
        assert ys == pytest.approx(expected), (ax.get_title(), ys)
    plt.close("all")


def test_the_frontier_leaves_out_what_a_log_axis_cannot_place(tmp_path, monkeypatch):
    """An id-only model's missing encoding speed gets no point on that panel; popularity (no parameters) gets none
    anywhere (drawn, it would squeeze the models into the top of the axis) and is named in the legend with its
    value; the latency panel appears when the table has latencies."""
    import numpy as np

    drawn = {}

    def keep(fig, folder, stem):
        drawn["axes"] = fig.axes
        drawn["legend"] = [t.get_text() for t in fig.legends[0].get_texts()]
        return []

    monkeypatch.setattr(plots, "_save", keep)
    table = pd.DataFrame({"method": ["pop", "distill:teacher", "distill:text-mpnet-6"], "mean": [0.01, 0.05, 0.06],
                          "ci": [0.001, 0.002, np.nan], "parameters": [0, 5e5, 6.7e7],
                          "items_per_s": [np.nan, np.nan, 50.0], "latency_ms": [0.1, 1.0, 2.0]})
    plots.frontier(table, "ndcg@10", tmp_path, "f")
    params, speed, latency = drawn["axes"][:3]

    def xs(ax):
        return sorted({float(x) for line in ax.lines for x in line.get_xdata()})   # caps repeat the x

    assert xs(params) == [5e5, 6.7e7] and xs(speed) == [50.0] and xs(latency) == [1.0, 2.0]
    assert drawn["legend"] == ["distill:teacher", "distill:text-mpnet-6", "pop: 0.0100 (no parameters; not drawn)"]
    assert params.get_ylim()[0] > 0.03   # the axis follows the models, not popularity's 0.01
    assert latency.get_xlabel() == "ms per test user (log)"


@pytest.mark.parametrize("values, labelled", [
    ([1.2e5, 1.7e5], ["120000", "140000", "170000"]),   # within a decade: three plain ticks, not six 1.2x10^5 ...
    ([1e3, 1e6], ["$\\mathdefault{10^{3}}$", "$\\mathdefault{10^{4}}$", "$\\mathdefault{10^{5}}$",
                  "$\\mathdefault{10^{6}}$"]),
])
def test_a_log_axis_labels_its_major_ticks_only(values, labelled):
    fig, ax = plt.subplots()
    ax.plot(values, [0, 1], "o")
    plots.log_x(ax, values)
    ax.set_xlim(min(values), max(values))
    fig.canvas.draw()
    shown = [t.get_text() for t in ax.get_xticklabels() if t.get_text() and
             min(values) <= t.get_position()[0] <= max(values)]
    assert shown == labelled
    assert not [t.get_text() for t in ax.get_xticklabels(minor=True) if t.get_text()]
    plt.close(fig)


@pytest.mark.parametrize("metric, top", [("ndcg@10", "c"), ("mae", "a")])
def test_bars_put_the_best_method_on_top_whichever_way_the_metric_points(metric, top, monkeypatch):
    """barh draws its last row on top: the highest NDCG there, and the lowest MAE (the meta_rating bars drew the
    worst MAE on top)."""
    drawn = []

    def keep(fig, folder, stem):
        drawn.append([t.get_text() for t in fig.axes[0].get_yticklabels()])
        plt.close(fig)
        return []

    monkeypatch.setattr(plots, "_save", keep)
    tidy = pd.DataFrame([{"run": f"{m}{s}", "dataset": "d", "protocol": "general", "protocol_params": "{}",
                          "method": m, "family": "baseline", "selected": True, "stage": "test", "metric": metric,
                          "value": v + 0.001 * s, "seed": s} for m, v in (("a", 0.5), ("b", 0.7), ("c", 0.9))
                         for s in range(3)])
    plots.metric_bars(tidy, metric, Path("unused"))
    assert drawn[0][-1] == top and len(drawn[0]) == 3
