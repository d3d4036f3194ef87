"""Suite-wide fixtures. The run store is isolated: every test session writes splits, runs and artifacts under a
temporary $METAREC_HOME, never into ./runs (a developer's real store); tests that need a store of their own set
METAREC_HOME again with monkeypatch."""
from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def _isolated_store(tmp_path_factory):
    previous = os.environ.get("METAREC_HOME")
    os.environ["METAREC_HOME"] = str(tmp_path_factory.mktemp("metarec-home"))
    yield
    if previous is None:
        os.environ.pop("METAREC_HOME", None)
    else:
        os.environ["METAREC_HOME"] = previous
