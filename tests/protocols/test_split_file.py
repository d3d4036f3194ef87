"""The persisted split as a file format, and the leakage checks on hand-made splits: each verification fed the
damage it exists to catch, each check fed the leak it exists to find (and a clean split it must pass)."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from metarec.errors import ConfigError, DataError
from metarec.protocols import Split, get_protocol
from metarec.protocols.leakage import (LeakageError, check_cold_users, check_latest_is_test,
                                       check_no_test_pair_in_train, check_time_order)
from tests.toys import toy_dataset


def frames(train, valid, test, **extra) -> dict[str, pd.DataFrame]:
    """(user, item[, timestamp]) tuples per stage -> frames."""
    def df(rows):
        cols = ["user", "item", "timestamp"][:len(rows[0])] if rows else ["user", "item"]
        return pd.DataFrame(rows, columns=cols)
    out = {"train": df(train), "valid": df(valid), "test": df(test)}
    out.update({k: df(v) for k, v in extra.items()})
    return out


def split(fr, protocol="general", **kw) -> Split:
    return Split("toy", protocol, {}, 0, 4, 6, fr, **kw)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    s = get_protocol("general")(toy_dataset(n_users=12, n_items=15, per_user=8), seed=0)
    s.item_features = pd.DataFrame({"genres": [["a", "b"] if i % 2 else "c" for i in range(s.n_items)]})
    return s, s.save(tmp_path_factory.mktemp("s") / "split")


# ---- the file -------------------------------------------------------------------------------------------------------
def test_manifest_records_what_the_split_is(saved):
    s, folder = saved
    m = json.loads((folder / "manifest.json").read_text())
    assert (m["dataset"], m["protocol"], m["seed"], m["n_users"], m["n_items"]) == ("toy", "general", 0, 12, 15)
    assert m["params"] == s.params and m["fingerprint"] == s.fingerprint and m["meta"]["checks"]
    assert m["frames"] == {name: len(df) for name, df in s.frames.items()}
    assert sorted(m["files"]) == ["item_features.parquet", "test.parquet", "train.parquet", "valid.parquet"]
    assert sorted(p.name for p in folder.parent.iterdir()) == ["split"]   # no temporary left beside it


def test_list_valued_side_information_is_stored_joined(saved):
    _, folder = saved
    back = Split.load(folder)
    assert back.item_features.genres.tolist()[:3] == ["c", "a|b", "c"]
    assert back.user_features is None


def test_saving_over_an_existing_split_replaces_it_whole(saved, tmp_path):
    s, _ = saved
    folder = s.save(tmp_path / "x")
    (folder / "stray.txt").write_text("from before")
    other = get_protocol("general")(toy_dataset(n_users=12, n_items=15, per_user=8), seed=1)
    other.save(folder)
    assert not (folder / "stray.txt").exists() and Split.load(folder).fingerprint == other.fingerprint
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x"]             # the old copy is gone too


@pytest.mark.parametrize("damage, message", [
    (lambda f: (f / "manifest.json").unlink(), r"split: not a split folder \(no manifest.json\)"),
    (lambda f: (f / "manifest.json").write_text('{"dataset": "toy",\n  "seed": }'),
     r"manifest.json:2: garbled manifest"),
    (lambda f: _edit_manifest(f, lambda m: m.pop("n_items")), r"manifest.json: manifest lacks key 'n_items'"),
    (lambda f: _edit_manifest(f, lambda m: m.pop("frames")), r"manifest lacks key 'frames'"),
    (lambda f: (f / "test.parquet").write_bytes(b"PAR1 garbage"), r"test.parquet: sha256 differs"),
    (lambda f: _edit_manifest(f, lambda m: m["files"].pop("test.parquet") and None) or
     (f / "test.parquet").write_bytes(b"PAR1 garbage"), r"test.parquet: unreadable Parquet file \(\w+: "),
    (lambda f: _edit_manifest(f, lambda m: m.update(frames={**m["frames"], "extra": 3})),
     r"extra.parquet: split file missing"),
    (lambda f: _edit_manifest(f, lambda m: m.update(fingerprint="0" * 64)), r"does not match the manifest fingerprint"),
])
def test_a_damaged_split_is_one_error_naming_the_file(saved, tmp_path, damage, message):
    s, _ = saved
    folder = s.save(tmp_path / "split")
    damage(folder)
    with pytest.raises(DataError, match=message):
        Split.load(folder)


def _edit_manifest(folder, edit):
    m = json.loads((folder / "manifest.json").read_text())
    edit(m)
    (folder / "manifest.json").write_text(json.dumps(m))


def test_load_without_verification_reads_what_is_there(saved, tmp_path):
    s, _ = saved
    folder = s.save(tmp_path / "split")
    _edit_manifest(folder, lambda m: m.update(fingerprint="0" * 64))
    t = s.test.copy()
    t.loc[0, "item"] = (t.loc[0, "item"] + 1) % s.n_items
    t.to_parquet(folder / "test.parquet", index=False)
    back = Split.load(folder, verify=False)
    assert back.test.item.iloc[0] == t.item.iloc[0] and back.fingerprint != s.fingerprint


def test_fingerprint_covers_every_frame_the_sizes_and_the_column_names():
    base = split(frames([(0, 1), (1, 2)], [(0, 2)], [(0, 3)]))
    fp = base.fingerprint
    assert len(fp) == 64 and fp == split(frames([(0, 1), (1, 2)], [(0, 2)], [(0, 3)])).fingerprint
    assert split(frames([(0, 1), (1, 2)], [(0, 2)], [(0, 4)])).fingerprint != fp          # a test item
    assert split(frames([(0, 1), (1, 2)], [(0, 2)], [(0, 3)], test_support=[(0, 5)])).fingerprint != fp
    assert Split("toy", "general", {}, 0, 5, 6, base.frames).fingerprint != fp              # n_users
    assert Split("toy", "general", {}, 0, 4, 7, base.frames).fingerprint != fp              # n_items
    renamed = {k: v.rename(columns={"item": "obj"}) if k == "valid" else v for k, v in base.frames.items()}
    assert Split("toy", "general", {}, 0, 4, 6, renamed).fingerprint != fp
    as_int32 = {k: v.astype(np.int32) for k, v in base.frames.items()}
    assert Split("toy", "general", {}, 0, 4, 6, as_int32).fingerprint != fp                 # dtype is content
    with_text = {**base.frames, "train": base.train.assign(tag=["a", "b"])}
    other_text = {**base.frames, "train": base.train.assign(tag=["a", "c"])}
    assert split(with_text).fingerprint != split(other_text).fingerprint                   # object columns too


def test_known_users_support_and_describe():
    fr = frames([(0, 0), (0, 1), (1, 2)], [(0, 2), (1, 3)], [(0, 4), (2, 5)], test_support=[(2, 1)])
    s = split(fr)
    assert sorted(map(tuple, s.known("valid").to_numpy())) == [(0, 0), (0, 1), (1, 2)]
    assert sorted(map(tuple, s.known("test").to_numpy())) == [(0, 0), (0, 1), (0, 2), (1, 2), (1, 3), (2, 1)]
    assert s.support("test") is fr["test_support"] and s.support("valid") is None
    imp = split(fr, protocol="impressions")       # impressions: valid candidates are not known at test time
    assert sorted(map(tuple, imp.known("test").to_numpy())) == [(0, 0), (0, 1), (1, 2), (2, 1)]
    with pytest.raises(ValueError, match="stage must be one of"):
        s.known("train")
    assert s.users("test").tolist() == [0, 2] and s.users("valid").tolist() == [0, 1]
    d = s.describe()
    assert (d["users"], d["items"], d["fingerprint"]) == (4, 6, s.fingerprint[:16])
    assert (d["train_rows"], d["train_users"], d["test_support_rows"], d["test_support_users"]) == (3, 2, 1, 1)
    assert split(frames([(0, 1)], [], [(0, 2)])).describe()["valid_users"] == 0


# ---- leakage checks -------------------------------------------------------------------------------------------------
def test_pair_check_names_the_stage_and_counts_repeats():
    clean = split(frames([(0, 1), (1, 2)], [(0, 2)], [(1, 1)]))
    assert check_no_test_pair_in_train(clean) == "valid: no pair in train; test: no pair in train"
    leak_valid = split(frames([(0, 1), (1, 2)], [(0, 1)], [(1, 1)]))
    with pytest.raises(LeakageError, match=r"toy/general: 1 valid \(user, item\) pairs also in train"):
        check_no_test_pair_in_train(leak_valid)
    repeats = split(frames([(0, 1), (1, 2)], [(0, 1)], [(1, 2), (1, 1)]))
    assert check_no_test_pair_in_train(repeats, allow_repeats=True) == "valid: 1 repeat pairs; test: 1 repeat pairs"
    # (user 1, item 0) and (user 0, item 1) are different pairs, however they are packed
    assert check_no_test_pair_in_train(split(frames([(0, 1)], [(1, 0)], [(1, 0)]))).endswith("no pair in train")
    shown_again = split(frames([(0, 1)], [(0, 1)], [(0, 1)]), protocol="impressions")
    assert check_no_test_pair_in_train(shown_again) == "impressions: n/a"


def test_cold_user_check():
    ok = split(frames([(0, 1)], [(1, 1)], [(2, 1)], valid_support=[(1, 2)], test_support=[(2, 3)]))
    assert check_cold_users(ok) == "cold users disjoint from meta-train and from each other"
    for bad, msg in [
        (frames([(0, 1)], [(0, 2)], [(2, 1)]), "1 valid users also in meta-train"),
        (frames([(0, 1)], [(1, 1)], [(2, 1)], test_support=[(0, 3)]), "1 test users also in meta-train"),
        (frames([(0, 1)], [(1, 1)], [(1, 2)]), "valid and test users overlap"),
        (frames([(0, 1)], [(1, 1)], [(2, 1)], valid_support=[(2, 4)]), "valid and test users overlap"),
    ]:
        with pytest.raises(LeakageError, match=f"toy/cold_start: {msg}"):
            check_cold_users(split(bad))


def test_latest_is_test_check():
    full = pd.DataFrame({"user": [0, 0, 0, 1, 1, 1], "item": [1, 2, 3, 1, 2, 3], "_pos": [0, 1, 2, 0, 1, 2]})
    good = {"train": full[full._pos == 0], "valid": full[full._pos == 1], "test": full[full._pos == 2]}
    assert check_latest_is_test(split(good), full) == "test item = each user's latest, valid = second latest"
    swapped = {**good, "valid": good["test"], "test": good["valid"]}
    with pytest.raises(LeakageError, match="a test item is not the user's latest"):
        check_latest_is_test(split(swapped), full)
    early_valid = {**good, "valid": full[full._pos == 0]}
    with pytest.raises(LeakageError, match="a valid item is not the user's second latest"):
        check_latest_is_test(split(early_valid), full)
    with pytest.raises(LeakageError, match="needs positions"):
        check_latest_is_test(split({k: v.drop(columns="_pos") for k, v in good.items()}), full)


def test_time_order_check():
    ok = split(frames([(0, 1, 10), (1, 2, 20)], [(0, 2, 20)], [(1, 1, 30)]), protocol="temporal")
    assert check_time_order(ok) == "valid/test events not earlier than train events"
    no_valid = split(frames([(0, 1, 10)], [], [(1, 1, 10)]), protocol="temporal")   # equal times may sit either side
    assert check_time_order(no_valid) == "valid/test events not earlier than train events"
    for fr in (frames([(0, 1, 10), (1, 2, 20)], [(0, 2, 19)], [(1, 1, 30)]),
               frames([(0, 1, 10)], [(0, 2, 20)], [(1, 1, 19)]),
               frames([(0, 1, 10)], [], [(1, 1, 9)])):
        with pytest.raises(LeakageError, match="toy/temporal: a valid/test event is earlier than a train event"):
            check_time_order(split(fr, protocol="temporal"))
    assert check_time_order(split(frames([(0, 1)], [(0, 2)], [(1, 1)]))) == "no timestamps"


def test_time_order_check_on_impressions_reads_the_impression_log():
    def imp(rows):
        return pd.DataFrame(rows, columns=["impression", "user", "item", "label", "timestamp"])
    log = imp([(0, 0, 1, 1, 10), (1, 1, 2, 0, 20)])
    fr = {"train": log[log.label == 1][["user", "item"]], "train_impressions": log,
          "valid": imp([(2, 0, 3, 1, 20)]), "test": imp([(3, 1, 1, 1, 30)])}
    assert check_time_order(split(fr, protocol="impressions")).startswith("valid/test events not earlier")
    early = {**fr, "test": imp([(3, 1, 1, 1, 15)])}       # after every click but before a train impression
    with pytest.raises(LeakageError, match="earlier than a train event"):
        check_time_order(split(early, protocol="impressions"))
    for stage in ("valid", "test"):
        shared = {**fr, stage: imp([(1, 1, 1, 1, 30)])}   # impression 1 is in train
        with pytest.raises(LeakageError, match="toy/impressions: an impression id is in two stages"):
            check_time_order(split(shared, protocol="impressions"))


def test_describe_in_full():
    s = split(frames([(0, 0), (0, 1), (1, 2)], [(0, 2)], [(0, 4), (2, 5)]))
    assert s.describe() == {"dataset": "toy", "protocol": "general", "params": {}, "seed": 0, "users": 4, "items": 6,
                            "fingerprint": s.fingerprint[:16], "train_rows": 3, "train_users": 2, "valid_rows": 1,
                            "valid_users": 1, "test_rows": 2, "test_users": 2}


def test_the_fingerprint_of_fixed_content_never_changes():
    """Stored splits and run keys carry it: a change to the function would orphan every stored result, so its
    value on fixed content is pinned (int64 ids, an object column, two frames)."""
    from metarec.protocols.split import content_fingerprint

    frames_ = {"train": pd.DataFrame({"user": [0, 1], "item": [2, 0], "tag": ["a", "b"]}),
               "test": pd.DataFrame({"user": [1], "item": [1]})}
    assert content_fingerprint(2, 3, frames_) == "91215b3863cab4cdd8adac0ad705a42977641937eed9114aa4293590e8c0dd99"


def test_a_saved_split_reads_back_whole(saved, tmp_path):
    from pathlib import Path

    s, _ = saved
    s = Split(s.dataset, s.protocol, {"ratios": [0.8, 0.1, 0.1]}, 7, s.n_users, s.n_items, s.frames,
              item_features=s.item_features, user_features=pd.DataFrame({"age": np.arange(s.n_users)}),
              meta={"source": Path("/data/x"), "checks": ["ok"]})
    folder = s.save(tmp_path / "whole")
    back = Split.load(folder)
    assert (back.params, back.seed, back.meta) == ({"ratios": [0.8, 0.1, 0.1]}, 7, {"source": "/data/x",
                                                                                   "checks": ["ok"]})
    assert back.user_features.age.tolist() == list(range(s.n_users))
    text = (folder / "manifest.json").read_text()
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"   # readable, deterministic bytes
    m = json.loads(text)
    del m["meta"]
    (folder / "manifest.json").write_text(json.dumps(m))
    back = Split.load(folder)
    assert back.meta == {}


def test_a_failed_save_leaves_nothing_behind(saved, tmp_path, monkeypatch):
    import metarec.protocols.split as S

    s, _ = saved
    monkeypatch.setattr(S, "_write_parquet", lambda df, path: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        s.save(tmp_path / "x")
    assert list(tmp_path.iterdir()) == []


def test_verification_messages_in_full(saved, tmp_path):
    s, _ = saved
    folder = s.save(tmp_path / "v")
    (folder / "valid.parquet").write_bytes(b"x")
    with pytest.raises(DataError) as e:
        Split.load(folder)
    assert str(e.value) == (f"{folder / 'valid.parquet'}: sha256 differs from manifest.json: the file changed after "
                            "the split was written")
    folder = s.save(tmp_path / "w")
    _edit_manifest(folder, lambda m: m.update(fingerprint="0" * 64))
    with pytest.raises(DataError) as e:
        Split.load(folder)
    assert str(e.value) == (f"{folder / 'manifest.json'}: content does not match the manifest fingerprint (files "
                            "changed after saving?)")


def test_known_is_a_fresh_frame():
    s = split(frames([(0, 0), (0, 1)], [(0, 2)], [(0, 3)]))
    assert list(s.known("test").index) == [0, 1, 2]


def test_leakage_messages_in_full_and_impressions_without_ids():
    full = pd.DataFrame({"user": [0, 0], "item": [1, 2], "_pos": [0, 1]})
    bare = {"train": full.iloc[:1].drop(columns="_pos"), "valid": full.iloc[:0].drop(columns="_pos"),
            "test": full.iloc[1:].drop(columns="_pos")}
    with pytest.raises(LeakageError, match=r"^sequential check needs positions$"):
        check_latest_is_test(split(bare), full)
    no_ids = {"train": pd.DataFrame({"user": [0], "item": [1], "timestamp": [1]}),
              "valid": pd.DataFrame({"impression": [4], "user": [0], "item": [2], "timestamp": [2]}),
              "test": pd.DataFrame({"impression": [5], "user": [0], "item": [3], "timestamp": [3]})}
    assert check_time_order(split(no_ids, protocol="impressions")).startswith("valid/test events")


def _given_dataset(parts):
    import numpy as np

    from metarec.data.schema import Dataset

    given = {k: pd.DataFrame(v, columns=["user", "item"]) for k, v in parts.items()}
    return Dataset(name="own", interactions=pd.concat(given.values(), ignore_index=True),
                   user_ids=np.array(["a", "b", "c"]), item_ids=np.array(["x", "y", "z", "w"]), given=given)


def test_given_keeps_the_datasets_own_files():
    ds = _given_dataset({"train": [(0, 0), (1, 1), (2, 2)], "valid": [(0, 1)], "test": [(1, 2), (2, 3)]})
    s = get_protocol("given")(ds, seed=5)
    for name in ("train", "valid", "test"):
        pd.testing.assert_frame_equal(s.frames[name], ds.given[name])
    assert (s.protocol, s.seed, s.params) == ("given", 0, {"allow_repeats": False})   # the seed plays no part
    no_valid = _given_dataset({"train": [(0, 0)], "test": [(1, 2)]})
    s = get_protocol("given")(no_valid)
    assert len(s.valid) == 0 and list(s.valid.columns) == ["user", "item"] and set(s.frames) == {"train", "valid",
                                                                                                  "test"}


def test_given_checks_its_files():
    for parts in ({"train": [(0, 0)]}, {"test": [(0, 0)]}, {"train": [(0, 0)], "valid": [(0, 1)]}):
        with pytest.raises(ConfigError, match=r"^protocol 'given': dataset 'own' ships no train/test split of its "
                                              r"own$"):
            get_protocol("given")(_given_dataset(parts))
    repeat = _given_dataset({"train": [(0, 0), (1, 1)], "test": [(0, 0)]})
    with pytest.raises(LeakageError, match=r"own/given: 1 test \(user, item\) pairs also in train"):
        get_protocol("given")(repeat)
    s = get_protocol("given")(repeat, allow_repeats=True)
    assert s.params == {"allow_repeats": True} and s.meta["checks"] == ["valid: no pair in train; test: 1 repeat pairs"]


def test_an_unreadable_parquet_file_is_named_with_the_readers_first_line():
    from metarec.protocols.split import _read_parquet

    import tempfile
    from pathlib import Path
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "x.parquet"
        path.write_bytes(b"not parquet at all")
        try:
            pd.read_parquet(path, engine="pyarrow")
        except Exception as e:       # the reader's own words: the message keeps its type and first 120 characters
            first = str(e).splitlines()[0]
            expected = f"{path}: unreadable Parquet file ({type(e).__name__}: {first[:120]})"
        assert len(first) > 120      # so the cut is exercised
        with pytest.raises(DataError) as e:
            _read_parquet(path)
        assert str(e.value) == expected


def test_list_valued_side_information_is_stored_joined():
    from metarec.protocols.split import _parquet_safe

    df = pd.DataFrame({"genres": [["a", "b"], ("c",), np.array([1, 2]), "solo", None], "year": [1, 2, 3, 4, 5],
                       "title": ["x", "y", "z", "w", "v"]})
    out = _parquet_safe(df)
    assert out["genres"].tolist() == ["a|b", "c", "1|2", "solo", None]
    assert out["year"].tolist() == [1, 2, 3, 4, 5] and out["title"].tolist() == ["x", "y", "z", "w", "v"]
    assert df["genres"][0] == ["a", "b"]         # the caller's frame is left alone


# ---- capabilities: what the data offers, one fact each ------------------------------------------------------------
def test_capabilities_say_what_the_data_offers_and_nothing_more():
    base = frames([(0, 1), (1, 2)], [(0, 3)], [(1, 4)])
    assert split(base).capabilities == {"ranking"}
    timed = frames([(0, 1, 5), (1, 2, 6)], [(0, 3, 7)], [(1, 4, 8)])
    assert split(timed).capabilities == {"ranking", "timestamps"}
    rated = {k: f.assign(rating=[4.0] * len(f)) for k, f in base.items()}
    assert "ratings" in split(rated).capabilities
    unrated = {k: f.assign(rating=[np.nan] * len(f)) for k, f in base.items()}
    assert "ratings" not in split(unrated).capabilities             # a rating column without a value
    assert "support" in split(frames([(0, 1)], [(0, 3)], [(1, 4)], test_support=[(1, 5)])).capabilities
    imp = dict(base, train_impressions=base["train"].assign(impression=0, label=1))
    assert split(imp, protocol="impressions").capabilities == {"impressions"}
    assert "user_features" in split(base, user_features=pd.DataFrame({"age": [1, 2, 3, 4]})).capabilities
    assert "user_features" not in split(base, user_features=pd.DataFrame(index=range(4))).capabilities
    items = {"text": ["", " ", "a pen", "", "", ""], "category": ["x", "y", "", "x", "", ""],
             "brand": ["b"] * 6, "domain": ["d"] * 6}
    caps = split(base, item_features=pd.DataFrame(items)).capabilities
    assert caps == {"ranking", "item_text", "item_label:category", "domains"}   # one brand is no label
    blank = split(base, item_features=pd.DataFrame({"text": ["", " "] * 3, "category": [["x", "y"]] * 6}))
    assert blank.capabilities == {"ranking"}                        # blank texts; category lists are not labels
