"""Small hand-written fixtures in every supported on-disk format (values are asserted exactly by the tests)."""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from metarec.data import registry


@pytest.fixture(autouse=True)
def _fresh_cache():
    registry.clear_cache()
    yield
    registry.clear_cache()


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))
    return path


@pytest.fixture
def put():
    """put(path, text, encoding='utf-8') -> path: write a fixture file (parents created)."""
    return write


GENRE_FLAGS_TOY = "0|0|0|1|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0"     # Animation, Children's, Comedy
GENRE_FLAGS_DRAMA = "0|0|0|0|0|0|0|0|1|0|0|0|0|0|0|0|0|0|0"   # Drama


@pytest.fixture
def ml100k_official(tmp_path) -> Path:
    d = tmp_path / "ml100k"
    write(d / "u.data", "1\t10\t4\t881250949\n2\t10\t3\t891717742\n1\t20\t5\t878887116\n")
    write(d / "u.item", f"10|Toy Story (1995)|01-Jan-1995||http://us.imdb.com/x|{GENRE_FLAGS_TOY}\n"
                        f"20|Café Noir (1994)|01-Jan-1994||http://us.imdb.com/y|{GENRE_FLAGS_DRAMA}\n",
          encoding="latin-1")
    write(d / "u.user", "1|24|M|technician|85711\n2|53|F|other|94043\n")
    return d


@pytest.fixture
def ml1m_official(tmp_path) -> Path:
    d = tmp_path / "ml1m"
    write(d / "ratings.dat", "1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978298413\n",
          encoding="latin-1")
    write(d / "movies.dat", "1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n"
                            "661::James and the Giant Peach (1996)::Animation|Children's|Musical\n"
                            "2000::Unrated Film (2000)::Comedy\n", encoding="latin-1")
    write(d / "users.dat", "1::F::1::10::48067\n2::M::56::16::70072\n", encoding="latin-1")
    return d


@pytest.fixture
def lightgcn_dir(tmp_path) -> Path:
    d = tmp_path / "lgcn"
    write(d / "train.txt", "0 0 1 2\n1 2 3\n")
    write(d / "valid.txt", "0 3\n")
    write(d / "test.txt", "0 4\n1 0\n")
    return d


@pytest.fixture
def s3rec_dir(tmp_path) -> Path:
    d = tmp_path / "s3rec"
    write(d / "Beauty.txt", "1 3 1 2\n2 2 3\n")
    write(d / "Beauty_item2attributes.json", json.dumps({"1": [1, 2], "2": [3], "3": []}))
    return d


@pytest.fixture
def sasrec_dir(tmp_path) -> Path:
    d = tmp_path / "sasrec"
    write(d / "Video.txt", "1 5\n1 3\n2 5\n2 7\n2 3\n")
    return d


@pytest.fixture
def grocery_dir(tmp_path) -> Path:
    d = tmp_path / "grocery"
    write(d / "train.csv", "user_id\titem_id\ttime\n2\t3\t965779200\n1\t1\t1068249600\n2\t1\t1073433600\n")
    write(d / "item_meta.csv", "item_id\ti_category\tr_complement\tr_substitute\n1\t0\t[3]\t[]\n3\t21\t[]\t[1]\n"
                               "9\t5\t[]\t[]\n")
    return d


