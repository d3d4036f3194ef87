"""The dataset registry: one :class:`DatasetCard` per dataset name, where its files live, and ``load_dataset``.

A dataset is looked up under each data root in turn (:func:`data_roots`): ``$METAREC_DATA`` (one or more folders
separated by ``os.pathsep``), ``<repo>/datasets`` (the local cache, where ``metarec download`` writes), then
``<repo>/../shared/datasets`` (the project's staged copies). Under a root, a dataset lives in its card's ``folder``
(or a folder named like the dataset). ``ml-100k`` finally falls back to the copy inside the recbole wheel.
"""
from __future__ import annotations

import functools
import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from metarec.data import amazon, mind, movielens
from metarec.data.preprocess import copy_dataset, preprocess
from metarec.data.schema import LABEL, Dataset
from metarec.errors import DataError, UnknownNameError

MOVIELENS_TERMS = ("GroupLens terms: research use only, no redistribution or commercial use without permission, "
                   "acknowledge in publications.")
AMAZON_TERMS = "Amazon review data (McAuley lab, UCSD): research use only, no formal license; do not republish."
MIND_TERMS = "Microsoft Research License Terms: non-commercial research only, provided as is; do not republish."

GROUPLENS = "https://files.grouplens.org/datasets/movielens/"
AMAZON2018 = "https://datarepo.eng.ucsd.edu/mcauley_group/data/amazon_v2/categoryFilesSmall/"
MIND_BLOB = "https://mind201910small.blob.core.windows.net/release/"
MIND_DEMO = "https://recodatasets.z20.web.core.windows.net/newsrec/"


@dataclass(frozen=True, eq=False)
class DatasetCard:
    """Everything metarec knows about a dataset before loading it.

    ``checksums``: file name -> ``"sha256:<hex>"`` or ``"md5:<hex>"``. ``expected``: the exact counts the loader
    must produce from the files described in PROVENANCE (users, items, interactions; MIND adds impressions,
    impression_candidates and clicks); empty where metarec has never seen the files. ``files``: the required files
    of the primary layout (relative to ``folder``); ``alternatives``: other accepted layouts. ``urls``: every file
    :func:`metarec.data.download.download` fetches (``url`` first).
    """

    name: str
    title: str
    family: str  # 'movielens' | 'amazon' | 'mind'
    source: str
    url: str | None
    checksums: dict[str, str]
    terms: str
    expected: dict[str, int]
    columns: list[str]
    folder: str
    files: list[str]
    complete: bool
    notes: str
    loader: Callable[[Path], Dataset]
    alternatives: list[list[str]] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)
    #: a derived dataset: the cards it combines (``metarec.data.combine``); it has no files of its own
    parts: tuple[str, ...] = ()

    @property
    def layouts(self) -> list[list[str]]:
        return [list(self.files), *[list(a) for a in self.alternatives]]

    @property
    def download_urls(self) -> list[str]:
        return list(self.urls) if self.urls else ([self.url] if self.url else [])


def _cols(inter: list[str], items: list[str] = (), users: list[str] = ()) -> list[str]:
    return [*inter, *[f"item.{c}" for c in items], *[f"user.{c}" for c in users]]


