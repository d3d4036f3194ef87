"""Suite-wide fixtures. The run store is isolated: tests write splits, runs and artifacts under a temporary
$METAREC_HOME, never into ./runs (a developer's real store) — one per test body, one shared by the wider-scoped
fixtures."""
from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, Phase, settings

# Property tests: the same examples on every run (a red CI is reproducible), no per-example deadline (two shared
# cores make timings noisy); HYPOTHESIS_PROFILE=explore searches afresh with more examples.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("explore", max_examples=500, deadline=None)
# under mutation testing (mutmut sets MUTANT_UNDER_TEST) a failing example only has to be found, not shrunk:
# shrinking a mutant's failure can take minutes per mutant
settings.register_profile("mutation", parent=settings.get_profile("ci"),
                          phases=[Phase.explicit, Phase.reuse, Phase.generate])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE",
                                     "mutation" if "MUTANT_UNDER_TEST" in os.environ else "ci"))


@pytest.fixture(scope="session", autouse=True)
def _isolated_store(tmp_path_factory):
    """Module- and session-scoped fixtures build their splits and grids under one temporary store."""
    previous = os.environ.get("METAREC_HOME")
    os.environ["METAREC_HOME"] = str(tmp_path_factory.mktemp("metarec-home"))
    yield
    if previous is None:
        os.environ.pop("METAREC_HOME", None)
    else:
        os.environ["METAREC_HOME"] = previous


@pytest.fixture(autouse=True)
def _store_per_test(tmp_path_factory, monkeypatch):
    """Each test body gets a store of its own: nothing one test writes is read by another, whatever the order."""
    monkeypatch.setenv("METAREC_HOME", str(tmp_path_factory.mktemp("store")))


# ---- toy splits shared across test files (tests/toys.py builds them; sizes small enough for a CPU test) ----------
@pytest.fixture(scope="session")
def seq_split():
    """Sequential (leave-one-out by time) split of a 24-user, 30-item toy dataset."""
    from metarec.protocols import get_protocol
    from tests.toys import toy_dataset

    return get_protocol("sequential")(toy_dataset(n_users=24, n_items=30, per_user=14), seed=0)


@pytest.fixture(scope="session")
def gen_split():
    """General (8:1:1 per user) split of the same toy dataset."""
    from metarec.protocols import get_protocol
    from tests.toys import toy_dataset

    return get_protocol("general")(toy_dataset(n_users=24, n_items=30, per_user=14), seed=0)
