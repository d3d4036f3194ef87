"""`make paper` regenerates every table and figure from the committed results/ alone (no training)."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from metarec.report.paper import regenerate

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_paper_regenerates_committed_results(tmp_path):
    results = REPO / "results"
    if not list(results.glob("*/meta.json")):
        pytest.skip("no committed results/ yet")
    shutil.copytree(results, tmp_path / "results")
    shutil.copytree(REPO / "paper", tmp_path / "paper", ignore=shutil.ignore_patterns("generated.tex", "*.pdf"))
    for folder in (tmp_path / "results").glob("*/figures"):
        shutil.rmtree(folder)
    for folder in (tmp_path / "results").glob("*/tables"):
        shutil.rmtree(folder)
    import os

    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        # every folder's numbers (figure files cost ~0.5 s each: written for one folder below, not for all)
        assert regenerate(Path("results"), Path("paper"), build_pdf=False, figures=False) == 0
        for name in ("tradeoff",):   # bars, scatters and a summary's figure (accuracy vs diversity)
            from metarec.report import build

            built = build(Path("results") / name)
            assert any(isinstance(f, list) and f for f in built["figures"].values()), name
            assert list((tmp_path / "results" / name / "figures").glob("*.png")), name
    finally:
        os.chdir(cwd)
    assert list((tmp_path / "results" / "tradeoff" / "figures").glob("accuracy_diversity_*.pdf"))
    for folder in (tmp_path / "results").glob("*/meta.json"):
        name = folder.parent.name
        assert (folder.parent / "tables" / "results.md").is_file()
        # the regenerated Markdown table equals the committed one: the results folder alone determines it
        assert (folder.parent / "tables" / "results.md").read_text() == \
            (results / name / "tables" / "results.md").read_text()
    generated = (tmp_path / "paper" / "generated.tex").read_text()
    assert "\\input{../results/" in generated


# ---- numbers in the prose come from macros generated with the tables ------------------------------------------
def _quoted_folders():
    import json

    from metarec.report.paper import MIN_SEEDS

    return [p.parent for p in sorted((REPO / "results").glob("*/meta.json"))
            if len(json.loads(p.read_text()).get("seeds") or []) >= MIN_SEEDS]


def test_every_number_the_paper_quotes_is_generated_from_the_committed_results(tmp_path):
    """paper.tex quotes results only through \\res{key}; every key it uses is one the generator writes from the
    committed leaderboards of the grids that enter the paper (five seeds or more)."""
    from metarec.report import macros

    keys = macros.write(_quoted_folders(), tmp_path / "macros.tex")
    tex = (REPO / "paper" / "paper.tex").read_text()
    assert macros.used(tex), "the paper quotes no result at all"
    assert macros.missing_keys(tex, keys) == []
    written = (tmp_path / "macros.tex").read_text()
    for key in macros.used(tex):
        assert f"\\@namedef{{mr@{key}}}{{{keys[key]}}}" in written


def test_no_quoted_value_that_carries_its_own_relation_follows_an_equals_sign(tmp_path):
    """A p-value below 0.001 is written "<0.001" (macros._fmt): after "p =" it would print "p = <0.001"."""
    import re

    from metarec.report import macros

    keys = macros.write(_quoted_folders(), tmp_path / "macros.tex")
    tex = (REPO / "paper" / "paper.tex").read_text()
    relations = [k for k in re.findall(r"=\s*\\res\{([^}]*)\}", tex) if keys.get(k, "").startswith("\\ensuremath{<")]
    assert relations == []
    assert re.findall(r"=\s*\\res\{([^}]*)\}", "$p$ = \\res{a/b}") == ["a/b"]   # the pattern finds one


def test_a_quoted_result_the_generator_no_longer_writes_fails_the_paper(tmp_path, capsys):
    """A key the results do not give (a renamed method, a grid not rerun) stops `metarec paper` with exit 1 naming
    it; comments and escaped percent signs are not quotes."""
    from metarec.report import macros

    tex = ("\\res{meta/ml-100k/cold_start/k_shot=5/meta:maml/ndcg@10} and 95\\,\\% \\res{meta/x/ndcg@10}\n"
           "% \\res{meta/commented/out}\n")
    assert macros.used(tex) == ["meta/ml-100k/cold_start/k_shot=5/meta:maml/ndcg@10", "meta/x/ndcg@10"]
    keys = {"meta/ml-100k/cold_start/k_shot=5/meta:maml/ndcg@10": "0.0686"}
    assert macros.missing_keys(tex, keys) == ["meta/x/ndcg@10"]

    results = tmp_path / "results"
    shutil.copytree(REPO / "results" / "meta", results / "meta")
    (tmp_path / "paper").mkdir()
    (tmp_path / "paper" / "paper.tex").write_text(tex)
    from metarec.report.paper import regenerate

    assert regenerate(results, tmp_path / "paper", build_pdf=False, figures=False) == 1
    out = capsys.readouterr().out
    assert "1 quoted result(s) the results no longer give" in out and "meta/x/ndcg@10" in out
    defined = (tmp_path / "paper" / "macros.tex").read_text()
    assert "\\@namedef{mr@meta/ml-100k/cold_start/k_shot=5/meta:maml/ndcg@10}{" in defined


def test_grids_with_fewer_than_five_seeds_stay_out_of_the_paper(tmp_path):
    """The smoke grid (one seed) and other short grids are rebuilt but neither \\input nor quoted."""
    import json

    from metarec.report.paper import regenerate

    results = tmp_path / "results"
    shutil.copytree(REPO / "results" / "meta", results / "meta")
    shutil.copytree(REPO / "results" / "meta", results / "short")
    meta = json.loads((results / "short" / "meta.json").read_text())
    (results / "short" / "meta.json").write_text(json.dumps({**meta, "grid": "short", "seeds": [0]}))
    (tmp_path / "paper").mkdir()
    (tmp_path / "paper" / "paper.tex").write_text("\\res{meta/ml-100k/cold_start/k_shot=5/pop/ndcg@10}")
    assert regenerate(results, tmp_path / "paper", build_pdf=False, figures=False) == 0
    generated = (tmp_path / "paper" / "generated.tex").read_text()
    assert "results/meta/tables" in generated and "results/short/tables" not in generated
    assert "% short: left out (1 evaluation seed(s); the paper needs 5)" in generated
    assert "mr@short/" not in (tmp_path / "paper" / "macros.tex").read_text()


def test_macros_quote_the_leaderboard_and_the_comparison_with_the_reference():
    """Leaderboard cells and, for a grid with a reference method, each method's Δ against it (vs_reference)."""
    import pandas as pd

    from metarec.report import macros

    folder = REPO / "results" / "multitask"
    if not (folder / "tables" / "vs_reference.csv").is_file():
        pytest.skip("results/multitask has no vs_reference table")
    keys = macros.values(folder)
    tests = pd.read_csv(folder / "tables" / "vs_reference.csv")
    row = tests[(tests.method == "mtl:mmoe") & (tests.metric == "ndcg@10")].iloc[0]
    assert keys["multitask/ml-100k/general/mtl:mmoe/vs_reference/ndcg@10/delta"] == f"\\ensuremath{{{row.delta:+.4f}}}"
    assert keys["multitask/ml-100k/general/mtl:mmoe/vs_reference/ndcg@10/delta_ci_low"] == \
        f"\\ensuremath{{{row.ci_low:+.4f}}}"
    board = pd.read_csv(REPO / "results" / "meta" / "tables" / "leaderboard.csv")
    first = board.iloc[0]
    assert macros.values(REPO / "results" / "meta")[
        f"meta/{first.dataset}/{first.protocol}/k_shot=1/{first.method}/ndcg@10"] == f"{first['ndcg@10']:.4f}"


