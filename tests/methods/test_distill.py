"""Distillation family: KD losses, frozen-teacher gradients, the teacher cache, the offline text teacher and the
DistilBERT text student, and fit/score shapes of every registered distill method on tiny splits."""
from __future__ import annotations

import json

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from metarec.errors import ConfigError
from metarec.methods import build_method, get_method, list_methods
from metarec.methods.distill import losses
from metarec.methods.distill.backbones import (BagTwoTower, SeqEncoder, interaction_matrix, last_window,
                                               training_chunks, user_sequences)
from metarec.methods.distill.module import DistillModule, FrozenTeacher
from metarec.protocols import get_protocol
from tests.toys import toy_dataset

torch.set_num_threads(1)

NAMES = ["distill:teacher", "distill:student", "distill:kd-soft", "distill:kd-rd", "distill:kd-rrd",
         "distill:text-teacher", "distill:text-student", "distill:text-student-alone"]
FAST = {"max_epochs": 2, "eval_every": 1, "progress_bar": False, "max_len": 8, "batch_size": 16}


def _toy_kd_k(name: str) -> dict:
    """RD and RRD rank the teacher's top ``kd_k`` items (default 50): the toy catalogue has 30."""
    return {} if name == "distill:kd-soft" else {"kd_k": 10}


def with_text(split):
    """A copy of ``split`` whose items have text, except every fifth item (no text)."""
    import copy

    s = copy.copy(split)
    words = ["action", "comedy", "drama", "space", "love", "war", "robot", "music"]
    s.item_features = pd.DataFrame({"text": ["" if i % 5 == 0 else f"{words[i % 8]} film number {i}"
                                             for i in range(split.n_items)]})
    return s


@pytest.fixture()
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("METAREC_HOME", str(tmp_path))
    return tmp_path


# ---- losses -----------------------------------------------------------------------------------------------------
def test_soft_kd_is_zero_iff_student_equals_teacher():
    g = torch.Generator().manual_seed(0)
    t = torch.randn(7, 50, generator=g)
    s = t.clone().requires_grad_(True)
    loss = losses.soft_kd(s, t, temperature=2.0)
    loss.backward()
    assert abs(loss.item()) < 1e-6
    assert s.grad.abs().max() < 1e-6
    # a per-row constant shift leaves the softmax, hence the loss, unchanged
    assert abs(losses.soft_kd(t + 3.0, t).item()) < 1e-5
    assert losses.soft_kd(torch.randn(7, 50, generator=g), t).item() > 0.1


def test_rank_losses_prefer_the_teachers_order():
    g = torch.Generator().manual_seed(1)
    t = torch.randn(5, 40, generator=g)
    for fn in (lambda s: losses.rd(s, t, k=5), lambda s: losses.rrd(s, t, k=5)):
        same, reversed_ = fn(t * 3), fn(-t * 3)
        assert same < reversed_
        # a few gradient steps from a random student move it towards the teacher's top-5
        s = torch.randn(5, 40, generator=g).requires_grad_(True)
        opt = torch.optim.SGD([s], lr=5.0)
        before = fn(s).item()
        for _ in range(30):
            opt.zero_grad()
            fn(s).backward()
            opt.step()
        assert fn(s).item() < before
        overlap = [len(set(a.tolist()) & set(b.tolist())) for a, b in zip(s.topk(5).indices, t.topk(5).indices)]
        assert np.mean(overlap) >= 4


def test_rd_excludes_the_hard_target_and_rrd_matches_a_direct_formula():
    t = torch.tensor([[5.0, 4.0, 3.0, 0.0, -1.0]])
    s = torch.tensor([[0.5, 1.0, -0.5, 2.0, 0.0]])
    # excluding item 0 makes items 1, 2 the teacher's top-2
    w = losses.rank_weights(2, 5.0)
    logp = torch.log_softmax(s, -1)[0]
    assert torch.isclose(losses.rd(s, t, k=2, exclude=torch.tensor([0])), -(w[0] * logp[1] + w[1] * logp[2]))
    # rrd with K = 2: top = (0, 1), rest = (2, 3, 4)
    e = s[0].exp()
    rest = e[2:].sum()
    direct = -((s[0, 0] - torch.log(e[0] + e[1] + rest)) + (s[0, 1] - torch.log(e[1] + rest))) / 2
    assert torch.isclose(losses.rrd(s, t, k=2), direct)


