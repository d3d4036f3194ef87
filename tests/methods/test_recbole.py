"""RecBole baselines (recbole:<Model>): atomic files, id translation, RecBole's own metrics == metarec's evaluator.

Every fit here is one short epoch on a toy split (a few hundred rows, one CPU thread).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import metarec  # noqa: E402,F401  (compat shims)
from metarec.errors import ConfigError  # noqa: E402
from metarec.eval import Evaluator  # noqa: E402
from metarec.methods import build_method, get_method, list_methods  # noqa: E402
from metarec.methods.recbole import METHODS, MODELS, search_space  # noqa: E402
from metarec.methods.recbole.adapter import CONFIG_DIR, dataset_token, load_model_yaml, write_atomic_files  # noqa: E402
from metarec.methods.space import parse_space  # noqa: E402
from metarec.protocols import Split, get_protocol  # noqa: E402
from tests.toys import impressions_split, toy_dataset  # noqa: E402

torch.set_num_threads(1)
RANK_METRICS = ["ndcg@10", "recall@10", "mrr@10", "hit@10", "precision@10", "ndcg@20", "recall@20"]


@pytest.fixture(scope="module")
def general():
    return get_protocol("general")(toy_dataset(n_users=40, n_items=60, per_user=25), seed=0)


@pytest.fixture(scope="module")
def sequential():
    return get_protocol("sequential")(toy_dataset(n_users=30, n_items=50, per_user=16, seed=1), seed=0)


def _read_inter(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)


# ---- registry and configuration ------------------------------------------------------------------------------
def test_every_model_is_registered_with_its_yaml():
    names = list_methods()
    for model, kind in MODELS.items():
        assert names[f"recbole:{model}"] == "builtin"
        cls = get_method(f"recbole:{model}")
        assert cls.model_name == model and cls.kind == kind
        spec = load_model_yaml(model)
        assert spec["model"] == model and spec["kind"] == kind, f"{CONFIG_DIR / model}.yaml"
        for key, value in spec["params"].items():
            assert cls.defaults[key] == value
        space = parse_space(search_space(model), model, cls.defaults)  # raises on an unknown key or a bad range
        assert search_space(model) == cls.search_space
        assert bool(space) == (model != "Pop"), f"{model}: every model but Pop declares a search space"
    assert {"Pop", "ItemKNN", "BPR", "NeuMF", "LightGCN", "MultiVAE", "GRU4Rec", "SASRec", "BERT4Rec", "FM",
            "DeepFM", "WideDeep"} == set(METHODS)


def test_unknown_parameter_and_wrong_protocol(general, sequential):
    with pytest.raises(ConfigError, match="unknown parameter"):
        build_method("recbole:BPR", {"embedding_sizee": 3})
    with pytest.raises(ConfigError, match="does not support the 'general' protocol"):
        build_method("recbole:SASRec").fit(general)
    with pytest.raises(ConfigError, match="does not support the 'sequential' protocol"):
        build_method("recbole:FM").fit(sequential)
    assert get_method("recbole:BPR").protocols == ("general", "given", "temporal")


def test_dataset_token_never_hits_recbole_special_names():
    s = Split(dataset="ml-100k", protocol="general", params={}, seed=0, n_users=1, n_items=1, frames={})
    assert dataset_token(s) == "mr_ml_100k"


# ---- atomic files ---------------------------------------------------------------------------------------------
def test_general_files_list_every_item(general, tmp_path):
    rows = write_atomic_files(general, "general", tmp_path, "x")
    for stage in ("train", "valid", "test"):
        df = _read_inter(tmp_path / f"x.{stage}.inter")
        assert list(df.columns) == ["user_id:token", "item_id:token"] and len(df) == rows[stage]
        f = general.frames[stage]
        assert np.array_equal(df["user_id:token"].astype(int), f.user)
        assert np.array_equal(df["item_id:token"].astype(int), f.item)
    items = _read_inter(tmp_path / "x.item")["item_id:token"].astype(int)
    assert np.array_equal(items, np.arange(general.n_items))


def test_sequential_files_are_prefixes_of_the_ordered_split(sequential, tmp_path):
    L = 5
    write_atomic_files(sequential, "sequential", tmp_path, "x", max_len=L)
    train = _read_inter(tmp_path / "x.train.inter")
    u = int(sequential.valid.user.iloc[0])
    seq = sequential.train[sequential.train.user == u].item.to_numpy()
    mine = train[train["user_id:token"] == str(u)]
    assert len(mine) == len(seq) - 1  # every prefix -> next item
    for j, (_, row) in enumerate(mine.iterrows(), start=1):
        assert row["item_id:token"] == str(seq[j])
        assert row["item_id_list:token_seq"].split() == [str(i) for i in seq[max(0, j - L):j]]
    v_item = int(sequential.valid[sequential.valid.user == u].item.iloc[0])
    valid = _read_inter(tmp_path / "x.valid.inter").set_index("user_id:token").loc[str(u)]
    test = _read_inter(tmp_path / "x.test.inter").set_index("user_id:token").loc[str(u)]
    assert valid["item_id_list:token_seq"].split() == [str(i) for i in seq[-L:]]
    assert test["item_id_list:token_seq"].split() == [str(i) for i in np.r_[seq, v_item][-L:]]
    assert int(test["item_id:token"]) == int(sequential.test[sequential.test.user == u].item.iloc[0])


# ---- training: general -----------------------------------------------------------------------------------------
def test_bpr_recbole_metrics_equal_metarec_evaluator(general, tmp_path, monkeypatch):
    """Same split, same masks (valid: train; test: train + valid), no ties: RecBole's own full-sort metrics and
    metarec's evaluator on the scores that came back through full_sort_predict agree to 1e-4."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    m = build_method("recbole:BPR", {"epochs": 1, "train_batch_size": 256, "learning_rate": 0.01})
    m.fit(general, seed=0, workdir=tmp_path / "run")
    assert not any(cwd.iterdir()), "RecBole wrote into the working directory"
    assert os.environ.get("CUDA_VISIBLE_DEVICES") == env
    assert not hasattr(np, "float")  # RecBole's numpy aliases do not leak out of the run
    root = tmp_path / "run" / "recbole"
    assert list((root / "saved").glob("BPR-*.pth")) and list((root / "log").glob("BPR-*.log"))
    assert list((root / "log_tensorboard").iterdir())
    assert m.epochs_trained == 1 and m.best_epoch == 0 and m.num_parameters() == (40 + 1 + 60 + 1) * 64

    scores = m.score(torch.tensor([3, 0, 7]))
    assert scores.shape == (3, general.n_items) and torch.isfinite(scores).all()
    ev = Evaluator(general, metrics=RANK_METRICS)
    for stage, theirs in (("test", m.recbole_test_result), ("valid", m.recbole_valid_result)):
        ours = ev.evaluate(m, stage).means
        for name in RANK_METRICS:
            assert ours[name] == pytest.approx(theirs[name], abs=1e-4), (stage, name)