def test_a_composition_carries_its_members_tables_once(tmp_path):
    """With results/paper/ (the paper grid's composition) present, its leaderboard comes first and a member grid
    contributes its figures only: the same rows are not input twice. Their numbers stay quotable."""
    import dataclasses
    import json

    from metarec.bench.compose import Composite, compose_results
    from metarec.bench.grid import load_grid
    from metarec.report.paper import regenerate

    results = tmp_path / "results"
    shutil.copytree(REPO / "results" / "meta", results / "meta")
    meta = load_grid(REPO / "benchmarks" / "meta.yaml")
    compose_results(Composite(name="paper", path=None, members=[meta]), results, results / "paper")
    assert json.loads((results / "paper" / "meta.json").read_text())["members"] == ["meta"]
    (tmp_path / "paper").mkdir()
    (tmp_path / "paper" / "paper.tex").write_text("\\res{paper/ml-100k/cold_start/k_shot=5/meta:maml/ndcg@10} "
                                                  "\\res{meta/ml-100k/cold_start/k_shot=5/meta:maml/ndcg@10}")
    assert regenerate(results, tmp_path / "paper", build_pdf=False, figures=False) == 0
    generated = (tmp_path / "paper" / "generated.tex").read_text()
    assert generated.index("Grid \\texttt{paper}") < generated.index("Grid \\texttt{meta}")
    assert "results/paper/tables/leaderboard.tex" in generated
    assert "results/meta/tables/" not in generated and "% meta: its tables are in the composition" in generated