def test_rank_losses_take_the_teachers_top_k_among_unmasked_items():
    t = torch.tensor([[5.0, 4.0, 3.0, 2.0, -1.0], [0.0, 1.0, 2.0, 3.0, 4.0]])
    s = torch.randn(2, 5)
    mask = torch.tensor([[True, False, True, False, False], [False, False, False, True, True]])
    top = torch.tensor([[1, 3], [2, 1]])          # each row's top-2 once its masked items are out
    assert torch.equal(losses._teacher_topk(t, 2, mask), top)
    assert torch.isclose(losses.rd(s, t, k=2, exclude=mask), losses.rd(s, None, top=top))
    assert torch.isclose(losses.rrd(s, t, k=2, exclude=mask), losses.rrd(s, None, top=top))
    assert not torch.isclose(losses.rrd(s, t, k=2), losses.rrd(s, None, top=top))


def test_general_rank_kd_never_distills_a_users_training_items(gen_split):
    torch.manual_seed(0)
    teacher = FrozenTeacher(_module(gen_split, 16, 2))
    for kd in ("rd", "rrd"):
        student = _module(gen_split, 8, 1, kd=kd, kd_weight=1.0, teacher=teacher, kd_k=5).eval()
        users = torch.arange(6)
        logits, _, t_logits, exclude, _ = student.forward_train((users,))
        bag = torch.from_numpy(student.train_matrix[users.numpy()].toarray()) > 0
        assert torch.equal(exclude, bag)
        top = t_logits.masked_fill(bag, float("-inf")).topk(5).indices
        assert not bag.gather(1, top).any()
        expect = losses.rd(logits, None, top=top, lam=student.rd_lambda) if kd == "rd" else losses.rrd(logits, None,
                                                                                                      top=top)
        assert torch.isclose(student.kd_loss(logits, t_logits, exclude), expect)


def test_embedding_loss_zero_when_equal_and_masks_items_without_text():
    t = torch.randn(6, 8)
    assert losses.emb_mse(t.clone(), t).item() == 0.0
    s = t.clone()
    s[2] += 10.0                                   # a wildly wrong row that is masked out
    mask = torch.tensor([True, True, False, True, True, True])
    assert losses.emb_mse(s, t, mask).item() == 0.0
    assert losses.emb_mse(s, t).item() > 1.0
    assert losses.emb_mse(s, t, torch.zeros(6, dtype=torch.bool)).item() == 0.0


# ---- data shaping ----------------------------------------------------------------------------------------------
def test_sequence_chunks_have_a_loss_at_every_position():
    seqs = [np.array([3, 1, 4, 1, 5, 9, 2]), np.array([7]), np.array([2, 6])]
    inputs, targets, users = training_chunks(seqs, max_len=4)
    # user 0: 6 (input, target) positions -> chunks of 4 and 2 cut from the end; user 1 has none; user 2 one
    assert users.tolist() == [0, 0, 2]
    assert inputs[0].tolist() == [1 + 4, 1 + 1, 1 + 5, 1 + 9] and targets[0].tolist() == [1, 5, 9, 2]
    assert inputs[1].tolist() == [1 + 3, 1 + 1, 0, 0] and targets[1].tolist() == [1, 4, -1, -1]
    assert int((targets >= 0).sum()) == 6 + 1
    seq, length = last_window(seqs, 4)
    assert seq[0].tolist() == [2, 6, 10, 3] and length.tolist() == [4, 1, 2]


def test_causal_encoder_never_looks_ahead():
    torch.manual_seed(0)
    enc = SeqEncoder(20, dim=16, n_layers=2, n_heads=2, max_len=6, dropout=0.0).eval()
    table = enc.items()
    a = torch.tensor([[1, 2, 3, 4, 5, 6]])
    b = torch.tensor([[1, 2, 3, 9, 9, 9]])
    ha, hb = enc.hidden(a, table), enc.hidden(b, table)
    assert torch.allclose(ha[:, :3], hb[:, :3], atol=1e-5)
    assert not torch.allclose(ha[:, 3], hb[:, 3], atol=1e-3)


# ---- frozen teacher ---------------------------------------------------------------------------------------------
def _module(split, dim, layers, **kw):
    if split.protocol == "sequential":
        bb = SeqEncoder(split.n_items, dim=dim, n_layers=layers, n_heads=2, max_len=8, dropout=0.1)
        hist = {s: last_window(user_sequences(split.known(s), split.n_users), 8) for s in ("valid", "test")}
        return DistillModule(bb, histories=hist, **kw)
    bb = BagTwoTower(split.n_items, dim=dim, n_layers=layers)
    hist = {s: interaction_matrix(split.known(s), split.n_users, split.n_items) for s in ("valid", "test")}
    return DistillModule(bb, histories=hist, train_matrix=interaction_matrix(split.train, split.n_users,
                                                                             split.n_items), **kw)


