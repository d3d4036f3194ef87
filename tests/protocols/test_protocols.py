"""Protocol properties: sizes, leakage checks, byte-identical reproduction, persistence round trip."""
from __future__ import annotations

import filecmp
import json

import numpy as np
import pandas as pd
import pytest

from metarec.data.schema import build_dataset
from metarec.errors import ConfigError, DataError, UnknownNameError
from metarec.protocols import PROTOCOLS, Split, get_protocol
from metarec.protocols.leakage import LeakageError, check_no_test_pair_in_train
from tests.toys import toy_dataset


@pytest.fixture(scope="module")
def ds():
    return toy_dataset()


def pairs(df):
    return set(zip(df.user, df.item))


def test_general_ratios_and_disjoint(ds):
    s = get_protocol("general")(ds, seed=3)
    assert len(s.train) + len(s.valid) + len(s.test) == len(ds.interactions)
    assert not pairs(s.train) & pairs(s.test) and not pairs(s.valid) & pairs(s.test)
    per_user = ds.interactions.groupby("user").size()
    test_per_user = s.test.groupby("user").size().reindex(per_user.index, fill_value=0)
    assert (test_per_user == np.floor(0.1 * per_user).clip(lower=1)).all()
    assert 0.75 < len(s.train) / len(ds.interactions) < 0.85


def test_sequential_test_is_latest(ds):
    s = get_protocol("sequential")(ds, seed=0)
    inter = ds.interactions
    latest = inter.sort_values("timestamp").groupby("user").tail(1).set_index("user")["item"]
    assert (s.test.set_index("user")["item"] == latest.reindex(s.test.user)).all()
    second = inter.sort_values("timestamp").groupby("user").nth(-2).set_index("user")["item"]
    assert (s.valid.set_index("user")["item"] == second.reindex(s.valid.user)).all()
    # train stays in chronological order within each user
    assert (s.train.groupby("user")["timestamp"].diff().dropna() >= 0).all()


def test_sequential_without_timestamps_uses_file_order():
    ds = toy_dataset(with_time=False)
    s = get_protocol("sequential")(ds, seed=0)
    last = ds.interactions.groupby("user").tail(1).set_index("user")["item"]
    assert (s.test.set_index("user")["item"] == last.reindex(s.test.user)).all()


def test_temporal_cut(ds):
    s = get_protocol("temporal")(ds, seed=0)
    assert s.train.timestamp.max() < s.valid.timestamp.min() <= s.valid.timestamp.max() < s.test.timestamp.min()
    assert set(s.test.user) <= set(s.train.user)


def test_temporal_needs_time():
    with pytest.raises(ConfigError, match="needs timestamps"):
        get_protocol("temporal")(toy_dataset(with_time=False), seed=0)


def test_cold_start_users_disjoint_and_k_shot(ds):
    s = get_protocol("cold_start")(ds, seed=1, k_shot=5, n_query=4)
    train_users = set(s.train.user)
    for stage in ("valid", "test"):
        sup, qry = s.support(stage), s.frames[stage]
        assert not (set(sup.user) | set(qry.user)) & train_users
        assert (sup.groupby("user").size() == 5).all() and (qry.groupby("user").size() == 4).all()
        # support precedes query in time for every user
        assert (sup.groupby("user").timestamp.max() < qry.groupby("user").timestamp.min()).all()
    assert not set(s.valid.user) & set(s.test.user)


def test_cold_start_same_queries_across_k(ds):
    a = get_protocol("cold_start")(ds, seed=1, k_shot=1, n_query=5, min_history=20)
    b = get_protocol("cold_start")(ds, seed=1, k_shot=10, n_query=5, min_history=20)
    pd.testing.assert_frame_equal(a.test, b.test)
    assert len(b.support("test")) == 10 * a.test.user.nunique()


def test_cold_start_new_items(ds):
    s = get_protocol("cold_start")(ds, seed=1, k_shot=3, n_query=3, new_items=True, new_item_ratio=0.3)
    assert not set(s.test.item) & set(s.train.item)  # queries are new items, unseen in meta-train


def test_given_requires_files(ds):
    with pytest.raises(ConfigError, match="ships no train/test split"):
        get_protocol("given")(ds, seed=0)