@pytest.fixture
def office_dir(tmp_path) -> Path:
    d = tmp_path / "office"
    write(d / "train.csv", "user_id\titem_id\ttime\n1\t1\t970185600\n1\t2\t983404800\n2\t2\t996105600\n")
    write(d / "dev.csv", "user_id\titem_id\ttime\tneg_items\n1\t3\t1000000000\t[2, 1]\n2\t1\t1000000001\t[3]\n")
    write(d / "test.csv", "user_id\titem_id\ttime\tneg_items\n1\t2\t1100000000\t[1]\n2\t3\t1100000001\t[2]\n")
    write(d / "item_meta.csv", "item_id\ti_category\ti_brand\tr_complement\tr_substitute\n1\t1\t0\t[]\t[]\n"
                               "2\t2\t7\t[1]\t[]\n3\t0\t0\t[]\t[]\n")
    write(d / "Office.item2index", "B00000JBLU\t1\nB00000JBNX\t2\nB0000AG93P\t3\n")
    write(d / "Office.text", "id\ttext\nB00000JBLU\tTI-1795 Calculator Basic Texas Instruments \n"
                             "B00000JBNX\tTI-30X Scientific Calculator Texas Instruments\n"
                             "B0000AG93P\tStapler Staplers Swingline\n")
    return d


@pytest.fixture
def unisrec_dir(tmp_path) -> Path:
    """User AUSER0: B0..B4 (5 items); user AUSER1: B2 B5 B2 B6 (repeats B2)."""
    d = tmp_path / "sci"
    head = "user_id:token\titem_id_list:token_seq\titem_id:token\n"
    write(d / "Scientific.train.inter", head + "0\t0 1\t2\n0\t0\t1\n1\t2\t5\n")
    write(d / "Scientific.valid.inter", head + "0\t0 1 2\t3\n1\t2 5\t2\n")
    write(d / "Scientific.test.inter", head + "0\t0 1 2 3\t4\n1\t2 5 2\t6\n")
    write(d / "Scientific.item2index", "".join(f"B00000000{k}\t{k}\n" for k in range(7)))
    write(d / "Scientific.user2index", "AUSER0\t0\nAUSER1\t1\n")
    write(d / "Scientific.text", "item_id:token\ttext:token_seq\n" +
          "".join(f"B00000000{k}\tTitle {k}. Cat. Brand. \n" for k in range(7)))
    return d


REVIEWS = [
    {"overall": 5.0, "reviewerID": "A1", "asin": "B01", "unixReviewTime": 1377129600, "summary": "Great product",
     "reviewText": "x"},
    {"overall": 3.0, "reviewerID": "A2", "asin": "B01", "unixReviewTime": 1454889600, "summary": "Okay"},
    {"overall": 3.0, "reviewerID": "A2", "asin": "B01", "unixReviewTime": 1454889600, "summary": "Okay"},  # dup
    {"overall": 4.0, "reviewerID": "A1", "asin": "B02", "unixReviewTime": 1438732800},
]


@pytest.fixture
def amazon2018_dir(tmp_path) -> Path:
    d = tmp_path / "a18"
    d.mkdir()
    with gzip.open(d / "Appliances_5.json.gz", "wt", encoding="utf-8") as fh:
        for r in REVIEWS:
            fh.write(json.dumps(r) + "\n")
    return d


BEHAVIORS = (
    "7\tU2\t11/11/2019 9:05:58 AM\tN1 N2 N1\tN3-1 N4-0\n"
    "3\tU1\t11/12/2019 2:14:46 PM\t\tN4-0 N5-1 N1-0\n"
    "9\tU2\t11/13/2019 12:00:00 AM\tN2 N6\tN5-0\n"
)
NEWS = (
    "N1\tsports\tfootball\tA Title\tAn abstract.\thttp://x\t[]\t[]\n"
    "N5\tnews\tpolitics\tOther title\t\thttp://y\t[]\t[]\n"
    "N99\tnews\tworld\tNever referenced\t\thttp://z\t[]\t[]\n"
)


@pytest.fixture
def mind_dir(tmp_path) -> Path:
    d = tmp_path / "mind"
    write(d / "behaviors.tsv", BEHAVIORS)
    write(d / "news.tsv", NEWS)
    return d


@pytest.fixture
def reviews() -> list[dict]:
    return [dict(r) for r in REVIEWS]


@pytest.fixture
def mind_texts() -> tuple[str, str]:
    """(behaviors.tsv, news.tsv) contents of the MIND fixture."""
    return BEHAVIORS, NEWS
