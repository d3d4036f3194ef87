"""Malformed inputs: every error is a DataError naming the file and the 1-based line."""
from __future__ import annotations

import gzip
import json
import re

import pytest

from metarec.data import load_dataset
from metarec.errors import DataError


def where(name: str, line: int) -> str:
    """Regex for the 'path:line: ' prefix of a DataError on file ``name``."""
    return rf"{re.escape(name)}:{line}: "


def test_wrong_column_count_too_few(ml100k_official, put):
    put(ml100k_official / "u.data", "1\t10\t4\t881250949\n2\t10\t3\n")
    with pytest.raises(DataError, match=where("u.data", 2) + "expected 4 tab-separated columns, found 3"):
        load_dataset("ml-100k", root=ml100k_official)


def test_wrong_column_count_too_many_after_blank_line(ml100k_official, put):
    put(ml100k_official / "u.data", "1\t10\t4\t881250949\n\n2\t10\t3\t891717742\t9\n")
    with pytest.raises(DataError, match=where("u.data", 3) + "expected 4 tab-separated columns, found 5"):
        load_dataset("ml-100k", root=ml100k_official)


def test_non_integer_id(ml100k_official, put):
    put(ml100k_official / "u.data", "1\t10\t4\t881250949\n2\t10\t3\t891717742\nabc\t20\t5\t878887116\n")
    with pytest.raises(DataError, match=where("u.data", 3) + "column 'user_id': 'abc' is not an integer"):
        load_dataset("ml-100k", root=ml100k_official)


def test_unparseable_rating(ml1m_official, put):
    put(ml1m_official / "ratings.dat", "1::1193::5::978300760\n1::661::x::978302109\n")
    with pytest.raises(DataError, match=where("ratings.dat", 2) + "column 'rating': 'x' is not a number"):
        load_dataset("ml-1m", root=ml1m_official)


def test_ml1m_wrong_separator_count(ml1m_official, put):
    put(ml1m_official / "users.dat", "1::F::1::10::48067\n2::M::56::16\n")
    with pytest.raises(DataError, match=where("users.dat", 2) + "expected 5 '::'-separated columns, found 4"):
        load_dataset("ml-1m", root=ml1m_official)


def test_unparseable_time_rechorus(grocery_dir, put):
    put(grocery_dir / "train.csv", "user_id\titem_id\ttime\n2\t3\t965779200\n1\t1\tyesterday\n")
    with pytest.raises(DataError, match=where("train.csv", 3) + "column 'time': 'yesterday' is not an integer"):
        load_dataset("amazon-grocery", root=grocery_dir)


def test_rechorus_missing_header_column(grocery_dir, put):
    put(grocery_dir / "train.csv", "user_id\titem\ttime\n2\t3\t965779200\n")
    with pytest.raises(DataError, match=where("train.csv", 1) + r"header lacks column\(s\) item_id"):
        load_dataset("amazon-grocery", root=grocery_dir)


def test_unparseable_mind_time(mind_dir, put, mind_texts):
    rows = mind_texts[0].split("\n")
    rows[1] = rows[1].replace("11/12/2019 2:14:46 PM", "2019-11-12 14:14")
    put(mind_dir / "behaviors.tsv", "\n".join(rows))
    with pytest.raises(DataError, match=where("behaviors.tsv", 2) + "time '2019-11-12 14:14' is not"):
        load_dataset("mind-sample", root=mind_dir)


def test_bad_mind_impression_label(mind_dir, put, mind_texts):
    put(mind_dir / "behaviors.tsv", mind_texts[0].replace("N5-0\n", "N5-2\n"))
    with pytest.raises(DataError, match=where("behaviors.tsv", 3) + "impression candidate 'N5-2'"):
        load_dataset("mind-sample", root=mind_dir)


def test_mind_news_bad_utf8(mind_dir):
    (mind_dir / "news.tsv").write_bytes(b"N1\ta\tb\tok\t\tu\t[]\t[]\nN5\ta\tb\tbad \xff title\t\tu\t[]\t[]\n")
    with pytest.raises(DataError, match=where("news.tsv", 2) + "not valid utf-8"):
        load_dataset("mind-sample", root=mind_dir)


def test_bad_json_line_in_json_gz(amazon2018_dir, reviews):
    with gzip.open(amazon2018_dir / "Appliances_5.json.gz", "wt") as fh:
        fh.write(json.dumps(reviews[0]) + "\n" + '{"overall": 5.0, "reviewerID": \n' + json.dumps(reviews[1]) + "\n")
    with pytest.raises(DataError, match=where("Appliances_5.json.gz", 2) + "invalid JSON"):
        load_dataset("amazon2018-appliances", root=amazon2018_dir)