@pytest.mark.parametrize("protocol", ["sequential", "general"])
@pytest.mark.parametrize("kd", ["soft", "rd", "rrd"])
def test_gradients_reach_the_student_and_never_the_teacher(seq_split, gen_split, protocol, kd):
    split = seq_split if protocol == "sequential" else gen_split
    torch.manual_seed(0)
    teacher = FrozenTeacher(_module(split, 16, 2))
    before = {k: v.clone() for k, v in teacher.module.state_dict().items()}
    student = _module(split, 8, 1, kd=kd, kd_weight=1.0, teacher=teacher)
    # the teacher is not a registered child: not in the student's parameters, state dict or optimizer
    assert not any(p is q for p in student.parameters() for q in teacher.module.parameters())
    assert not any(k.startswith("teacher") or "_teacher" in k for k in student.state_dict())
    if protocol == "sequential":
        inputs, targets, _ = training_chunks(user_sequences(split.train, split.n_users), 8)
        batch = (inputs[:6], targets[:6])
    else:
        batch = (torch.arange(6),)
    logits, hard, t_logits, exclude, _ = student.forward_train(batch)
    kd_loss = student.kd_loss(logits, t_logits, exclude)
    assert not t_logits.requires_grad and logits.requires_grad
    (hard + kd_loss).backward()
    assert all(p.grad is None and not p.requires_grad for p in teacher.module.parameters())
    grads = [p.grad for p in student.backbone.parameters()]
    assert sum(g is not None and bool(g.abs().sum() > 0) for g in grads) >= len(grads) - 1  # (+pad row)
    # the KD term alone also moves the student
    student.zero_grad()
    logits, _, t_logits, exclude, _ = student.forward_train(batch)
    student.kd_loss(logits, t_logits, exclude).backward()
    assert student.backbone.items.emb.weight.grad.abs().sum() > 0
    after = teacher.module.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_precomputed_teacher_topk_gives_the_same_rank_losses(seq_split):
    torch.manual_seed(0)
    teacher = FrozenTeacher(_module(seq_split, 16, 2))
    inputs, targets, _ = training_chunks(user_sequences(seq_split.train, seq_split.n_users), 8)
    for kd in ("rd", "rrd"):
        torch.manual_seed(1)
        student = _module(seq_split, 8, 1, kd=kd, kd_weight=1.0, teacher=teacher).eval()
        top = teacher.seq_topk(inputs, targets, 10, exclude_target=kd == "rd")
        valid = targets >= 0
        assert top.shape == (*inputs.shape, 10)
        logits, _, t_logits, exclude, _ = student.forward_train((inputs, targets))
        on_the_fly = student.kd_loss(logits, t_logits, exclude)
        logits2, _, t2, exclude2, _ = student.forward_train((inputs, targets, top))
        assert t2 is None and student._top.shape == (int(valid.sum()), 10)
        assert torch.allclose(on_the_fly, student.kd_loss(logits2, t2, exclude2, student._top), atol=1e-5)
        if kd == "rd":   # the position's own target is never among its extra positives
            assert not (top[valid] == targets[valid].unsqueeze(1)).any()


def test_kd_is_zero_when_the_student_is_the_teacher(seq_split):
    torch.manual_seed(0)
    teacher = FrozenTeacher(_module(seq_split, 16, 1))
    student = _module(seq_split, 16, 1, kd="soft", kd_weight=1.0, teacher=teacher)
    student.load_state_dict(teacher.module.state_dict())
    student.eval()   # no dropout: the same function as the teacher
    inputs, targets, _ = training_chunks(user_sequences(seq_split.train, seq_split.n_users), 8)
    logits, _, t_logits, exclude, _ = student.forward_train((inputs[:5], targets[:5]))
    assert student.kd_loss(logits, t_logits, exclude).item() < 1e-5


# ---- registered methods ------------------------------------------------------------------------------------------
def test_every_distill_method_is_registered_in_the_distill_family():
    names = list_methods()
    for n in NAMES:
        assert names[n] == "builtin"
        cls = get_method(n)
        assert cls.family == "distill" and set(cls.protocols) == {"sequential", "general"}