def _cards() -> list[DatasetCard]:
    cards = [
        DatasetCard(
            name="ml-100k", title="MovieLens 100K", family="movielens",
            source="GroupLens (default copy: RecBole 1.2.1 wheel, recbole/dataset_example/ml-100k)",
            url=GROUPLENS + "ml-100k.zip",
            checksums={"ml-100k.zip": "md5:0e33842e24a9c977be4e0107933c0723",
                       "ml-100k.inter": "sha256:4edb74e2a81178c2ba9ff381495f754f996c4aea351b1272ca36b43da0935eff",
                       "ml-100k.item": "sha256:51d7cdf777ce5c0f5b32c1d947a4a81fe07d75e78abbe761e0cd4d0756064532",
                       "ml-100k.user": "sha256:4f670007d9cfbeb9807e757209af1555b9bcc186bde25e767f67cb67c6dd5972"},
            terms=MOVIELENS_TERMS, expected={"users": 943, "items": 1682, "interactions": 100000},
            columns=_cols(["user", "item", "rating", "timestamp"], ["title", "year", "genres", "text"],
                          ["age", "gender", "occupation", "zip"]),
            folder="movielens-100k", files=["ml-100k.inter", "ml-100k.item", "ml-100k.user"],
            alternatives=[["u.data", "u.item", "u.user"]], complete=True,
            notes="RecBole atomic layout or the official zip's u.data/u.item/u.user (u.item latin-1).",
            loader=functools.partial(movielens.load_ml100k, name="ml-100k")),
        DatasetCard(
            name="ml-1m", title="MovieLens 1M", family="movielens", source="GroupLens",
            url=GROUPLENS + "ml-1m.zip", checksums={"ml-1m.zip": "md5:c4d9eecfca2ab87c1945afe126590906"},
            terms=MOVIELENS_TERMS, expected={"users": 6040, "items": 3706, "interactions": 1000209},
            columns=_cols(["user", "item", "rating", "timestamp"], ["title", "year", "genres", "text"],
                          ["age", "gender", "occupation", "zip"]),
            folder="movielens-1m", files=["ratings.dat", "movies.dat", "users.dat"], complete=True,
            notes="Not staged; `metarec download ml-1m`. users.age is the ML-1M age bucket code.",
            loader=functools.partial(movielens.load_ml1m, name="ml-1m")),
        DatasetCard(
            name="ml-1m-implicit", title="MovieLens 1M implicit (rating >= 3), LightGCN random split",
            family="movielens", source="GitHub geon0325/LightGCNpp data/ml-1m (LightGCN adjacency lists)", url=None,
            checksums={"train.txt": "sha256:dfa3a7a866feade29ca5722ac0423c1b0317ac1f6ad38a55fc1a7ceeb9cee3bb",
                       "valid.txt": "sha256:429fe0d750b304677898d7eeb1080764bbf06550b94c9508b8cc8cd0573e3dfc",
                       "test.txt": "sha256:0d58f78bbf606f401aec2efe3f519b945c458c8398955f986e03b880fbbd16a6"},
            terms=MOVIELENS_TERMS, expected={"users": 6039, "items": 3628, "interactions": 836478},
            columns=_cols(["user", "item"]), folder="movielens-1m-implicit-r3",
            files=["train.txt", "valid.txt", "test.txt"], complete=False,
            notes="PARTIAL: ratings 1-2 dropped and binarised (836,478 of 1,000,209); given random 70/10/20 "
                  "train/valid/test split; no ratings, timestamps or original ids.",
            loader=functools.partial(movielens.load_lightgcn, name="ml-1m-implicit")),
    ]
    s3rec = {"amazon-beauty": ("Beauty", "Beauty", (22363, 12101, 198502),
                               "226cce9c3105299ca0db9615d7d3fb32b3175e90da43100ae352599f0f0107b8",
                               "129e40f67486f6877eff0f5318cfa8530ee8ac23d8b0d1de04e1bb7a2ba0b2d4"),
             "amazon-sports": ("Sports_and_Outdoors", "Sports and Outdoors", (35598, 18357, 296337),
                               "2a095e0648872beb9982408958290f5d655db5be2911c3756b5446de9f0b8de2",
                               "7fb10733ac4f1811384a52144cdefa7fcc7536fa80a7232c5da9bd789155c34b"),
             "amazon-toys": ("Toys_and_Games", "Toys and Games", (19412, 11924, 167597),
                             "176c680c688d497598c4a89a03b402c0fe78d795e5db335c2e78dd5f2d778a3f",
                             "d371acd25101eedac04afc727626464b7acec770c4eda708705d51eb76eb1ad0")}
    for name, (prefix, title, (u, i, n), h_txt, h_json) in s3rec.items():
        cards.append(DatasetCard(
            name=name, title=f"Amazon {title} 5-core (2014, S3-Rec processing)", family="amazon",
            source="GitHub aHuiWang/CIKM2020-S3Rec data/", url=None,
            checksums={f"{prefix}.txt": f"sha256:{h_txt}", f"{prefix}_item2attributes.json": f"sha256:{h_json}"},
            terms=AMAZON_TERMS, expected={"users": u, "items": i, "interactions": n},
            columns=_cols(["user", "item"], ["category"]), folder="amazon-s3rec",
            files=[f"{prefix}.txt", f"{prefix}_item2attributes.json"], complete=True,
            notes="Order only (no timestamps/ratings); item category = list of S3-Rec attribute ids (str).",
            loader=functools.partial(amazon.load_s3rec, name=name, prefix=prefix)))
    cards += [
        DatasetCard(
            name="amazon-videogames", title="Amazon Video Games (2014, SASRec processing)", family="amazon",
            source="GitHub kang205/SASRec data/Video.txt", url=None,
            checksums={"Video.txt": "sha256:b7376fe24430743f411dc7f567285657b2adb3f74361cc7ba0aee94f3024b651"},
            terms=AMAZON_TERMS, expected={"users": 31013, "items": 23715, "interactions": 287107},
            columns=_cols(["user", "item"]), folder="amazon-videogames-sasrec", files=["Video.txt"], complete=True,
            notes="Order only; some users have fewer than 5 interactions (SASRec filters on raw counts).",
            loader=functools.partial(amazon.load_sasrec, name="amazon-videogames", filename="Video.txt")),
        DatasetCard(
            name="amazon-grocery", title="Amazon Grocery and Gourmet Food 5-core (2014, ReChorus), train split",
            family="amazon", source="GitHub THUwangcy/ReChorus data/Grocery_and_Gourmet_Food", url=None,
            checksums={"train.csv": "sha256:75847958fbcfec35dd0a20bda43432c22a5d7e5b5fe571fef0b25ff580b475f4",
                       "item_meta.csv": "sha256:35a7d55fb7024b3cf7937cbc424762bc1cb5ef1f41d49f5955011effcebf144c"},
            terms=AMAZON_TERMS, expected={"users": 14681, "items": 8687, "interactions": 121892},
            columns=_cols(["user", "item", "timestamp"], ["category"]), folder="amazon-grocery-rechorus",
            files=["train.csv", "item_meta.csv"], alternatives=[["train.csv"]], complete=False,
            notes="PARTIAL: ReChorus train split only (121,892 of 151,254); every user's last two interactions "
                  "are missing. category = level-2 category id ('' = unknown, nearly all).",
            loader=functools.partial(amazon.load_rechorus_grocery, name="amazon-grocery")),
        DatasetCard(
            name="amazon-scientific", title="Amazon Industrial and Scientific 5-core (2018, UniSRec processing)",
            family="amazon", source="GitHub ysh-1998/CoWPiRec dataset/Scientific (UniSRec files)", url=None,
            checksums={"Scientific.train.inter": "sha256:7284f6489d956fa20c9b64ffc84569264320edba5c3bc2fcb22db2ea083a1163",
                       "Scientific.valid.inter": "sha256:5f37c84d3b54617cdc46638c89dfe8741c7efc4987acd5eb64de2cbd4311f46c",
                       "Scientific.test.inter": "sha256:546da7e5f44002b4518d7fd58066684bc09613f76c240914e16976d57cfe7083",
                       "Scientific.text": "sha256:95887e6bda76e54f59b71b566320520d5da74e21d3b6ff8f20bfb6e8e84aa831",
                       "Scientific.item2index": "sha256:896ab1017508cf20834d3d0537da9f8f624324223a835af272a98ba16f8c087a",
                       "Scientific.user2index": "sha256:f0162b1a3a0c6b7e816f86208e7b36f65d6787923126f9558fbc6d368e4c4974"},
            terms=AMAZON_TERMS, expected={"users": 8442, "items": 4385, "interactions": 59427},
            columns=_cols(["user", "item"], ["text"]), folder="amazon-scientific-unisrec",
            files=["Scientific.train.inter", "Scientific.valid.inter", "Scientific.test.inter",
                   "Scientific.item2index", "Scientific.user2index", "Scientific.text"], complete=True,
            notes="Order only; full sequences reconstructed from the leave-one-out prefix files; given = "
                  "train/valid/test leave-one-out. Original ids are ASIN / reviewerID. "
                  "text = 'title. category path. brand.'",
            loader=functools.partial(amazon.load_unisrec, name="amazon-scientific", prefix="Scientific")),
        DatasetCard(
            name="amazon-office", title="Amazon Office Products 5-core (2014, ReChorus format from LRD)",
            family="amazon", source="GitHub ysh-1998/LRD data/Office", url=None,
            checksums={"train.csv": "sha256:015236e98589dac0801be8fe16519d95735b2efbd64bec890685297a1bc69fec",
                       "dev.csv": "sha256:f94b18e4be2f7322905b7fd152bce78e4d554cb7561426fab6855e7df07790a0",
                       "test.csv": "sha256:5b5fb42bf500ca344d565461706cdb548ebf21b371f3f871d517d8c967e63ed6",
                       "item_meta.csv": "sha256:dbefb00348f251c56d77687c1b3c369fbb35c3a48cb9fd6de25eca54f19d0c97",
                       "Office.text": "sha256:34932e3a6cd6b6d9e999608b309cfa5c6811084dc8be77a18ae89de50da7f862",
                       "Office.item2index": "sha256:4a1d4bb829f89ce23f7f8e6637238a2f9049ca28fed4e73840b36fdba479a046"},
            terms=AMAZON_TERMS, expected={"users": 4905, "items": 2420, "interactions": 53258},
            columns=_cols(["user", "item", "timestamp"], ["text", "category", "brand"]), folder="amazon-office-lrd",
            files=["train.csv", "dev.csv", "test.csv", "Office.item2index", "Office.text"], complete=True,
            notes="given = train/valid(dev)/test (last two per user); the 99 sampled negatives of dev/test are "
                  "dropped. Item ids are ASINs; user ids are ReChorus re-indexed ints. text = title category brand.",
            loader=functools.partial(amazon.load_office, name="amazon-office", prefix="Office")),
    ]
    a18 = {"amazon2018-all-beauty": ("All_Beauty", "All Beauty", (991, 85, 5269),
                                     "4a6b1eb40c4f58328f3f34181a6ef00f8e3423d801128617cc408a83c9bd0027"),
           "amazon2018-fashion": ("AMAZON_FASHION", "Amazon Fashion", (406, 31, 3176),
                                  "5c73b65d0a5cc5dcd905b75a87086c37513ff0d023b02b381e729ab8a9541cb6"),
           "amazon2018-appliances": ("Appliances", "Appliances", (47, 48, 2277),
                                     "19f1f164e7c41e5bc43c1826ddbd1ae702511be9d2870c0fa04052407ac41fa3"),
           "amazon2018-gift-cards": ("Gift_Cards", "Gift Cards", (458, 148, 2972),
                                     "41e1f0e50d3c1c9d7d949fb6315944c8bde51ea6b7429a29fdd0d02cbc07ef25"),
           "amazon2018-magazines": ("Magazine_Subscriptions", "Magazine Subscriptions", (348, 157, 2375),
                                    "95c124603d62d6acdfd1bd62284934fb6c513db836ea64c2e8176c14256426f2")}
    for name, (cat, title, (u, i, n), sha) in a18.items():
        fname = f"{cat}_5.json.gz"
        cards.append(DatasetCard(
            name=name, title=f"Amazon 2018 {title} 5-core (official review JSON)", family="amazon",
            source="Amazon Review Data 2018 (Ni, Li & McAuley), categoryFilesSmall", url=AMAZON2018 + fname,
            checksums={fname: f"sha256:{sha}"}, terms=AMAZON_TERMS,
            expected={"users": u, "items": i, "interactions": n},
            columns=_cols(["user", "item", "rating", "timestamp"], ["text"]), folder="amazon2018-5core-small",
            files=[fname], alternatives=[[f"{cat}_5.json"], [f"{cat}.csv"]], complete=True,
            notes="Tiny, dense category; duplicate review rows of the 2018 release are kept (counts = official "
                  "5-core). item text is REVIEW-DERIVED (distinct review summaries), not product metadata. "
                  f"A rating-only {cat}.csv is the full (not 5-core) ratings file and gives other counts.",
            loader=functools.partial(amazon.load_amazon2018, name=name, category=cat)))
    cards.append(DatasetCard(
        name="amazon2018-multidomain", title="Amazon 2018 5-core: the five small categories combined", family="amazon",
        source="derived: " + ", ".join(a18), url=None, checksums={}, terms=AMAZON_TERMS,
        expected={"users": sum(v[2][0] for v in a18.values()), "items": sum(v[2][1] for v in a18.values()),
                  "interactions": sum(v[2][2] for v in a18.values())},
        columns=_cols(["user", "item", "rating", "timestamp"], ["domain"], ["domain"]), folder="", files=[],
        complete=True, parts=tuple(a18),
        notes="Derived: the five categories side by side with disjoint user and item ids per category (a reviewer in "
              "two categories is two users); item_features.domain names the category. Needs all five staged.",
        loader=None))
    sample_note = ("sample of 5,000 impressions of MIND-small train (2,000 news, ~3.7% of referenced news have "
                   "text); not comparable to published MIND results")
    cards.append(DatasetCard(
        name="mind-sample", title="MIND-small train, random 5,000-impression sample", family="mind",
        source="GitHub Farabi667/AI-Term-Project MINDsmall_train/", url=None,
        checksums={"behaviors.tsv": "sha256:2a101e15ce197ba488abffb91d337bd069823011838de14dacc46a26c91484a5",
                   "news.tsv": "sha256:317a322c7b70518fb91ca08d937d1ec77a8b12fb9e28db5fc90374af16b354bf"},
        terms=MIND_TERMS,
        expected={"users": 4637, "items": 22592, "interactions": 136952, "impressions": 5000,
                  "impression_candidates": 189359, "clicks": 7542},
        columns=["impression", "user", "item", "label", "timestamp", "item.category", "item.subcategory",
                 "item.title", "item.abstract", "item.text"],
        folder="mind-small-train-sample", files=["behaviors.tsv", "news.tsv"], complete=False, notes=sample_note,
        loader=functools.partial(mind.load_mind, name="mind-sample", sample=True, note=sample_note)))
    for size, base in (("small", MIND_BLOB), ("large", MIND_BLOB), ("demo", MIND_DEMO)):
        prefix = f"MIND{size}"
        cards.append(DatasetCard(
            name=f"mind-{size}", title=f"MIND-{size} (train + dev)", family="mind",
            source="Microsoft News Dataset (msnews.github.io)", url=base + f"{prefix}_train.zip", checksums={},
            terms=MIND_TERMS, expected={},
            columns=["impression", "user", "item", "label", "timestamp", "part", "item.category",
                     "item.subcategory", "item.title", "item.abstract", "item.text"],
            folder=f"mind-{size}",
            files=[f"{prefix}_train/behaviors.tsv", f"{prefix}_train/news.tsv",
                   f"{prefix}_dev/behaviors.tsv", f"{prefix}_dev/news.tsv"],
            alternatives=[[f"{prefix}_train/behaviors.tsv", f"{prefix}_train/news.tsv"],
                          ["behaviors.tsv", "news.tsv"]],
            urls=[base + f"{prefix}_train.zip", base + f"{prefix}_dev.zip"], complete=True,
            notes="Not staged. Official train + dev parts (impressions.part says which); the test part "
                  "(MIND-large, unlabeled) is not loaded. Expected counts unknown to metarec (never loaded here).",
            loader=functools.partial(mind.load_mind, name=f"mind-{size}", prefix=prefix)))
    return cards


