"""benchmarks/mind_signal.py: the per-impression AUC it reports, against scikit-learn on random impressions."""
import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from metarec.data.schema import IMPRESSION, LABEL

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "mind_signal.py"


@pytest.fixture(scope="module")
def signal():
    spec = importlib.util.spec_from_file_location("mind_signal", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_impression_auc_matches_sklearn_per_impression(signal):
    rng = np.random.default_rng(0)
    rows = []
    for imp in range(40):
        n = int(rng.integers(2, 12))
        y = rng.integers(0, 2, n)
        s = rng.integers(0, 4, n).astype(float)        # few values: ties must count one half
        rows += [(imp, int(a), float(b)) for a, b in zip(y, s)]
    frame = pd.DataFrame(rows, columns=[IMPRESSION, LABEL, "s"])
    want = [roc_auc_score(g[LABEL], g.s) for _, g in frame.groupby(IMPRESSION) if 0 < g[LABEL].sum() < len(g)]
    got, n = signal.impression_auc(frame, frame.s.to_numpy())
    assert n == len(want) and n < 40                   # one-class impressions are left out
    assert got == pytest.approx(np.mean(want), abs=1e-12)


def test_impression_auc_orders_within_impressions_only(signal):
    # impression 0 ranks its click first (AUC 1), impression 1 below its non-click (AUC 0): 0.5, where an AUC
    # pooled over both impressions would say 5/6
    frame = pd.DataFrame({IMPRESSION: [0, 0, 0, 1, 1], LABEL: [1, 0, 0, 1, 0]})
    got, n = signal.impression_auc(frame, np.array([10.0, 1.0, 2.0, 3.0, 4.0]))
    assert (got, n) == (0.5, 2)
