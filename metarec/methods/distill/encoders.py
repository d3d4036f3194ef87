"""Item-text encoders by name, students distilled from the BERT-scale teacher, and item embeddings as artifacts.

    mpnet-12        the teacher: all-mpnet-base-v2 (12 layers, 768-d, 109.5 M parameters; ``mpnet.py``)
    mpnet-6         6 layers initialised from teacher layers 0, 2, 4, 6, 8, 10 (DistilBERT's recipe), then distilled
    mpnet-3         3 layers from teacher layers 0, 4, 8, then distilled
    mpnet-6-random  the 6-layer architecture from random weights, distilled the same way: what the initialisation buys
    minilm-6        all-MiniLM-L6-v2 (6 layers, 384-d, 22.7 M): the small pretrained point, used as it is

Every encoder mean-pools its last hidden states over the non-padding tokens and L2-normalises (the
sentence-transformers recipe of both pretrained models). A student is distilled on the dataset's own item texts:
its pooled, normalised vector is pulled to the teacher's by ``(1 - cos) + MSE`` (cosine and mean squared error on
the pooled embeddings), AdamW, a fixed number of epochs over the texts in random order. Students are run-store
artifacts (``text_student``: their weights, keyed by teacher, layers, init, texts and training settings), and so are
the item embeddings of every (encoder, dataset, texts) (``text_emb``), with the encoder's measured throughput
(items per second) in the artifact's meta: encoding happens once, never per run.
"""
from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from metarec.errors import ConfigError
from metarec.methods.distill.text import encode, pooled, text_hash

ENCODERS = ("mpnet-12", "mpnet-6", "mpnet-3", "mpnet-6-random", "minilm-6")
STUDENTS = {"mpnet-6": (6, "teacher"), "mpnet-3": (3, "teacher"), "mpnet-6-random": (6, "random")}
#: student distillation settings (the defaults every table uses)
DISTILL = {"epochs": 3, "lr": 5e-5, "batch_size": 32, "max_len": 64, "seed": 0}


def distillation_loss(student_vec: torch.Tensor, teacher_vec: torch.Tensor) -> torch.Tensor:
    """(1 - cosine) + MSE between pooled sentence vectors, averaged over the batch."""
    cos = F.cosine_similarity(student_vec, teacher_vec, dim=-1)
    return (1.0 - cos).mean() + F.mse_loss(student_vec, teacher_vec)


