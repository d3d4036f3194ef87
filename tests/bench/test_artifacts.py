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


# ---- artifacts committed with a grid's results -----------------------------------------------------------------------
def _built(store: Artifacts, kind: str, dataset: str, payload: str) -> Path:
    folder, _, _ = store.get_or_build(kind, {"dataset": dataset, "p": payload},
                                      lambda f: (f / "emb.npz").write_text(payload) and None)
    return folder


def test_a_grids_artifacts_are_committed_and_a_new_store_adopts_them_instead_of_building(tmp_path):
    """Only the kinds asked for, only the grid's datasets; copied again only when changed; a new store adopts
    them and serves them as built (its builder is never called)."""
    from metarec.bench.artifacts import adopt_committed_artifacts, export_artifacts

    old = Artifacts(tmp_path / "old")
    mine = _built(old, "text_emb", "amazon-office", "office vectors")
    _built(old, "text_emb", "ml-100k", "not this grid's dataset")
    _built(old, "teacher", "amazon-office", "not a kept kind")
    out = tmp_path / "results" / "g"
    written = export_artifacts(old, ["text_emb"], {"amazon-office"}, out)
    assert written == [out / "artifacts" / "text_emb" / mine.name]
    assert sorted(p.name for p in (out / "artifacts").rglob("*") if p.is_file()) == ["emb.npz", "meta.json"]
    assert export_artifacts(old, ["text_emb"], {"amazon-office"}, out) == []        # unchanged: not copied again

    new = Artifacts(tmp_path / "new")
    assert adopt_committed_artifacts(new, out) == 1 and adopt_committed_artifacts(new, out) == 0
    calls = []
    folder, meta, cached = new.get_or_build("text_emb", {"dataset": "amazon-office", "p": "office vectors"},
                                            lambda f: calls.append(f))
    assert cached and not calls and (folder / "emb.npz").read_text() == "office vectors"
    assert adopt_committed_artifacts(Artifacts(tmp_path / "third"), tmp_path / "nothing-committed") == 0


def test_a_damaged_or_misfiled_committed_artifact_is_one_error_naming_it(tmp_path):
    from metarec.bench.artifacts import adopt_committed_artifacts, export_artifacts
    from metarec.errors import DataError

    old = Artifacts(tmp_path / "old")
    mine = _built(old, "text_emb", "amazon-office", "office vectors")
    out = tmp_path / "results" / "g"
    export_artifacts(old, ["text_emb"], {"amazon-office"}, out)
    committed = out / "artifacts" / "text_emb" / mine.name
    (committed / "emb.npz").write_text("truncated")
    with pytest.raises(DataError, match=rf"{mine.name}: committed artifact damaged \(emb.npz changed since it was "
                                        r"built \(sha256\)\)"):
        adopt_committed_artifacts(Artifacts(tmp_path / "new"), out)
    assert not (tmp_path / "new" / "artifacts" / "text_emb" / mine.name).exists()
    (committed / "emb.npz").write_text("office vectors")
    moved = committed.with_name("0" * 24)
    committed.rename(moved)
    with pytest.raises(DataError, match=r"meta.json: committed artifact's meta.json names another identity"):
        adopt_committed_artifacts(Artifacts(tmp_path / "new"), out)


def test_shared_text_artifacts_are_clocked_once_for_nested_requests_and_teachers_not_at_all(tmp_path):
    """A run's cost leaves out ``build_seconds``' increase: item-text embeddings built inside another's build (a
    student's embeddings from the teacher's) count once, serving a built one costs next to nothing, and a teacher
    (a charged kind: a teacher row's training is its artifact) is never taken out of a run's cost."""
    from metarec.bench.artifacts import build_seconds

    store = Artifacts(tmp_path)

    def inner(folder):
        time.sleep(0.3)
        (folder / "x.txt").write_text("inner")

    def outer(folder):
        store.get_or_build("text_emb", {"a": 1}, inner)
        time.sleep(0.2)
        (folder / "x.txt").write_text("outer")

    before = build_seconds()
    store.get_or_build("text_student", {"a": 1}, outer)
    spent = build_seconds()["wall_s"] - before["wall_s"]
    assert 0.5 <= spent < 0.8                          # 0.3 + 0.2, not 0.3 + 0.5
    before = build_seconds()
    assert store.get_or_build("text_student", {"a": 1}, outer)[2]
    assert build_seconds()["wall_s"] - before["wall_s"] < 0.1
    before = build_seconds()
    store.get_or_build("teacher", {"a": 1}, inner)
    assert build_seconds() == before
