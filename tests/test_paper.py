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