@pytest.mark.parametrize("model", ["ItemKNN", "LightGCN", "MultiVAE"])
def test_other_full_sort_models_agree_with_recbole(model, general, tmp_path):
    m = build_method(f"recbole:{model}", {"epochs": 1}).fit(general, seed=0, workdir=tmp_path)
    ours = Evaluator(general, metrics=RANK_METRICS).evaluate(m, "test").means
    for name in RANK_METRICS:
        assert ours[name] == pytest.approx(m.recbole_test_result[name], abs=1e-4), name


def test_scores_follow_metarec_item_order(general, tmp_path):
    """Column j of score() is metarec item j: compare with RecBole's own model call on RecBole ids."""
    from recbole.data.interaction import Interaction

    from metarec.compat import recbole_runtime

    m = build_method("recbole:BPR", {"epochs": 1}).fit(general, seed=1, workdir=tmp_path)
    ds = m._dataset
    u = 5
    with recbole_runtime(), torch.no_grad():
        rb_u = ds.field2token_id["user_id"][str(u)]
        theirs = m._model.full_sort_predict(Interaction({"user_id": torch.tensor([rb_u])})).view(-1)
    ours = m.score(torch.tensor([u]))[0]
    for item in (0, 1, 17, general.n_items - 1):
        assert ours[item] == pytest.approx(float(theirs[ds.field2token_id["item_id"][str(item)]]))