def test_json_record_missing_field(amazon2018_dir, reviews):
    del reviews[2]["asin"]
    with gzip.open(amazon2018_dir / "Appliances_5.json.gz", "wt") as fh:
        fh.write("".join(json.dumps(r) + "\n" for r in reviews))
    with pytest.raises(DataError, match=where("Appliances_5.json.gz", 3) + "record has no 'asin' field"):
        load_dataset("amazon2018-appliances", root=amazon2018_dir)


def test_truncated_gzip(amazon2018_dir, reviews):
    path = amazon2018_dir / "Appliances_5.json.gz"
    data = gzip.compress("".join(json.dumps(r) + "\n" for r in reviews * 50).encode())
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=re.escape("Appliances_5.json.gz:") + r"\d+: truncated gzip stream"):
        load_dataset("amazon2018-appliances", root=amazon2018_dir)


def test_not_gzip_at_all(amazon2018_dir):
    (amazon2018_dir / "Appliances_5.json.gz").write_bytes(b"this is not gzip\n")
    with pytest.raises(DataError, match=where("Appliances_5.json.gz", 1) + "corrupt gzip stream"):
        load_dataset("amazon2018-appliances", root=amazon2018_dir)


def test_empty_file(ml100k_official, put):
    put(ml100k_official / "u.user", "")
    with pytest.raises(DataError, match=where("u.user", 1) + "file is empty"):
        load_dataset("ml-100k", root=ml100k_official)


def test_header_only_file(grocery_dir, put):
    put(grocery_dir / "train.csv", "user_id\titem_id\ttime\n")
    with pytest.raises(DataError, match=where("train.csv", 2) + "file has no data rows"):
        load_dataset("amazon-grocery", root=grocery_dir)


def test_non_integer_in_id_list(s3rec_dir, put):
    put(s3rec_dir / "Beauty.txt", "1 3 1 2\n2 2 x3\n")
    with pytest.raises(DataError, match=where("Beauty.txt", 2) + "'x3' is not an integer id"):
        load_dataset("amazon-beauty", root=s3rec_dir)


def test_bad_item2attributes_json(s3rec_dir, put):
    put(s3rec_dir / "Beauty_item2attributes.json", '{"1": [1, 2],\n "2": [3\n}')
    with pytest.raises(DataError, match=where("Beauty_item2attributes.json", 3) + "invalid JSON"):
        load_dataset("amazon-beauty", root=s3rec_dir)


def test_recbole_atomic_bad_header(unisrec_dir, put):
    put(unisrec_dir / "Scientific.valid.inter", "user_id\titem_id_list\titem_id\n0\t0 1 2\t3\n")
    with pytest.raises(DataError, match=where("Scientific.valid.inter", 1) + "header field 'user_id'"):
        load_dataset("amazon-scientific", root=unisrec_dir)


def test_unisrec_inconsistent_prefix(unisrec_dir, put):
    head = "user_id:token\titem_id_list:token_seq\titem_id:token\n"
    put(unisrec_dir / "Scientific.test.inter", head + "0\t0 1 2 3\t4\n1\t2 9 2\t6\n")
    with pytest.raises(DataError, match=where("Scientific.test.inter", 3) + "the test prefix of user 1 does not continue"):
        load_dataset("amazon-scientific", root=unisrec_dir)


def test_missing_file_direct_loader(ml100k_official):
    from metarec.data.movielens import load_ml100k_official

    (ml100k_official / "u.user").unlink()
    with pytest.raises(DataError, match=r"u\.user: file not found"):
        load_ml100k_official(ml100k_official)


def test_missing_files_message_names_files_and_folders(tmp_path):
    with pytest.raises(DataError) as ei:
        load_dataset("ml-1m", root=tmp_path)
    msg = str(ei.value)
    assert "ratings.dat, movies.dat, users.dat" in msg and str(tmp_path / "movielens-1m") in msg
    assert "metarec download ml-1m" in msg and "https://files.grouplens.org/datasets/movielens/ml-1m.zip" in msg


def test_missing_files_without_url_points_to_source(tmp_path):
    (tmp_path / "amazon-s3rec").mkdir()
    (tmp_path / "amazon-s3rec" / "Beauty.txt").write_text("1 1\n")
    with pytest.raises(DataError) as ei:
        load_dataset("amazon-beauty", root=tmp_path)
    msg = str(ei.value)
    assert "missing Beauty_item2attributes.json" in msg and "aHuiWang/CIKM2020-S3Rec" in msg
    assert "cannot be downloaded automatically" in msg