def test_teacher_is_trained_once_and_loaded_by_students(seq_split, home, tmp_path):
    from metarec.methods.distill.teachers import teacher_folder

    tparams = {k: v for k, v in FAST.items()}
    teacher = build_method("distill:teacher", {**tparams, "dim": 16, "n_layers": 2})
    teacher.fit(seq_split, seed=0, workdir=tmp_path / "t")
    assert teacher.teacher_meta["cached"] is False
    teachers = home / "artifacts" / "teacher"
    ckpts = list(teachers.glob("*/teacher.pt"))
    assert len(ckpts) == 1 and not list(teachers.glob(".tmp-*"))  # no temporary left behind
    assert json.loads((ckpts[0].parent / "meta.json").read_text())["identity"]["split"] == seq_split.fingerprint
    mtime = ckpts[0].stat().st_mtime_ns
    sparams = {**FAST, "dim": 8, "teacher_dim": 16, "teacher_max_epochs": 2, "teacher_eval_every": 1}
    scores = {}
    for name in ("distill:kd-soft", "distill:kd-rd", "distill:kd-rrd"):
        m = build_method(name, {**sparams, **_toy_kd_k(name)})
        m.fit(seq_split, seed=0, workdir=tmp_path / name)
        assert m.teacher_meta["cached"] is True                        # loaded, not retrained
        s = m.score(torch.arange(seq_split.n_users))
        assert s.shape == (seq_split.n_users, seq_split.n_items) and torch.isfinite(s).all()
        assert m.num_parameters() < teacher.num_parameters() / 2      # the teacher is not counted
        scores[name] = s
    assert ckpts[0].stat().st_mtime_ns == mtime and len(list(teachers.glob("*/teacher.pt"))) == 1
    # the teacher row reloads the same checkpoint and scores identically
    again = build_method("distill:teacher", {**tparams, "dim": 16, "n_layers": 2}).fit(seq_split, seed=0)
    assert again.teacher_meta["cached"] is True
    u = torch.arange(5)
    assert torch.allclose(again.score(u), teacher.score(u))
    assert teacher_folder(seq_split, "distill:teacher", again.params, 0) == ckpts[0].parent
    # a different seed is a different teacher
    assert teacher_folder(seq_split, "distill:teacher", again.params, 1) != ckpts[0].parent


def test_sequential_scores_read_the_stage_history(seq_split, home):
    from metarec.eval import Evaluator

    m = build_method("distill:student", {**FAST, "dim": 8}).fit(seq_split, seed=0)
    users = torch.arange(seq_split.n_users)
    m.set_stage("valid")
    sv = m.score(users)
    m.set_stage("test")
    st = m.score(users)
    assert not torch.allclose(sv, st)      # the test history includes the valid item
    m.set_stage(None)                      # the evaluator sets its own stage (and restores None after)
    res = Evaluator(seq_split, metrics=["ndcg@10"]).evaluate(m, stage="valid")
    assert m.stage is None
    with pytest.raises(ValueError, match="stage must be one of"):
        m.set_stage("train")
    ev = Evaluator(seq_split, metrics=["ndcg@10"]).evaluate_scores(sv, stage="valid")
    assert res.means["ndcg@10"] == pytest.approx(ev.means["ndcg@10"])


@pytest.mark.parametrize("name", ["distill:student", "distill:kd-soft"])
def test_general_fit_and_score(gen_split, home, name):
    m = build_method(name, {**FAST, "dim": 8, "teacher_dim": 16, "teacher_max_epochs": 2, "teacher_eval_every": 1}
                     if name != "distill:student" else {**FAST, "dim": 8})
    m.fit(gen_split, seed=0)
    s = m.score(torch.tensor([0, 3, 5]))
    assert s.shape == (3, gen_split.n_items) and torch.isfinite(s).all()


@pytest.mark.parametrize("name", ["distill:kd-soft", "distill:kd-rd", "distill:kd-rrd"])
def test_a_student_builds_for_scoring_without_its_teacher(seq_split, name):
    """(a model built from its configuration can be scored, e.g. to time inference) — but refuses to train without one."""
    m = build_method(name, {**FAST, "dim": 8, **_toy_kd_k(name)})
    m.prepare(seq_split, 0)
    m.set_stage("test")
    assert m.score(torch.arange(3)).shape == (3, seq_split.n_items)
    with pytest.raises(ValueError, match="needs a teacher"):
        m.module.on_fit_start()


