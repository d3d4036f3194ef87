"""Every on-disk format parsed from a small fixture, with exact values asserted."""
from __future__ import annotations

import calendar
import json
from datetime import datetime

import numpy as np
import pytest

from metarec.data import load_dataset


def utc(s: str) -> int:
    return calendar.timegm(datetime.strptime(s, "%Y-%m-%d %H:%M:%S").timetuple())


def pairs(df, ds):
    """(original user, original item) per row."""
    return [(ds.user_ids[u], ds.item_ids[i]) for u, i in zip(df["user"], df["item"])]


def test_ml100k_official_layout(ml100k_official):
    ds = load_dataset("ml-100k", root=ml100k_official)
    assert (ds.n_users, ds.n_items, ds.n_interactions) == (2, 2, 3)
    assert list(ds.user_ids) == ["1", "2"] and list(ds.item_ids) == ["10", "20"]
    inter = ds.interactions
    assert pairs(inter, ds) == [("1", "10"), ("2", "10"), ("1", "20")]
    assert inter["rating"].dtype == np.float32 and inter["rating"].tolist() == [4.0, 3.0, 5.0]
    assert inter["timestamp"].tolist() == [881250949, 891717742, 878887116]
    f = ds.item_features
    assert f["original_id"].tolist() == ["10", "20"]
    assert f["title"].tolist() == ["Toy Story", "Café Noir"]  # latin-1 decoded, year stripped
    assert f["year"].tolist() == [1995.0, 1994.0]
    assert f["genres"].tolist() == [["Animation", "Children's", "Comedy"], ["Drama"]]
    assert f["text"].tolist() == ["Toy Story. Animation, Children's, Comedy", "Café Noir. Drama"]
    u = ds.user_features
    assert u["age"].tolist() == [24.0, 53.0] and u["gender"].tolist() == ["M", "F"]
    assert u["occupation"].tolist() == ["technician", "other"] and u["zip"].tolist() == ["85711", "94043"]


def test_ml100k_recbole_layout_matches_conventions():
    ds = load_dataset("ml-100k")  # staged copy or the recbole wheel
    f = ds.item_features
    row = f[f["original_id"] == "1"].iloc[0]
    assert (row["title"], row["year"], row["genres"]) == ("Toy Story", 1995.0, ["Animation", "Children's", "Comedy"])
    assert row["text"] == "Toy Story. Animation, Children's, Comedy"
    u = ds.user_features.iloc[0]
    assert (u["original_id"], u["age"], u["gender"], u["occupation"], u["zip"]) == ("1", 24.0, "M", "technician",
                                                                                      "85711")
    inter = ds.interactions
    assert (ds.user_ids[inter["user"].iloc[0]], ds.item_ids[inter["item"].iloc[0]], inter["rating"].iloc[0],
            inter["timestamp"].iloc[0]) == ("196", "242", 3.0, 881250949)


def test_ml1m_official_layout(ml1m_official):
    ds = load_dataset("ml-1m", root=ml1m_official)
    assert (ds.n_users, ds.n_items, ds.n_interactions) == (2, 2, 3)
    assert list(ds.item_ids) == ["661", "1193"]  # numeric ids sort numerically; unrated movie 2000 not an item
    assert pairs(ds.interactions, ds) == [("1", "1193"), ("1", "661"), ("2", "1193")]
    assert ds.interactions["rating"].tolist() == [5.0, 3.0, 4.0]
    assert ds.interactions["timestamp"].tolist() == [978300760, 978302109, 978298413]
    f = ds.item_features
    assert f["title"].tolist() == ["James and the Giant Peach", "One Flew Over the Cuckoo's Nest"]
    assert f["year"].tolist() == [1996.0, 1975.0]
    assert f["genres"].tolist() == [["Animation", "Children's", "Musical"], ["Drama"]]
    u = ds.user_features
    assert u["gender"].tolist() == ["F", "M"] and u["age"].tolist() == [1.0, 56.0]
    assert u["occupation"].tolist() == ["K-12 student", "self-employed"] and u["zip"].tolist() == ["48067", "70072"]


def test_lightgcn_given_split(lightgcn_dir):
    ds = load_dataset("ml-1m-implicit", root=lightgcn_dir)
    assert (ds.n_users, ds.n_items, ds.n_interactions) == (2, 5, 8)
    assert {k: pairs(v, ds) for k, v in ds.given.items()} == {
        "train": [("0", "0"), ("0", "1"), ("0", "2"), ("1", "2"), ("1", "3")],
        "valid": [("0", "3")],
        "test": [("0", "4"), ("1", "0")]}
    assert pairs(ds.interactions, ds) == pairs(ds.all_interactions(), ds)
    assert "timestamp" not in ds.interactions and "rating" not in ds.interactions


