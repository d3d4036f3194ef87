"""Registry lookup, data roots, caching, status, preprocessing and downloads (offline)."""
from __future__ import annotations

import dataclasses
import hashlib
import io
import zipfile

import numpy as np
import pytest

from metarec.data import data_roots, download, get_card, list_cards, load_dataset, locate, preprocess, registry, \
    status
from metarec.errors import ConfigError, DataError, UnknownNameError

NAMES = {"ml-100k", "ml-1m", "ml-1m-implicit", "amazon-beauty", "amazon-sports", "amazon-toys", "amazon-videogames",
         "amazon-grocery", "amazon-scientific", "amazon-office", "amazon2018-all-beauty", "amazon2018-fashion",
         "amazon2018-appliances", "amazon2018-gift-cards", "amazon2018-magazines", "mind-sample", "mind-small",
         "mind-large", "mind-demo", "amazon2018-multidomain"}


def test_all_names_registered_with_complete_cards():
    cards = list_cards()
    assert {c.name for c in cards} == NAMES
    for c in cards:
        assert c.family in ("movielens", "amazon", "mind") and c.terms
        if c.parts:  # derived: built from its parts, which are cards themselves
            assert not c.files and c.loader is None and all(p in NAMES for p in c.parts)
        else:
            assert c.folder and c.files and callable(c.loader)
        assert all(v.split(":")[0] in ("sha256", "md5") for v in c.checksums.values())
    assert get_card("ml-100k").checksums["ml-100k.zip"] == "md5:0e33842e24a9c977be4e0107933c0723"
    assert get_card("ml-1m").checksums["ml-1m.zip"] == "md5:c4d9eecfca2ab87c1945afe126590906"
    assert "not comparable" in get_card("mind-sample").notes


def test_unknown_name_lists_choices():
    with pytest.raises(UnknownNameError, match=r"unknown dataset 'ml-100' \(did you mean 'ml-100k'\?\); valid: .*"
                                               r"amazon-beauty.*mind-sample.*ml-1m-implicit"):
        get_card("ml-100")
    with pytest.raises(UnknownNameError):
        load_dataset("no-such-data")


def test_data_roots_order(monkeypatch, tmp_path):
    monkeypatch.setenv("METAREC_DATA", str(tmp_path))
    roots = data_roots()
    repo = registry.repo_root()
    assert roots == [tmp_path, repo / "datasets", repo.parent / "shared" / "datasets"]
    monkeypatch.delenv("METAREC_DATA")
    assert data_roots()[0] == repo / "datasets"


def test_locate_via_env_root(monkeypatch, tmp_path, s3rec_dir):
    root = tmp_path / "root"
    (root / "amazon-s3rec").mkdir(parents=True)
    for f in s3rec_dir.iterdir():
        (root / "amazon-s3rec" / f.name).write_bytes(f.read_bytes())
    monkeypatch.setenv("METAREC_DATA", str(root))
    assert locate("amazon-beauty") == root / "amazon-s3rec"
    assert load_dataset("amazon-beauty").n_interactions == 5
    st = status("amazon-beauty")
    assert st["present"] and st["path"] == str(root / "amazon-s3rec") and st["counts"]["interactions"] == 5


def test_ml100k_falls_back_to_recbole_wheel(monkeypatch, tmp_path):
    monkeypatch.setattr(registry, "data_roots", lambda: [tmp_path])
    path = locate("ml-100k")
    assert path is not None and path.parts[-2:] == ("dataset_example", "ml-100k")
    assert load_dataset("ml-100k").n_interactions == 100000


def test_status_without_files(tmp_path):
    st = status("ml-1m", root=tmp_path)
    assert st == {"name": "ml-1m", "present": False, "path": None, "complete": True,
                  "expected": {"users": 6040, "items": 3706, "interactions": 1000209}, "counts": None}


def test_cache_notices_changed_files(ml100k_official, put):
    assert load_dataset("ml-100k", root=ml100k_official).n_interactions == 3
    put(ml100k_official / "u.data", "1\t10\t4\t881250949\n2\t10\t3\t891717742\n1\t20\t5\t878887116\n2\t20\t1\t9\n")
    assert load_dataset("ml-100k", root=ml100k_official).n_interactions == 4


# ---- preprocessing -----------------------------------------------------------------------------------------------
def test_min_rating_and_kcore_ml100k():
    ds = load_dataset("ml-100k", min_rating=4)
    assert len(ds.interactions) == 34174 + 21201 and ds.interactions["rating"].min() == 4.0
    assert ds.interactions["user"].max() == ds.n_users - 1 and ds.interactions["item"].max() == ds.n_items - 1
    assert ds.item_features["original_id"].tolist() == list(ds.item_ids)
    assert ds.user_features["original_id"].tolist() == list(ds.user_ids)
    k = load_dataset("ml-100k", min_rating=4, k_core=10)
    assert np.bincount(k.interactions["user"]).min() >= 10 and np.bincount(k.interactions["item"]).min() >= 10
    assert k.meta["preprocess"] == {"min_rating": 4, "k_core": 10}
    assert load_dataset("ml-100k").n_interactions == 100000  # the cached raw copy is untouched