def test_unsupported_protocol_is_refused(home):
    from metarec.errors import ConfigError

    split = get_protocol("general")(toy_dataset(n_users=10, n_items=12, per_user=8), seed=0)
    split.protocol = "cold_start"
    with pytest.raises(ConfigError, match="supports protocols"):
        build_method("distill:student", FAST).fit(split)


# ---- text teacher / student --------------------------------------------------------------------------------------
@pytest.mark.slow
def test_text_teacher_loads_fully_offline(tmp_path):
    """In a fresh interpreter with HF offline flags, an empty HF cache and an unroutable proxy, the MiniLM teacher
    and its tokenizer load from the package folder and encode."""
    code = ("import torch, metarec; from metarec.methods.distill import text as T;"
            "tok, m = T.load_teacher_encoder();"
            "e = T.encode_with_teacher(['space robot film', 'robot film in space', 'printer toner cartridge'], tok, m);"
            "import numpy as np; c = e @ e.T;"
            "assert e.shape == (3, 384) and np.allclose((e * e).sum(1), 1, atol=1e-4);"
            "assert c[0, 1] > c[0, 2] + 0.2, c; print('OK', sum(p.numel() for p in m.parameters()))")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"),
           "HF_HUB_CACHE": str(tmp_path / "hf"), "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9",
           "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "OK 22713216" in out.stdout
    assert not (tmp_path / "hf").exists() or not any((tmp_path / "hf").rglob("*.safetensors"))


def test_item_text_embeddings_are_cached_and_items_without_text_masked(seq_split, home):
    from metarec.methods.distill import text as T

    split = with_text(seq_split)
    emb, has, info = T.teacher_item_embeddings(split, max_len=16)
    assert info["cached"] is False and info["items_with_text"] == int(has.sum()) == split.n_items - 6
    assert emb.shape == (split.n_items, 384)
    assert torch.all(emb[~has] == 0) and torch.allclose(emb[has].norm(dim=1), torch.ones(int(has.sum())), atol=1e-4)
    emb2, has2, info2 = T.teacher_item_embeddings(split, max_len=16)
    assert info2["cached"] is True and torch.equal(emb, emb2) and torch.equal(has, has2)
    # another text is another cache entry
    split.item_features = split.item_features.assign(text=split.item_features.text.str.upper())
    assert T.teacher_item_embeddings(split, max_len=16)[2]["cached"] is False
    assert len(list((home / "artifacts" / "text_emb").glob("*/emb.npz"))) == 2


@pytest.mark.slow
@pytest.mark.parametrize("protocol", ["sequential", "general"])
def test_text_student_learns_to_reproduce_teacher_embeddings(seq_split, gen_split, home, protocol, tmp_path):
    from metarec.methods.distill import text as T

    split = with_text(seq_split if protocol == "sequential" else gen_split)
    params = {**FAST, "dim": 8, "text_max_len": 16, "max_epochs": 6, "eval_every": 3, "lr": 5e-3}
    m = build_method("distill:text-student", params).fit(split, seed=0, workdir=tmp_path)
    s = m.score(torch.arange(4))
    assert s.shape == (4, split.n_items) and torch.isfinite(s).all()
    mod = m.module
    emb, has, _ = T.teacher_item_embeddings(split, max_len=16)
    # items without text: no text vector reaches their representation
    table = mod.item_table()
    assert torch.allclose(table[1:][~has], mod.backbone.items.emb.weight[1:][~has])
    # embedding distillation made progress: the logged emb loss fell
    log = pd.read_csv(tmp_path / "lightning" / "metrics.csv")
    e = log["train/emb"].dropna().to_numpy()
    assert len(e) >= 2 and e[-1] < e[0]
    # inference counts the DistilBERT student (not MiniLM, not the distillation head)
    n_bert = sum(p.numel() for p in mod.text_student.encoder.parameters())
    assert m.num_parameters() == sum(p.numel() for p in mod.backbone.parameters()) + n_bert
    tt = build_method("distill:text-teacher", {**FAST, "dim": 16, "text_max_len": 16}).fit(split, seed=0)
    assert tt.num_parameters() > 22_000_000 > m.num_parameters()