def test_p_values_below_one_in_a_thousand_are_typeset_in_math_mode():
    from metarec.report import macros

    assert macros._fmt("seed_p_holm", 0.0123) == "0.012"
    assert macros._fmt("seed_p_holm", 5.2e-06) == "\\ensuremath{<}0.001"   # a bare < prints as an inverted !


def test_a_figure_is_included_at_its_drawn_width_never_stretched_past_it(tmp_path):
    """A figure narrower than the text is included at its own width (its text at the size it was drawn for);
    a wider one at the line; a PDF without a MediaBox (not matplotlib's) at the line."""
    from metarec.report.paper import included_width
    from metarec.report.plots import TEXT_WIDTH_IN, plt

    for inches, expected in ((TEXT_WIDTH_IN / 2, "0.50\\linewidth"), (2 * TEXT_WIDTH_IN, "1.00\\linewidth")):
        fig = plt.figure(figsize=(inches, 2))   # saved without bbox_inches: the MediaBox is the drawn size
        fig.savefig(tmp_path / "f.pdf")
        plt.close(fig)
        assert included_width(tmp_path / "f.pdf") == expected
    (tmp_path / "g.pdf").write_bytes(b"%PDF-1.4\n% no page box\n")
    assert included_width(tmp_path / "g.pdf") == "\\linewidth"


def test_every_file_of_a_figure_becomes_a_float_of_its_own(tmp_path):
    """A summary's figure per dataset x protocol and a figure continued over pages are each included, in order,
    captioned by file; the PNG twins are not."""
    from metarec.report.paper import figure_floats

    files = []
    for stem in ("bars_ndcg10", "bars_ndcg10_p2", "text_frontier_amazon-office_sequential"):
        for ext in ("png", "pdf"):
            (tmp_path / f"{stem}.{ext}").write_bytes(b"%PDF-1.4\n/MediaBox [0 0 241.2 100]\n")
            files.append(tmp_path / f"{stem}.{ext}")
    tex = "\n".join(figure_floats("g", files))
    assert tex.count("\\begin{figure}") == 3 and ".png" not in tex
    assert tex.index("bars_ndcg10.pdf") < tex.index("bars_ndcg10_p2.pdf") < tex.index("amazon-office_sequential.pdf")
    assert "\\caption{g: bars ndcg10 (continued, part 2).}" in tex
    assert "\\caption{g: text frontier amazon-office sequential.}" in tex
    assert "width=0.50\\linewidth" in tex   # 241.2 pt: half the text width