_CARDS: dict[str, DatasetCard] = {c.name: c for c in _cards()}


def list_cards() -> list[DatasetCard]:
    return list(_CARDS.values())


def get_card(name: str) -> DatasetCard:
    try:
        return _CARDS[name]
    except (KeyError, TypeError):
        raise UnknownNameError("dataset", name, _CARDS) from None


# ---------------------------------------------------------------------------------------------------------------
# where files are
# ---------------------------------------------------------------------------------------------------------------
def repo_root() -> Path:
    import metarec

    return Path(metarec.__file__).resolve().parents[1]


def data_roots() -> list[Path]:
    """Candidate data roots in search order: $METAREC_DATA, <repo>/datasets, <repo>/../shared/datasets."""
    roots: list[Path] = []
    env = os.environ.get("METAREC_DATA", "")
    roots += [Path(p).expanduser() for p in env.split(os.pathsep) if p.strip()]
    repo = repo_root()
    roots += [repo / "datasets", repo.parent / "shared" / "datasets"]
    out, seen = [], set()
    for r in roots:
        key = os.path.normpath(str(r))
        if key not in seen:
            seen.add(key)
            out.append(r)
    return out


def default_root() -> Path:
    """Where downloads go: the first $METAREC_DATA entry, else <repo>/datasets."""
    env = [p for p in os.environ.get("METAREC_DATA", "").split(os.pathsep) if p.strip()]
    return Path(env[0]).expanduser() if env else repo_root() / "datasets"