def test_pop_counts_every_training_interaction(general, tmp_path):
    m = build_method("recbole:Pop").fit(general, seed=0, workdir=tmp_path)
    counts = np.bincount(general.train.item, minlength=general.n_items)
    s = m.score(torch.tensor([0, 1]))
    assert s.shape == (2, general.n_items)
    # RecBole's Pop returns count / max count; with the compat fix the counts are exact whatever the batch size
    np.testing.assert_allclose(s[0].numpy() * counts.max(), counts, rtol=1e-6)
    assert m.recbole_test_result["ndcg@10"] > 0


def test_unknown_user_gets_popularity(general, tmp_path):
    frames = dict(general.frames)
    frames["train"] = general.train[general.train.user != 2]
    for stage in ("valid", "test"):
        frames[stage] = general.frames[stage][general.frames[stage].user != 2]
    split = Split(dataset="toy", protocol="general", params={}, seed=0, n_users=general.n_users,
                  n_items=general.n_items, frames=frames)
    m = build_method("recbole:BPR", {"epochs": 1}).fit(split, seed=0, workdir=tmp_path)
    s = m.score(torch.tensor([2, 3]))
    np.testing.assert_array_equal(s[0].numpy(), np.bincount(frames["train"].item, minlength=split.n_items))
    assert m.unknown_users_scored == 1


# ---- training: sequential --------------------------------------------------------------------------------------
def _unmasked_ndcg_hit(scores: torch.Tensor, targets: np.ndarray, k: int = 10):
    rank = (scores > scores[torch.arange(len(targets)), torch.from_numpy(targets)].unsqueeze(1)).sum(1).numpy()
    ndcg = np.where(rank < k, 1.0 / np.log2(rank + 2.0), 0.0)
    return ndcg.mean(), (rank < k).mean()


def test_sasrec_one_epoch_and_histories_match_recbole(sequential, tmp_path):
    m = build_method("recbole:SASRec", {"epochs": 1, "train_batch_size": 256})
    m.fit(sequential, seed=0, workdir=tmp_path)
    assert m.epochs_trained == 1 and len(m.epoch_times) == 1
    ev = Evaluator(sequential, metrics=["ndcg@10", "hit@10"])
    res = ev.evaluate(m, "test")
    assert res.n_users == sequential.test.user.nunique() and 0 <= res.means["ndcg@10"] <= 1
    # RecBole's sequential full sort masks nothing (repeatable); metarec masks known items. On the raw scores,
    # RecBole's unmasked definition reproduces its own numbers: same histories, same ids, same model.
    for stage, theirs in (("test", m.recbole_test_result), ("valid", m.recbole_valid_result)):
        frame = sequential.frames[stage]
        m.set_stage(stage)
        scores = m.score(torch.from_numpy(frame.user.to_numpy()))
        ndcg, hit = _unmasked_ndcg_hit(scores, frame.item.to_numpy())
        assert ndcg == pytest.approx(theirs["ndcg@10"], abs=1e-4) and hit == pytest.approx(theirs["hit@10"], abs=1e-4)
    # inside the evaluator the stage is the evaluator's, whatever set_stage said last
    m.set_stage("valid")
    a = ev.evaluate(m, "valid").means
    m.set_stage("test")
    assert ev.evaluate(m, "valid").means == a
    assert m.stage == "test"               # the evaluator restores the stage it found
    m.set_stage(None)
    assert ev.evaluate(m, "valid").means == a and m.stage is None