def test_impressions_protocol():
    rows = []
    for imp in range(50):
        for c in range(5):
            rows.append((imp, f"u{imp % 7}", f"n{(imp + c) % 30}", int(c == imp % 5), 1000 + imp // 2))
    imp = pd.DataFrame(rows, columns=["impression", "user_id", "item_id", "label", "timestamp"])
    hist = pd.DataFrame({"user_id": ["u0", "u1"], "item_id": ["n1", "n2"]})
    base = build_dataset("mind-toy", pd.concat([hist, imp[["user_id", "item_id"]]]).drop_duplicates())
    u = pd.Index(base.user_ids).get_indexer(imp.user_id)
    i = pd.Index(base.item_ids).get_indexer(imp.item_id)
    base.impressions = pd.DataFrame({"impression": imp.impression, "user": u, "item": i, "label": imp.label,
                                     "timestamp": imp.timestamp})
    base.interactions = base.interactions.iloc[:2]
    s = get_protocol("impressions")(base, seed=0)
    tr = s.frames["train_impressions"]
    assert tr.timestamp.max() < s.valid.timestamp.min() and s.valid.timestamp.max() < s.test.timestamp.min()
    assert set(s.test.columns) >= {"impression", "user", "item", "label"}
    assert len(tr) + len(s.valid) + len(s.test) == len(base.impressions)


def test_same_config_byte_identical(tmp_path, ds):
    for name, params in (("general", {}), ("sequential", {}), ("cold_start", {"k_shot": 3, "n_query": 3})):
        a = get_protocol(name)(ds, seed=7, **params).save(tmp_path / f"{name}-a")
        b = get_protocol(name)(ds, seed=7, **params).save(tmp_path / f"{name}-b")
        files = sorted(p.name for p in a.iterdir())
        assert files == sorted(p.name for p in b.iterdir())
        _, mismatch, errors = filecmp.cmpfiles(a, b, files, shallow=False)
        assert not mismatch and not errors
    c = get_protocol("general")(ds, seed=8)
    assert c.fingerprint != Split.load(tmp_path / "general-a").fingerprint


def test_round_trip_and_tamper(tmp_path, ds):
    s = get_protocol("general")(ds, seed=1)
    folder = s.save(tmp_path / "s")
    loaded = Split.load(folder)
    assert loaded.fingerprint == s.fingerprint
    for name in s.frames:
        pd.testing.assert_frame_equal(loaded.frames[name], s.frames[name].reset_index(drop=True))
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["protocol"] == "general" and manifest["seed"] == 1 and manifest["fingerprint"] == s.fingerprint
    # a changed file is detected
    t = loaded.test.copy()
    t.loc[0, "item"] = (t.loc[0, "item"] + 1) % s.n_items
    t.to_parquet(folder / "test.parquet", index=False)
    with pytest.raises(DataError, match=r"test.parquet: sha256 differs from manifest.json"):
        Split.load(folder)
    # without per-file digests (a hand-edited manifest) the content fingerprint still catches it
    manifest.pop("files")
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DataError, match="fingerprint"):
        Split.load(folder)


def test_side_information_and_missing_files_are_verified(tmp_path, ds):
    """item_features is outside the content fingerprint: its sha256 guards it; a listed file that is gone is named."""
    s = get_protocol("general")(ds, seed=1)
    s.item_features = pd.DataFrame({"genres": ["a"] * s.n_items})
    folder = s.save(tmp_path / "s")
    pd.DataFrame({"genres": ["b"] * s.n_items}).to_parquet(folder / "item_features.parquet", index=False)
    with pytest.raises(DataError, match=r"item_features.parquet: sha256 differs"):
        Split.load(folder)
    folder = s.save(tmp_path / "t")
    (folder / "valid.parquet").unlink()
    with pytest.raises(DataError, match=r"valid.parquet: split file missing \(listed in manifest.json\)"):
        Split.load(folder)


def test_leakage_check_catches_overlap(ds):
    s = get_protocol("general")(ds, seed=1)
    s.frames["test"] = pd.concat([s.test, s.train.iloc[:1]])
    with pytest.raises(LeakageError, match="pairs also in train"):
        check_no_test_pair_in_train(s)


def test_bad_protocol_inputs(ds):
    with pytest.raises(UnknownNameError, match="valid: cold_start, general"):
        get_protocol("genral")
    with pytest.raises(ConfigError, match="unknown parameter"):
        get_protocol("general")(ds, seed=0, ratio=[1, 1, 1])
    with pytest.raises(ConfigError, match="ratios must be"):
        get_protocol("general")(ds, seed=0, ratios=[0.8, 0.2])
    with pytest.raises(ConfigError, match="'k_shot' must be"):
        get_protocol("cold_start")(ds, seed=0, k_shot=0)
    # never renormalised: valid would silently outgrow its share
    with pytest.raises(ConfigError, match=r"ratios must sum to 1 .*sum 0.9"):
        get_protocol("general")(ds, seed=0, ratios=[0.5, 0.3, 0.1])
    for proto, params, msg in [("sequential", {"min_length": 2}, "'min_length' must be an integer >= 3"),
                               ("sequential", {"min_length": 3.5}, "'min_length' must be an integer"),
                               ("temporal", {"drop_cold": "yes"}, "'drop_cold' must be true or false"),
                               ("cold_start", {"new_item_ratio": 1.0}, r"'new_item_ratio' must be a number in \(0"),
                               ("cold_start", {"n_query": True}, "'n_query' must be an integer")]:
        with pytest.raises(ConfigError, match=msg):
            get_protocol(proto)(ds, seed=0, **params)
    assert set(PROTOCOLS) == {"general", "sequential", "temporal", "given", "cold_start", "impressions"}


# ---- every leakage check, fed a split that breaks it -------------------------------------------------------------
def test_cold_user_check_catches_a_meta_train_user_and_overlapping_stages(ds):
    from metarec.protocols.leakage import check_cold_users

    s = get_protocol("cold_start")(ds, seed=0, k_shot=3, n_query=3)
    assert check_cold_users(s)
    moved = s.train.iloc[:1].copy()                        # a meta-train user's event among the test users
    s.frames["test"] = pd.concat([s.test, moved], ignore_index=True)
    with pytest.raises(LeakageError, match="test users also in meta-train"):
        check_cold_users(s)
    s = get_protocol("cold_start")(ds, seed=0, k_shot=3, n_query=3)
    s.frames["valid"] = pd.concat([s.valid, s.test.iloc[:1]], ignore_index=True)   # a test user also in valid
    with pytest.raises(LeakageError, match="valid and test users overlap"):
        check_cold_users(s)
    s = get_protocol("cold_start")(ds, seed=0, k_shot=3, n_query=3)
    sup = s.support("test").copy()
    sup.loc[sup.index[0], "user"] = int(s.train.user.iloc[0])   # leakage through the support set too
    s.frames["test_support"] = sup
    with pytest.raises(LeakageError, match="test users also in meta-train"):
        check_cold_users(s)


def test_latest_is_test_check_catches_an_earlier_event(ds):
    from types import SimpleNamespace

    from metarec.protocols.base import chronological
    from metarec.protocols.leakage import check_latest_is_test

    full = chronological(ds.interactions)
    last = full.groupby("user")["_pos"].transform("max")
    frames = {"test": full[full._pos == last].reset_index(drop=True),
              "valid": full[full._pos == last - 1].reset_index(drop=True)}
    split = SimpleNamespace(dataset="toy", frames=frames)
    assert check_latest_is_test(split, full)
    for stage in ("test", "valid"):   # the stage's first row replaced by that user's first event
        bad = {k: v.copy() for k, v in frames.items()}
        bad[stage].iloc[0] = full.loc[(full.user == bad[stage].user[0]) & (full._pos == 0)].iloc[0]
        with pytest.raises(LeakageError, match=f"a {stage} item is not the user's"):
            check_latest_is_test(SimpleNamespace(dataset="toy", frames=bad), full)


def test_time_order_check_catches_an_early_test_or_valid_event(ds):
    from metarec.protocols.leakage import check_time_order

    s = get_protocol("temporal")(ds, seed=0)
    assert check_time_order(s) == "valid/test events not earlier than train events"
    for stage in ("test", "valid"):
        s = get_protocol("temporal")(ds, seed=0)
        frame = s.frames[stage].copy()
        frame.loc[frame.index[0], "timestamp"] = int(s.train.timestamp.min()) - 1
        s.frames[stage] = frame
        with pytest.raises(LeakageError, match="a valid/test event is earlier than a train event"):
            check_time_order(s)