def recbole_ml100k() -> Path | None:
    spec = importlib.util.find_spec("recbole")
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        d = Path(loc) / "dataset_example" / "ml-100k"
        if d.is_dir():
            return d
    return None


def _has_layout(d: Path, card: DatasetCard) -> bool:
    return d.is_dir() and any(all((d / f).is_file() for f in layout) for layout in card.layouts)


def candidate_folders(name: str, root: str | Path | None = None) -> list[Path]:
    """Folders ``locate`` checks, in order. An explicit ``root`` may be a data root or the dataset folder itself."""
    card = get_card(name)
    out: list[Path] = []
    if root is not None:
        root = Path(root).expanduser()
        out += [root, root / card.folder, root / card.name]
    else:
        for r in data_roots():
            out += [r / card.folder, r / card.name]
        if name == "ml-100k":
            wheel = recbole_ml100k()
            if wheel is not None:
                out.append(wheel)
    uniq, seen = [], set()
    for d in out:
        if str(d) not in seen:
            seen.add(str(d))
            uniq.append(d)
    return uniq


def locate(name: str, root: str | Path | None = None) -> Path | None:
    """The first candidate folder that holds all files of one accepted layout, or None. A derived dataset is
    present when all its parts are (its folder is its first part's)."""
    card = get_card(name)
    if card.parts:
        found = [locate(p, root) for p in card.parts]
        return found[0] if all(f is not None for f in found) else None
    for d in candidate_folders(name, root):
        if _has_layout(d, card):
            return d
        _check_not_partial(d, card, root)
    return None