def test_a_grid_whose_every_number_another_grid_shows_stays_out_of_the_paper(tmp_path):
    """contained_in: left out only where another folder has every cell with the same per-seed values, on the same
    seeds, with the same reference and summaries; each difference keeps it in."""
    import pandas as pd

    from metarec.report.paper import contained_in

    def folder(name, rows, **meta):
        f = tmp_path / name
        f.mkdir()
        pd.DataFrame(rows, columns=["dataset", "protocol", "protocol_params", "method", "metric", "seed", "value",
                                    "stage", "selected"]).to_parquet(f / "results.parquet")
        return f, {"seeds": [0, 1], "reference": None, "summaries": [], **meta}

    def cell(method, value, seed=0, metric="ndcg@10"):
        return ("ml-100k", "general", "{}", method, metric, seed, value, "test", True)

    small = [cell("mf-bpr", 0.3), cell("mf-bpr", 0.31, seed=1)]
    big = small + [cell("pop", 0.1), cell("pop", 0.11, seed=1)]
    cases = {"a_big": folder("a_big", big), "small": folder("small", small),
             "other_value": folder("other_value", [cell("mf-bpr", 0.3), cell("mf-bpr", 0.32, seed=1)]),
             "other_seeds": folder("other_seeds", small, seeds=[0, 1, 2]),
             "own_reference": folder("own_reference", small, reference="pop"),
             "own_summary": folder("own_summary", small, summaries=["leaderboard"]),
             "z_equal": folder("z_equal", big)}
    metas = {f: meta for f, meta in cases.values()}
    folders = sorted(metas)
    left_out = {f.name: (home.name if home else None) for f in folders for home in [contained_in(f, folders, metas)]}
    assert left_out == {"a_big": None, "small": "a_big", "other_value": None, "other_seeds": None,
                        "own_reference": None, "own_summary": None, "z_equal": "a_big"}
    # a train-stage or unselected row is no table cell: it neither keeps a folder in nor counts as shown
    extra = [("ml-100k", "general", "{}", "mf-bpr", "ndcg@10", 0, 0.9, "valid", True),
             ("ml-100k", "general", "{}", "mf-bpr", "ndcg@10", 0, 0.5, "test", False)]
    f, meta = folder("with_valid", small + extra)
    assert contained_in(f, folders + [f], {**metas, f: meta}).name == "a_big"


def test_macros_quote_the_text_frontier_and_the_distillation_goals(tmp_path):
    """The text_frontier summary's goals and seed-level tests, and each distilled student's goals, as macros: the
    summaries write them (run here on the synthetic grids of their own tests), the macros read the same files."""
    import json

    from metarec.report import macros
    from tests.report import test_summaries as T

    folder = tmp_path / "tf"
    folder.mkdir()
    T.test_text_frontier_checks_the_student_against_the_teacher_and_the_control(folder)
    T.test_distill_goals_ratios_and_goal_counts(folder)
    keys = macros.values(folder)
    data = json.loads((folder / "tables" / "text_frontier.json").read_text())["d/sequential"]
    assert keys["tf/d/sequential/text_frontier/ndcg_pct"] == "97.0"
    assert keys["tf/d/sequential/text_frontier/params_pct"] == "60.6"
    assert keys["tf/d/sequential/text_frontier/speedup"] == "2.00"
    assert keys["tf/d/sequential/text_frontier/ndcg_pct_ci_low"] == f"{data['ndcg_pct_ci'][0]:.1f}"
    control = data["vs_control_test"]
    assert keys["tf/d/sequential/text_frontier/vs_control/delta"] == f"\\ensuremath{{{control['delta']:+.4f}}}"
    assert keys["tf/d/sequential/text_frontier/vs_control/seed_p"] == f"{control['seed_p']:.2g}"
    assert keys["tf/d/sequential/distill:text-mpnet-6/items_per_s"] == "60.0"
    assert keys["tf/d/sequential/distill:text-mpnet-6/latency_ms"] == "20.000"
    assert keys["tf/d/sequential/distill:teacher/parameters"] == "500,000"
    assert "tf/d/sequential/distill:teacher/items_per_s" not in keys            # an id-only model encodes no text
    vs_id = data["vs_id_only"]["distill:text-mpnet-6-random"]
    assert keys["tf/d/sequential/distill:text-mpnet-6-random/vs_id_only/seed_p_holm"] == \
        macros._fmt("seed_p_holm", vs_id["seed_p_holm"])
    assert keys["tf/d/sequential/distill:text-mpnet-6-random/vs_id_only/delta_ci_high"] == \
        f"\\ensuremath{{{vs_id['ci_high']:+.4f}}}"
    goals = json.loads((folder / "tables" / "distill_goals.json").read_text())["d/sequential"]["distill:kd-rd"]
    assert keys["tf/d/sequential/distill:kd-rd/distill_goals/speedup"] == f"{goals['speedup']:.1f}" == "4.5"
    assert keys["tf/d/sequential/distill:kd-rd/distill_goals/params_pct"] == "10.0"