def test_s3rec_sequences_and_attributes(s3rec_dir):
    ds = load_dataset("amazon-beauty", root=s3rec_dir)
    assert (ds.n_users, ds.n_items, ds.n_interactions) == (2, 3, 5)
    assert pairs(ds.interactions, ds) == [("1", "3"), ("1", "1"), ("1", "2"), ("2", "2"), ("2", "3")]
    assert list(ds.interactions.columns) == ["user", "item"]  # order only: no invented timestamp
    assert ds.item_features["category"].tolist() == [["1", "2"], ["3"], []]


def test_sasrec_lines(sasrec_dir):
    ds = load_dataset("amazon-videogames", root=sasrec_dir)
    assert (ds.n_users, ds.n_items, ds.n_interactions) == (2, 3, 5)
    assert pairs(ds.interactions, ds) == [("1", "5"), ("1", "3"), ("2", "5"), ("2", "7"), ("2", "3")]


def test_rechorus_grocery(grocery_dir):
    ds = load_dataset("amazon-grocery", root=grocery_dir)
    assert (ds.n_users, ds.n_items, ds.n_interactions) == (2, 2, 3)
    assert pairs(ds.interactions, ds) == [("2", "3"), ("1", "1"), ("2", "1")]
    assert ds.interactions["timestamp"].tolist() == [965779200, 1068249600, 1073433600]
    assert ds.item_features["original_id"].tolist() == ["1", "3"]
    assert ds.item_features["category"].tolist() == ["", "21"]  # 0 = unknown -> ""


def test_office_given_split_and_text(office_dir):
    ds = load_dataset("amazon-office", root=office_dir)
    assert (ds.n_users, ds.n_items, ds.n_interactions) == (2, 3, 7)
    assert list(ds.item_ids) == ["B00000JBLU", "B00000JBNX", "B0000AG93P"]
    assert pairs(ds.given["train"], ds) == [("1", "B00000JBLU"), ("1", "B00000JBNX"), ("2", "B00000JBNX")]
    assert pairs(ds.given["valid"], ds) == [("1", "B0000AG93P"), ("2", "B00000JBLU")]
    assert pairs(ds.given["test"], ds) == [("1", "B00000JBNX"), ("2", "B0000AG93P")]
    assert list(ds.given["valid"].columns) == ["user", "item", "timestamp"]  # neg_items dropped
    assert ds.given["test"]["timestamp"].tolist() == [1100000000, 1100000001]
    f = ds.item_features
    assert f["text"].tolist() == ["TI-1795 Calculator Basic Texas Instruments",
                                  "TI-30X Scientific Calculator Texas Instruments", "Stapler Staplers Swingline"]
    assert f["category"].tolist() == ["1", "2", ""] and f["brand"].tolist() == ["", "7", ""]


def test_unisrec_reconstructs_full_sequences(unisrec_dir):
    ds = load_dataset("amazon-scientific", root=unisrec_dir)
    assert (ds.n_users, ds.n_items, ds.n_interactions) == (2, 7, 9)
    assert list(ds.user_ids) == ["AUSER0", "AUSER1"]
    assert pairs(ds.interactions, ds) == [("AUSER0", f"B00000000{k}") for k in range(5)] + \
        [("AUSER1", "B000000002"), ("AUSER1", "B000000005"), ("AUSER1", "B000000002"), ("AUSER1", "B000000006")]
    assert pairs(ds.given["valid"], ds) == [("AUSER0", "B000000003"), ("AUSER1", "B000000002")]
    assert pairs(ds.given["test"], ds) == [("AUSER0", "B000000004"), ("AUSER1", "B000000006")]
    assert len(ds.given["train"]) == 5
    assert ds.item_features["text"].iloc[0] == "Title 0. Cat. Brand."