def _check_not_partial(d: Path, card: DatasetCard, root) -> None:
    """A folder holding some but not all files of every accepted layout is an error, never skipped in favour of
    another copy further down the search path: the user would get a different dataset than the one staged."""
    if not d.is_dir():
        return
    started = [layout for layout in card.layouts if any((d / f).is_file() for f in layout)]
    if started:
        best = min(started, key=lambda layout: sum(not (d / f).is_file() for f in layout))
        missing = [f for f in best if not (d / f).is_file()]
        raise DataError(f"incomplete copy of dataset {card.name!r}: missing {', '.join(missing)} (it has "
                        f"{', '.join(f for f in best if (d / f).is_file())}); complete it or move the folder away "
                        f"(other copies are not used in its place). To get the files, {_how_to_get(card, root)}.", d)


def _how_to_get(card: DatasetCard, root) -> str:
    dest = (Path(root).expanduser() if root is not None else default_root()) / card.folder
    if card.download_urls:
        return (f"run `metarec download {card.name}` (fetches {', '.join(card.download_urls)}) or place the files "
                f"in {dest}")
    return (f"obtain them from {card.source} (they cannot be downloaded automatically) and place them in {dest} "
            f"(or point $METAREC_DATA at a folder containing {card.folder}/)")


def _not_found(card: DatasetCard, root) -> DataError:
    if card.parts:
        missing = [p for p in card.parts if locate(p, root) is None]
        return DataError(f"dataset {card.name!r} combines {', '.join(card.parts)}; not staged: {', '.join(missing)} "
                         f"(`metarec datasets` says where each goes)")
    looked = []
    for d in candidate_folders(card.name, root):
        if not d.is_dir():
            looked.append(f"{d} (no such folder)")
        else:
            missing = min(([f for f in layout if not (d / f).is_file()] for layout in card.layouts), key=len)
            looked.append(f"{d} (missing {', '.join(missing)})")
    need = " or ".join("{" + ", ".join(layout) + "}" for layout in card.layouts)
    return DataError(f"dataset {card.name!r} not found: needs {need}; looked in: {'; '.join(looked)}. "
                     f"To get the files, {_how_to_get(card, root)}.")