# ---- training: context-aware (impressions) ---------------------------------------------------------------------
def test_fm_on_impressions_scores_pairs(tmp_path):
    split = impressions_split()
    m = build_method("recbole:FM", {"epochs": 1}).fit(split, seed=0, workdir=tmp_path)
    item_file = _read_inter(next((tmp_path / "recbole" / "data").glob("*/*.item")))
    assert list(item_file.columns) == ["item_id:token", "category:token", "subcategory:token"]
    assert item_file["category:token"].iloc[1] == "c_1" and item_file["subcategory:token"].iloc[0] == "none"
    assert set(m.recbole_test_result) == {"auc", "logloss"}
    u, i = torch.tensor([0, 1, 1]), torch.tensor([3, 4, 39])
    p = m.score_pairs(u, i)
    assert p.shape == (3,) and ((p > 0) & (p < 1)).all()
    assert torch.allclose(m.score(torch.tensor([1]))[0, [4, 39]], p[1:])
    res = Evaluator(split).evaluate(m, "test")
    assert res.mode == "impressions" and 0 <= res.means["auc"] <= 1


def test_context_model_on_a_ranking_protocol_reads_side_information(general, tmp_path):
    """On a ranking protocol a context-aware model trains on sampled negatives and ranks all items with predict();
    list-valued item features become token_seq fields, user features tokens. RecBole's metrics == metarec's."""
    rng = np.random.default_rng(0)
    genres = [list(rng.choice(["Drama", "Film Noir", "Comedy"], int(rng.integers(0, 3)), replace=False))
              for _ in range(general.n_items)]
    split = Split(dataset="toy", protocol="general", params={}, seed=0, n_users=general.n_users,
                  n_items=general.n_items, frames=general.frames,
                  item_features=pd.DataFrame({"title": "t", "genres": genres}),
                  user_features=pd.DataFrame({"gender": ["M", "F"] * (general.n_users // 2), "age": 25.0}))
    m = build_method("recbole:FM", {"epochs": 1}).fit(split, seed=0, workdir=tmp_path)
    folder = next((tmp_path / "recbole" / "data").iterdir())
    items = _read_inter(next(folder.glob("*.item")))
    users = _read_inter(next(folder.glob("*.user")))
    assert list(items.columns) == ["item_id:token", "genres:token_seq"]
    assert items["genres:token_seq"].iloc[0] == " ".join(g.replace(" ", "_") for g in genres[0])
    assert list(users.columns) == ["user_id:token", "gender:token", "age:token"] and users["age:token"].iloc[0] == "25"
    assert m._config["train_neg_sample_args"]["sample_num"] == 1 and m._config["valid_metric"] == "NDCG@10"
    assert m._dataset.num("genres") == 4  # 3 genres + padding
    ours = Evaluator(split, metrics=RANK_METRICS).evaluate(m, "test").means
    for name in RANK_METRICS:
        assert ours[name] == pytest.approx(m.recbole_test_result[name], abs=1e-4), name


def test_a_missing_or_broken_model_config_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match=r"Nope.yaml: RecBole config for Nope not found"):
        load_model_yaml("Nope", tmp_path)
    (tmp_path / "Bad.yaml").write_text("params: [1, 2\n")
    with pytest.raises(ConfigError, match=r"Bad.yaml:\d+: not valid YAML"):
        load_model_yaml("Bad", tmp_path)
    (tmp_path / "Odd.yaml").write_text("params: [1, 2]\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_model_yaml("Odd", tmp_path)
    (tmp_path / "Ok.yaml").write_text("params: {a: 1}\nsearch: {a: [1, 2]}\n")
    assert load_model_yaml("Ok", tmp_path)["search"] == {"a": [1, 2]}