def distill_student(teacher, tokenizer, n_layers: int, init: str, texts: list[str], *, epochs: int, lr: float,
                    batch_size: int, max_len: int, seed: int, targets: np.ndarray | None = None):
    """A student (``mpnet.student_from_teacher``) trained to reproduce the teacher's pooled vectors of ``texts``.
    Returns (student in eval mode, per-epoch mean loss)."""
    from metarec.methods.distill.mpnet import student_from_teacher

    torch.manual_seed(seed)
    student = student_from_teacher(teacher, n_layers, init=init)
    if targets is None:
        targets = encode(teacher, tokenizer, texts, max_len)
    target = torch.from_numpy(targets)
    opt = torch.optim.AdamW(student.parameters(), lr=lr, weight_decay=0.01)
    rng = np.random.default_rng(seed)
    history = []
    student.train()
    for _ in range(epochs):
        order = rng.permutation(len(texts))
        total, n = 0.0, 0
        for lo in range(0, len(texts), batch_size):
            idx = order[lo:lo + batch_size]
            loss = distillation_loss(pooled(student, tokenizer, [texts[i] for i in idx], max_len), target[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total, n = total + float(loss.detach()) * len(idx), n + len(idx)
        history.append(total / max(n, 1))
    return student.eval(), history


def inference_parameters(model) -> int:
    """Parameters an encoder runs to make a sentence vector. Mean pooling never runs the BERT-style pooler (a dense
    layer on the first token that both checkpoints carry), so it is not counted, as ``num_parameters`` counts only
    what runs at inference (MPNet: 590,592 of 109,486,464)."""
    return sum(p.numel() for name, p in model.named_parameters() if not name.startswith("pooler."))


def architectures(names) -> dict[str, tuple]:
    """name -> (tokenizer, model in eval mode) for the encoders ``names``: the pretrained ones as shipped; a student's
    architecture built from the teacher's layers without distilling it, which is what timing needs (speed does not
    depend on the weights). The MPNet teacher is loaded once for all of them."""
    from metarec.methods.distill import mpnet
    from metarec.methods.distill.text import load_teacher_encoder

    unknown = [n for n in names if n not in ENCODERS]
    if unknown:
        raise ConfigError(f"unknown text encoder {unknown[0]!r}; valid: {', '.join(ENCODERS)}")
    out = {}
    if any(n.startswith("mpnet-") for n in names):
        tok, teacher = mpnet.load_teacher()
        for n in names:
            if n == "mpnet-12":
                out[n] = (tok, teacher)
            elif n in STUDENTS:
                n_layers, init = STUDENTS[n]
                out[n] = (tok, mpnet.student_from_teacher(teacher, n_layers, init=init).eval())
    if "minilm-6" in names:
        out["minilm-6"] = load_teacher_encoder()
    return {n: out[n] for n in names}


def time_side_by_side(models: dict[str, tuple], texts: list[str], rounds: int, max_len: dict[str, int]
                      ) -> dict[str, list[float]]:
    """name -> items/s of each round: every model encodes all ``texts`` (``encode``, its ``max_len``) in turn, for
    ``rounds`` interleaved rounds after one warm-up batch each, so a slow moment on the machine hits every model
    alike and the per-round ratios stay comparable."""
    speeds: dict[str, list[float]] = {name: [] for name in models}
    with torch.inference_mode():
        for name, (tok, model) in models.items():   # warm-up: first-call allocations are not throughput
            encode(model, tok, texts[:64], max_len[name])
        for _ in range(rounds):
            for name, (tok, model) in models.items():
                t0 = time.perf_counter()
                encode(model, tok, texts, max_len[name])
                speeds[name].append(len(texts) / (time.perf_counter() - t0))
    return speeds


def _load(encoder: str, texts: list[str], dataset: str, artifacts, settings: dict, split=None):
    """(tokenizer, model in eval mode, inference parameter count) of a named encoder; students come from their
    artifact. A student's targets are the teacher's vectors of the same texts, read from the teacher's ``text_emb``
    artifact of ``split`` (built first if missing) rather than encoded again: the most expensive pass, done once."""
    from metarec.methods.distill import mpnet

    if encoder not in STUDENTS:   # the pretrained encoders, as shipped
        tok, model = architectures([encoder])[encoder]
        return tok, model, inference_parameters(model)
    tok, teacher = mpnet.load_teacher()
    n_layers, init = STUDENTS[encoder]
    identity = {"teacher": "all-mpnet-base-v2", "weights": mpnet.WEIGHTS_SHA256, "layers": n_layers, "init": init,
                "dataset": dataset, "texts": text_hash(texts, settings["max_len"], "all-mpnet-base-v2"), **settings}

    def build(folder: Path) -> dict:
        targets = None
        if split is not None:
            emb, has, _ = item_embeddings(split, "mpnet-12", artifacts, max_len=settings["max_len"])
            targets = emb[has].numpy()   # the same texts in the same order as ``texts`` (items with text)
            if len(targets) != len(texts):
                raise AssertionError(f"teacher vectors of {len(targets)} texts for {len(texts)} texts")
        student, history = distill_student(teacher, tok, n_layers, init, texts, targets=targets, **settings)
        torch.save(student.state_dict(), folder / "student.pt")
        return {"loss_by_epoch": history}

    folder, meta, _ = artifacts.get_or_build("text_student", identity, build)
    student = mpnet.student_from_teacher(teacher, n_layers, init=init)
    student.load_state_dict(torch.load(folder / "student.pt", weights_only=True), strict=True)
    return tok, student.eval(), inference_parameters(student)


def item_embeddings(split, encoder: str, artifacts=None, max_len: int = 64, settings: dict | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """(emb [n_items, d] float32, has_text [n_items] bool, info) of the split's item texts under ``encoder``: a
    ``text_emb`` artifact. ``info``: the encoder's parameter count and measured throughput (items/s, encoding all
    the dataset's texts on this process's threads) and, for students, their distillation loss by epoch."""
    from metarec.bench.artifacts import Artifacts
    from metarec.methods.distill.text import item_texts

    store = artifacts or Artifacts()
    settings = {**DISTILL, **(settings or {})}
    texts = item_texts(split)
    has = np.array([bool(t) for t in texts])
    known = [t for t in texts if t]
    identity = {"encoder": encoder, "max_len": int(max_len), "dataset": split.dataset, "texts": text_hash(texts, max_len, encoder),
                **({"distill": settings} if encoder in STUDENTS else {})}

    def build(folder: Path) -> dict:
        tok, model, n_params = _load(encoder, known, split.dataset, store, settings, split)
        idx = np.nonzero(has)[0]
        t0 = time.perf_counter()
        vecs = encode(model, tok, [texts[i] for i in idx], max_len)
        dt = time.perf_counter() - t0
        emb = np.zeros((len(texts), vecs.shape[1] if len(idx) else 1), dtype=np.float32)
        emb[idx] = vecs
        np.savez(folder / "emb.npz", emb=emb, has_text=has)
        return {"parameters": int(n_params), "encode_s": dt, "items_per_s": float(len(idx) / dt) if dt > 0 else None,
                "threads": torch.get_num_threads()}

    folder, meta, cached = store.get_or_build("text_emb", identity, build)
    with np.load(folder / "emb.npz") as z:
        emb = z["emb"]
    # which vectors the run read (the artifact's content, not its identity: a student distilled again on another CPU
    # gives vectors that differ in the last bits, and so may the numbers of the runs over them)
    info = {"encoder": encoder, "parameters": meta["parameters"], "items_per_s": meta["items_per_s"],
            "threads": meta["threads"], "cached": cached, "items_with_text": int(has.sum()),
            "vectors_sha256": hashlib.sha256(np.ascontiguousarray(emb).tobytes()).hexdigest()}
    return torch.from_numpy(emb), torch.from_numpy(has), info


def remeasure_throughput(split, artifacts, rounds: int = 3) -> dict[str, dict]:
    """Measure the encoding throughput of every encoder that has ``text_emb`` item vectors of ``split``'s texts in
    ``artifacts`` again, side by side: interleaved rounds, each encoding all the texts with every encoder in turn
    (as the vectors were built: ``encode``, the artifact's max length) on this process's threads; the median over
    rounds replaces each artifact's ``items_per_s`` (the number every run and the ``text_frontier`` table read),
    its first pass kept as ``first_pass``, the rounds, CPU and date as ``remeasured``. The first pass is one timing
    taken whenever a grid first needed the vectors, so a neighbour on the cores or another machine shifts it; side
    by side, every encoder of a dataset is timed under the same conditions. Returns encoder -> new meta."""
    from metarec.bench.artifacts import META, _check
    from metarec.errors import DataError
    from metarec.methods.distill.text import item_texts
    from metarec.utils import atomic_write_json, machine

    texts = item_texts(split)
    found: dict[str, tuple[Path, dict]] = {}
    for meta_file in sorted((artifacts.root / "text_emb").glob("*/" + META)):
        meta, damage = _check(meta_file.parent, None)
        ident = meta.get("identity") or {}
        if damage is None and ident.get("dataset") == split.dataset and ident.get("encoder") in ENCODERS and \
                ident.get("texts") == text_hash(texts, ident.get("max_len", 64), ident["encoder"]):
            if ident["encoder"] in found:
                raise DataError(f"two {ident['encoder']} item-vector artifacts of {split.dataset} (e.g. two text "
                                f"lengths or distillation settings): which one a table's throughput means is ambiguous",
                                meta_file.parent)
            found[ident["encoder"]] = (meta_file.parent, meta)
    if not found:
        raise DataError(f"no intact text_emb artifacts of {split.dataset}'s item texts to remeasure",
                        artifacts.root / "text_emb")
    known = [t for t in texts if t]
    speeds = time_side_by_side(architectures(sorted(found)), known, rounds,
                               {enc: meta["identity"]["max_len"] for enc, (_, meta) in found.items()})
    out = {}
    for enc, (folder, meta) in found.items():
        median = float(np.median(speeds[enc]))
        first = meta.get("first_pass") or {k: meta.get(k) for k in ("items_per_s", "encode_s", "threads", "built")}
        meta = {**meta, "items_per_s": median, "encode_s": len(known) / median, "threads": torch.get_num_threads(),
                "first_pass": first,
                "remeasured": {"date": time.strftime("%Y-%m-%dT%H:%M:%S"), "cpu": machine()["cpu"], "rounds": rounds,
                               "side_by_side": sorted(found), "items_per_s": speeds[enc]}}
        atomic_write_json(folder / META, meta)
        out[enc] = meta
    return out