# ---------------------------------------------------------------------------------------------------------------
# loading (cached)
# ---------------------------------------------------------------------------------------------------------------
def counts(ds: Dataset) -> dict[str, int]:
    out = {"users": ds.n_users, "items": ds.n_items, "interactions": ds.n_interactions}
    if ds.impressions is not None:
        out["impressions"] = int(ds.impressions["impression"].nunique())
        out["impression_candidates"] = len(ds.impressions)
        out["clicks"] = int(ds.impressions[LABEL].sum())
    return out


_LOADED: dict[tuple[str, str], dict[str, int]] = {}


def _stamp(card: DatasetCard, folder: Path) -> tuple:
    files = sorted({f for layout in card.layouts for f in layout} | {p.name for p in folder.iterdir()
                                                                       if p.is_file()})
    out = []
    for f in files:
        p = folder / f
        if p.is_file():
            st = p.stat()
            out.append((f, st.st_mtime_ns, st.st_size))
    return tuple(out)


@functools.lru_cache(maxsize=12)
def _load_cached(name: str, folder: str, stamp: tuple, min_rating, k_core) -> Dataset:
    card = get_card(name)
    if min_rating is None and not k_core:
        ds = card.loader(Path(folder))
        ds.meta.setdefault("dataset", name)
        ds.meta.setdefault("complete", card.complete)
        ds.validate()
        _LOADED[(name, folder)] = counts(ds)
        return ds
    return preprocess(_load_cached(name, folder, stamp, None, None), min_rating=min_rating, k_core=k_core)