def test_amazon2018_json_gz_keeps_duplicates(amazon2018_dir):
    ds = load_dataset("amazon2018-appliances", root=amazon2018_dir)
    assert (ds.n_users, ds.n_items, ds.n_interactions) == (2, 2, 4)
    assert pairs(ds.interactions, ds) == [("A1", "B01"), ("A2", "B01"), ("A2", "B01"), ("A1", "B02")]
    assert ds.interactions["rating"].tolist() == [5.0, 3.0, 3.0, 4.0]
    assert ds.interactions["timestamp"].tolist() == [1377129600, 1454889600, 1454889600, 1438732800]
    assert ds.item_features["text"].tolist() == ["Great product | Okay", ""]  # review-derived text
    assert ds.meta["text_source"] == "review summaries"


def test_amazon2018_plain_json_and_csv(tmp_path, put, reviews):
    put(tmp_path / "j" / "Gift_Cards_5.json", "".join(json.dumps(r) + "\n" for r in reviews))
    ds = load_dataset("amazon2018-gift-cards", root=tmp_path / "j")
    assert ds.n_interactions == 4 and ds.n_users == 2
    put(tmp_path / "c" / "Gift_Cards.csv", "B01,A1,5.0,1377129600\nB02,A1,4.0,1438732800\n")
    ds = load_dataset("amazon2018-gift-cards", root=tmp_path / "c")
    assert pairs(ds.interactions, ds) == [("A1", "B01"), ("A1", "B02")]
    assert ds.interactions["rating"].tolist() == [5.0, 4.0]


def test_mind_single_folder(mind_dir):
    ds = load_dataset("mind-small", root=mind_dir)
    assert list(ds.user_ids) == ["U1", "U2"]
    assert list(ds.item_ids) == ["N1", "N2", "N3", "N4", "N5", "N6"]  # referenced ids only (not N99)
    t7, t3, t9 = utc("2019-11-11 09:05:58"), utc("2019-11-12 14:14:46"), utc("2019-11-13 00:00:00")
    imp = ds.impressions
    assert list(imp.columns) == ["impression", "user", "item", "label", "timestamp"]
    assert imp.values.tolist() == [[7, 1, 2, 1, t7], [7, 1, 3, 0, t7], [3, 0, 3, 0, t3], [3, 0, 4, 1, t3],
                                   [3, 0, 0, 0, t3], [9, 1, 4, 0, t9]]
    # history clicks, deduplicated per (user, item), time of the first impression listing them
    assert ds.interactions.values.tolist() == [[1, 0, t7], [1, 1, t7], [1, 5, t9]]
    f = ds.item_features
    assert f["text"].tolist() == ["A Title. An abstract. sports.", "", "", "", "Other title. news.", ""]
    assert f["category"].tolist()[:1] == ["sports"] and f["subcategory"].tolist()[4] == "politics"
    assert f["title"].tolist()[4] == "Other title"
    assert ds.describe()["clicks"] == 2 and ds.describe()["impressions"] == 3


def test_mind_official_layout_train_dev(tmp_path, put, mind_texts):
    BEHAVIORS, NEWS = mind_texts
    root = tmp_path / "data"
    put(root / "mind-small" / "MINDsmall_train" / "behaviors.tsv", BEHAVIORS)
    put(root / "mind-small" / "MINDsmall_train" / "news.tsv", NEWS)
    put(root / "mind-small" / "MINDsmall_dev" / "behaviors.tsv", "1\tU3\t11/15/2019 1:00:00 PM\tN1\tN7-1\n")
    put(root / "mind-small" / "MINDsmall_dev" / "news.tsv", "N7\tnews\tus\tDev title\t\thttp://d\t[]\t[]\n")
    ds = load_dataset("mind-small", root=root)
    imp = ds.impressions
    assert imp["part"].tolist() == ["train"] * 6 + ["dev"]
    assert imp["impression"].tolist()[-1] == 10  # dev ids offset past the largest train id (9)
    assert ds.item_ids[imp["item"].iloc[-1]] == "N7"
    assert ds.item_features["text"].iloc[-1] == "Dev title. news."
    assert ds.meta["parts"] == ["train", "dev"]


def test_mind_sample_meta(mind_dir):
    ds = load_dataset("mind-sample", root=mind_dir)
    assert ds.meta["sample"] is True and "not comparable" in ds.meta["note"]


@pytest.mark.parametrize("name", ["ml-100k"])
def test_loaded_frames_are_independent_copies(name):
    a = load_dataset(name)
    a.interactions.loc[0, "rating"] = -1.0
    a.item_features.loc[0, "title"] = "changed"
    b = load_dataset(name)
    assert b.interactions.loc[0, "rating"] != -1.0 and b.item_features.loc[0, "title"] != "changed"
