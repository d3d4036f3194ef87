"""Helpers for tests/eval (the toy splits themselves are in tests/toys.py)."""
from __future__ import annotations

import numpy as np


def recbole_numpy_aliases(monkeypatch) -> None:
    """RecBole 1.2.1's NDCG/MRR/MAP use ``np.float`` and GAUC ``np.bool``: aliases of the builtins that numpy 1.24
    removed. Restore them for the duration of a test (monkeypatch undoes it) so RecBole's own code can run."""
    import warnings

    with warnings.catch_warnings():  # numpy warns on the mere lookup of the removed names
        warnings.simplefilter("ignore", FutureWarning)
        monkeypatch.setattr(np, "float", float, raising=False)
        monkeypatch.setattr(np, "bool", bool, raising=False)