def load_dataset(name: str, *, root: str | Path | None = None, min_rating: float | None = None,
                 k_core: int | None = None) -> Dataset:
    """Load dataset ``name`` (see :func:`list_cards`) from the first folder that has its files, optionally
    filtered (``min_rating``, ``k_core``; see :func:`metarec.data.preprocess.preprocess`). Results are cached per
    process; every call returns an independent copy."""
    card = get_card(name)
    folder = locate(name, root)
    if folder is None:
        raise _not_found(card, root)
    if card.parts:
        from metarec.data.combine import combine

        ds = combine([load_dataset(p, root=root) for p in card.parts], name=card.name)
        ds.meta.update({"dataset": name, "complete": card.complete})
        ds.validate()
        _LOADED[(name, str(folder.resolve()))] = counts(ds)
        return preprocess(ds, min_rating=min_rating, k_core=k_core) if (min_rating is not None or k_core) else ds
    folder = folder.resolve()
    ds = _load_cached(name, str(folder), _stamp(card, folder), min_rating, k_core)
    return copy_dataset(ds)


def clear_cache() -> None:
    _load_cached.cache_clear()
    _LOADED.clear()


def status(name: str, *, root: str | Path | None = None, load: bool = False) -> dict[str, Any]:
    """{name, present, path, complete, expected, counts}; counts only if the dataset was loaded in this process
    (or ``load=True``)."""
    card = get_card(name)
    folder = locate(name, root)
    out: dict[str, Any] = {"name": name, "present": folder is not None, "path": None if folder is None else
                           str(folder), "complete": card.complete, "expected": dict(card.expected), "counts": None}
    if folder is not None:
        if load:
            load_dataset(name, root=root)
        out["counts"] = _LOADED.get((name, str(folder.resolve())))
    return out