def test_item_table_text_only_keeps_ids_just_for_items_without_text():
    from metarec.methods.distill.backbones import ItemTable

    torch.manual_seed(0)
    text = torch.randn(5, 3)
    has = torch.tensor([True, False, True, True, False])
    hybrid, only = ItemTable(5, 4, 3), ItemTable(5, 4, 3, ids=False)
    only.load_state_dict(hybrid.state_dict())
    t = hybrid.text_proj(text)
    h, o = hybrid(text, has), only(text, has)
    ids = hybrid.emb.weight[1:]
    torch.testing.assert_close(h[1:][has], ids[has] + t[has])
    torch.testing.assert_close(o[1:][has], t[has])                     # text only: the id embedding is not used
    torch.testing.assert_close(o[1:][~has], ids[~has])                 # no text: the id embedding is all there is
    torch.testing.assert_close(h[1:][~has], ids[~has])
    assert torch.equal(o[0], hybrid.emb.weight[0])                     # padding row


@pytest.mark.parametrize("protocol", ["sequential", "general"])
def test_the_text_recommender_scores_with_a_named_frozen_encoder(seq_split, gen_split, home, protocol):
    split = with_text(seq_split if protocol == "sequential" else gen_split)
    m = build_method("distill:text-minilm-6", {**FAST, "text_ids": False, "dim": 16,
                                      "n_layers": 1}).fit(split, seed=0)
    assert m.text_info["encoder"] == "minilm-6" and m.text_info["items_with_text"] == split.n_items - 6
    backbone = sum(p.numel() for p in m.module.backbone.parameters())
    assert m.num_parameters() == backbone + m.text_info["parameters"] == backbone + 22_713_216 - 147_840  # no pooler
    assert m.module.backbone.items.ids is False
    s = m.score(torch.arange(3))
    assert s.shape == (3, split.n_items) and torch.isfinite(s[:, 1:]).all()


def test_a_tuned_mf_bpr_can_teach_a_general_protocol_student(gen_split, seq_split, home):
    teacher_params = {"max_epochs": 3, "progress_bar": False, "dim": 8}
    kd = build_method("distill:kd-soft", {**FAST, "teacher_method": "mf-bpr", "teacher_params": teacher_params})
    kd.fit(gen_split, seed=0)
    assert kd.teacher_meta["method"] == "mf-bpr" and not kd.teacher_meta["cached"]
    # the student's soft targets are the teacher's own scores of the batch users
    teacher = kd._frozen_teacher.method
    users = torch.arange(4)
    bag = torch.zeros(4, gen_split.n_items)
    torch.testing.assert_close(kd._frozen_teacher.bag_logits(bag, users), teacher.score(users))
    again = build_method("distill:kd-rd", {**FAST, "teacher_method": "mf-bpr", "teacher_params": teacher_params,
                                           "kd_k": 10})
    again.fit(gen_split, seed=0)
    assert again.teacher_meta["cached"]                                 # trained once, loaded by the next student
    torch.testing.assert_close(again._frozen_teacher.method.score(users), teacher.score(users))
    with pytest.raises(ConfigError, match="teacher_method works under the general protocol only"):
        build_method("distill:kd-soft", {**FAST, "teacher_method": "mf-bpr"}).fit(seq_split, seed=0)
    with pytest.raises(ConfigError, match="teacher_params must be a mapping"):
        build_method("distill:kd-soft", {"teacher_method": "mf-bpr", "teacher_params": 3})
    with pytest.raises(ConfigError, match="unknown parameter"):
        build_method("distill:kd-soft", {"teacher_method": "mf-bpr", "teacher_params": {"lrr": 1}})
    with pytest.raises(ConfigError, match="must be a Lightning method"):
        build_method("distill:kd-soft", {**FAST, "teacher_method": "pop"}).fit(gen_split, seed=0)


@pytest.mark.parametrize("name,k,ok", [("distill:kd-rd", 29, True), ("distill:kd-rd", 30, False),
                                       ("distill:kd-rrd", 30, True), ("distill:kd-rrd", 31, False)])
def test_kd_k_must_fit_the_catalogue(seq_split, name, k, ok):
    """The teacher's top kd_k (RD: besides the target) must exist: a clear error before any training, not a
    top-k index error deep in the first batch."""
    m = build_method(name, {**FAST, "kd_k": k})
    if ok:
        m._check(seq_split)
    else:
        room = 30 - (name == "distill:kd-rd")   # RD leaves the target out of the teacher's top-k
        with pytest.raises(ConfigError, match=f"kd_k must be between 1 and {room} on this split"):
            m.fit(seq_split, seed=0)
