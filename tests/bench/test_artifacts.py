"""Run-store artifacts: built once per identity, atomically, under a lock; damaged ones rebuilt."""
from __future__ import annotations

import multiprocessing as mp
import time
from pathlib import Path

import pytest

from metarec.bench.artifacts import Artifacts, artifact_key


def _build_slowly(root: str, out: str) -> None:
    def build(folder: Path) -> dict:
        with open(out, "a") as f:
            f.write("built\n")
        time.sleep(0.5)
        (folder / "x.txt").write_text("payload")
        return {"n": 1}

    Artifacts(root).get_or_build("thing", {"a": 1}, build)


def test_built_once_then_loaded(tmp_path):
    store, calls = Artifacts(tmp_path), []

    def build(folder):
        calls.append(folder)
        (folder / "x.txt").write_text("payload")
        return {"note": "hi"}

    folder, meta, cached = store.get_or_build("thing", {"a": 1, "b": [1, 2]}, build)
    assert not cached and (folder / "x.txt").read_text() == "payload" and meta["note"] == "hi"
    assert meta["identity"] == {"a": 1, "b": [1, 2]} and meta["build_s"] >= 0
    again, meta2, cached2 = store.get_or_build("thing", {"b": [1, 2], "a": 1}, build)  # key order is irrelevant
    assert cached2 and again == folder and meta2 == meta and len(calls) == 1
    other, _, cached3 = store.get_or_build("thing", {"a": 2, "b": [1, 2]}, build)
    assert not cached3 and other != folder
    assert artifact_key("thing", {"a": 1}) != artifact_key("other", {"a": 1})  # the kind is part of the key


def test_a_failed_build_leaves_nothing_and_a_damaged_artifact_is_rebuilt(tmp_path):
    store = Artifacts(tmp_path)

    def boom(folder):
        (folder / "half.txt").write_text("half")
        raise RuntimeError("killed mid-build")

    with pytest.raises(RuntimeError):
        store.get_or_build("thing", {"a": 1}, boom)
    assert not store.folder("thing", {"a": 1}).exists()
    assert not list((tmp_path / "artifacts" / "thing").glob(".tmp-*"))
    folder, _, _ = store.get_or_build("thing", {"a": 1}, lambda f: (f / "x.txt").write_text("ok") and None)
    (folder / "x.txt").write_text("garbage")
    ok = lambda f: (f / "x.txt").read_text() == "ok"  # noqa: E731
    calls = []
    folder2, _, cached = store.get_or_build("thing", {"a": 1}, lambda f: calls.append(1) or (f / "x.txt").write_text("ok") and None,
                                            valid=ok)
    assert not cached and calls == [1] and (folder2 / "x.txt").read_text() == "ok"


@pytest.mark.slow
def test_concurrent_builders_build_once(tmp_path):
    out = tmp_path / "log.txt"
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_build_slowly, args=(str(tmp_path), str(out))) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert out.read_text() == "built\n"
    assert (Artifacts(tmp_path).folder("thing", {"a": 1}) / "x.txt").read_text() == "payload"


def test_a_changed_or_unreadable_artifact_is_rebuilt_with_a_logged_reason(tmp_path, caplog):
    """Without any builder check: every file is listed with its sha256 in meta.json; a changed file, a missing one or
    a garbled meta.json makes a rebuild, and the log says which artifact and why."""
    store = Artifacts(tmp_path)
    make = lambda f: (f / "x.txt").write_text("ok") and None  # noqa: E731
    folder, meta, _ = store.get_or_build("thing", {"a": 2}, make)
    assert set(meta["files"]) == {"x.txt"}
    for damage, why in [(lambda: (folder / "x.txt").write_text("garbage"), "x.txt changed since it was built"),
                        (lambda: (folder / "x.txt").unlink(), "x.txt missing"),
                        (lambda: (folder / "meta.json").write_text("{"), "meta.json unreadable")]:
        damage()
        caplog.clear()
        with caplog.at_level("WARNING", logger="metarec"):
            again, _, cached = store.get_or_build("thing", {"a": 2}, make)
        assert not cached and (again / "x.txt").read_text() == "ok"
        assert any(why in r.getMessage() and "rebuilding it" in r.getMessage() for r in caplog.records), why
    assert store.get_or_build("thing", {"a": 2}, make)[2]     # intact now: served from the store