def test_kcore_exact_small(tmp_path, put):
    # user 2 rates only item 10 and item 30 is rated once: the 2-core is users {1, 3} x items {10, 20}
    d = tmp_path / "k"
    put(d / "u.data", "1\t10\t5\t1\n1\t20\t5\t2\n2\t10\t5\t3\n3\t10\t5\t4\n3\t20\t5\t5\n3\t30\t5\t6\n")
    put(d / "u.item", "".join(f"{i}|M{i} (1990)|01-Jan-1990||u|" + "|".join(["0"] * 19) + "\n" for i in (10, 20, 30)))
    put(d / "u.user", "1|20|M|x|1\n2|30|F|y|2\n3|40|M|z|3\n")
    ds = load_dataset("ml-100k", root=d, k_core=2)
    assert list(ds.user_ids) == ["1", "3"] and list(ds.item_ids) == ["10", "20"]
    assert ds.interactions[["user", "item"]].values.tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]]
    assert ds.user_features["age"].tolist() == [20.0, 40.0]
    assert ds.item_features["title"].tolist() == ["M10", "M20"]


def test_kcore_keeps_given_parts_a_partition(lightgcn_dir):
    ds = load_dataset("ml-1m-implicit", root=lightgcn_dir, k_core=2)
    # user 0: items 0..4, user 1: items 2,3,0 -> items with >= 2 users: 0, 2, 3
    assert list(ds.item_ids) == ["0", "2", "3"]
    assert {k: len(v) for k, v in ds.given.items()} == {"train": 4, "valid": 1, "test": 1}
    assert len(ds.interactions) == 6


def test_min_rating_without_ratings_is_config_error(lightgcn_dir):
    with pytest.raises(ConfigError, match="has no ratings"):
        load_dataset("ml-1m-implicit", root=lightgcn_dir, min_rating=3)


def test_kcore_on_impressions_is_config_error(mind_dir):
    ds = load_dataset("mind-sample", root=mind_dir)
    with pytest.raises(ConfigError, match="impression log"):
        preprocess(ds, k_core=2)
    with pytest.raises(ConfigError, match="k_core must be a positive integer"):
        preprocess(load_dataset("ml-100k"), k_core=0)


# ---- downloads (never touching the network) -----------------------------------------------------------------------
def _patch_card(monkeypatch, name, **changes):
    card = dataclasses.replace(registry.get_card(name), **changes)
    monkeypatch.setitem(registry._CARDS, name, card)
    return card


def test_download_offline_fails_fast_with_manual_instructions(monkeypatch, tmp_path):
    url = "http://127.0.0.1:9/ml-1m.zip"  # discard port: connection refused at once
    _patch_card(monkeypatch, "ml-1m", url=url)
    with pytest.raises(DataError) as ei:
        download("ml-1m", tmp_path, timeout=2)
    msg = str(ei.value)
    assert url in msg and str(tmp_path / "movielens-1m") in msg and "ratings.dat, movies.dat, users.dat" in msg
    assert not any(p.name.endswith(".part") for p in (tmp_path / "movielens-1m").iterdir())


def test_download_without_url(tmp_path):
    with pytest.raises(DataError, match="no public download URL.*aHuiWang/CIKM2020-S3Rec"):
        download("amazon-beauty", tmp_path)


def _zip_of(folder) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for p in sorted(folder.iterdir()):
            zf.write(p, f"ml-100k/{p.name}")  # the GroupLens zip has one top-level folder
    return buf.getvalue()


def test_download_from_file_url_verifies_and_unzips(monkeypatch, tmp_path, ml100k_official):
    data = _zip_of(ml100k_official)
    src = tmp_path / "src" / "ml-100k.zip"
    src.parent.mkdir()
    src.write_bytes(data)
    _patch_card(monkeypatch, "ml-100k", url=src.as_uri(),
                checksums={"ml-100k.zip": "md5:" + hashlib.md5(data).hexdigest()})
    folder = download("ml-100k", tmp_path / "root")
    assert folder == tmp_path / "root" / "movielens-100k"
    assert sorted(p.name for p in folder.iterdir()) == ["u.data", "u.item", "u.user"]
    assert load_dataset("ml-100k", root=tmp_path / "root").n_interactions == 3


def test_download_checksum_mismatch_installs_nothing(monkeypatch, tmp_path, ml100k_official):
    src = tmp_path / "ml-100k.zip"
    src.write_bytes(_zip_of(ml100k_official))
    _patch_card(monkeypatch, "ml-100k", url=src.as_uri(), checksums={"ml-100k.zip": "md5:" + "0" * 32})
    with pytest.raises(DataError, match="checksum mismatch"):
        download("ml-100k", tmp_path / "root")
    assert list((tmp_path / "root" / "movielens-100k").iterdir()) == []


def test_a_derived_card_combines_its_parts_and_names_missing_ones(tmp_path):
    from metarec.data.registry import get_card, status

    card = get_card("amazon2018-multidomain")
    assert len(card.parts) == 5 and card.expected["users"] == sum(get_card(p).expected["users"] for p in card.parts)
    with pytest.raises(DataError, match="combines amazon2018-all-beauty.*not staged: amazon2018-all-beauty, "
                                        "amazon2018-fashion"):
        load_dataset("amazon2018-multidomain", root=tmp_path)
    assert status("amazon2018-multidomain", root=tmp_path)["present"] is False
