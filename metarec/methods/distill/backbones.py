"""The two backbones shared by teachers and students, as plain ``nn.Module``s (wrapped by ``DistillModule``).

``SeqEncoder`` (protocol ``sequential``): a SASRec-style causal transformer (Kang & McAuley, ICDM 2018). One row per
user chunk of at most ``max_len`` train items, right-padded, trained with a full-softmax cross-entropy at EVERY
position (position t predicts item t+1), so one forward pass covers a whole sequence instead of one sample per
prefix. Item embeddings are tied between input and output. A user longer than ``max_len`` contributes several
consecutive chunks, cut from the end of the sequence.

``BagTwoTower`` (protocol ``general``): a two-tower model. User tower: the user's known items as an L2-normalised,
dropped-out bag (Mult-DAE style input) -> item-bag embedding -> ``n_layers - 1`` tanh layers. Item tower: an item
id embedding. Score = dot product. Trained with the multinomial (full softmax) likelihood of the user's train items.

Both accept optional pre-computed item-text vectors (``text_dim`` > 0): the item representation becomes
``id embedding + Linear(text vector)``; items without text get the id embedding only (their text row is masked).
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from metarec.data.schema import ITEM, USER


# ---------------------------------------------------------------------------------------------------------------
# histories
# ---------------------------------------------------------------------------------------------------------------
def user_sequences(frame, n_users: int) -> list[np.ndarray]:
    """Per user, the item ids of ``frame`` in frame order (chronological under ``sequential``)."""
    u = frame[USER].to_numpy(np.int64)
    i = frame[ITEM].to_numpy(np.int64)
    order = np.argsort(u, kind="stable")
    u, i = u[order], i[order]
    bounds = np.searchsorted(u, np.arange(n_users + 1))
    return [i[bounds[k]:bounds[k + 1]] for k in range(n_users)]


def last_window(seqs: list[np.ndarray], max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """[n_users, max_len] right-padded item ids + 1 (0 = pad) of each user's last ``max_len`` items, and lengths."""
    out = np.zeros((len(seqs), max_len), dtype=np.int64)
    length = np.zeros(len(seqs), dtype=np.int64)
    for u, s in enumerate(seqs):
        s = s[-max_len:]
        out[u, :len(s)] = s + 1
        length[u] = len(s)
    return torch.from_numpy(out), torch.from_numpy(length)


def training_chunks(seqs: list[np.ndarray], max_len: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sequence-to-sequence training rows: (inputs [C, L] ids+1, targets [C, L] item ids or -1, user of each row).

    For a user with items x_1..x_n the input is x_1..x_{n-1} and the target x_2..x_n, cut from the end into
    chunks of at most ``max_len`` positions; every non-pad position carries a loss."""
    ins, tgts, users = [], [], []
    for u, s in enumerate(seqs):
        if len(s) < 2:
            continue
        x, y = s[:-1] + 1, s[1:]
        for end in range(len(x), 0, -max_len):
            lo = max(0, end - max_len)
            row_in = np.zeros(max_len, dtype=np.int64)
            row_t = np.full(max_len, -1, dtype=np.int64)
            row_in[:end - lo] = x[lo:end]
            row_t[:end - lo] = y[lo:end]
            ins.append(row_in)
            tgts.append(row_t)
            users.append(u)
    if not ins:
        raise ValueError("no user has two or more train items: nothing to train a sequence model on")
    return torch.from_numpy(np.stack(ins)), torch.from_numpy(np.stack(tgts)), torch.as_tensor(users)


def interaction_matrix(frame, n_users: int, n_items: int) -> sp.csr_matrix:
    """Binary user x item CSR matrix of ``frame`` (repeats collapse to 1)."""
    u = frame[USER].to_numpy(np.int64)
    i = frame[ITEM].to_numpy(np.int64)
    m = sp.csr_matrix((np.ones(len(u), dtype=np.float32), (u, i)), shape=(n_users, n_items))
    m.data[:] = 1.0
    return m


def dense_rows(m: sp.csr_matrix, rows: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(m[rows.cpu().numpy()].toarray())


# ---------------------------------------------------------------------------------------------------------------
# backbones
# ---------------------------------------------------------------------------------------------------------------
class ItemTable(nn.Module):
    """Item representations [n_items + 1, dim] (row 0 = padding): id embedding + optional projected text.
    ``ids=False`` (text only): an item with text is its projected text alone; one without keeps its id embedding."""

    def __init__(self, n_items: int, dim: int, text_dim: int = 0, ids: bool = True):
        super().__init__()
        self.ids = ids
        self.emb = nn.Embedding(n_items + 1, dim, padding_idx=0)
        nn.init.normal_(self.emb.weight, std=0.02)
        with torch.no_grad():
            self.emb.weight[0].zero_()
        self.text_proj = nn.Linear(text_dim, dim) if text_dim else None

    def forward(self, text: torch.Tensor | None = None, has_text: torch.Tensor | None = None) -> torch.Tensor:
        """``text``: [n_items, text_dim] item vectors; ``has_text``: [n_items] bool (False -> id embedding only)."""
        w = self.emb.weight
        if self.text_proj is None or text is None:
            return w
        t = self.text_proj(text)
        keep = torch.ones(len(t), dtype=t.dtype, device=t.device) if has_text is None else has_text.to(t.dtype)
        t = t * keep.unsqueeze(1)
        base = w[1:] if self.ids else w[1:] * (1.0 - keep).unsqueeze(1)
        return torch.cat([w[:1], base + t], 0)


class SeqEncoder(nn.Module):
    kind = "sequential"

    def __init__(self, n_items: int, dim: int = 64, n_layers: int = 2, n_heads: int = 2, max_len: int = 50,
                 dropout: float = 0.2, inner: int | None = None, text_dim: int = 0, text_ids: bool = True):
        super().__init__()
        if dim % n_heads:
            raise ValueError(f"dim ({dim}) must be divisible by n_heads ({n_heads})")
        self.items = ItemTable(n_items, dim, text_dim, ids=text_ids)
        self.pos = nn.Embedding(max_len, dim)
        nn.init.normal_(self.pos.weight, std=0.02)
        self.norm_in = nn.LayerNorm(dim)
        self.drop = nn.Dropout(dropout)
        layer = nn.TransformerEncoderLayer(dim, n_heads, inner or 4 * dim, dropout, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.norm_out = nn.LayerNorm(dim)
        self.max_len = max_len
        causal = torch.triu(torch.full((max_len, max_len), float("-inf")), diagonal=1)
        self.register_buffer("causal", causal, persistent=False)

    def hidden(self, seq: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        """[B, L] right-padded ids+1 -> [B, L, dim]. Causal attention: a position never sees a later one (and
        right padding sits after every real item, so no key-padding mask is needed)."""
        L = seq.shape[1]
        x = table[seq] + self.pos.weight[:L].unsqueeze(0)
        x = self.drop(self.norm_in(x))
        h = self.blocks(x, mask=self.causal[:L, :L], is_causal=True)
        return self.norm_out(h)

    def logits(self, h: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        return h @ table[1:].T

    def score(self, seq: torch.Tensor, length: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        """Scores of the next item after each row's last real position: [B, n_items]."""
        h = self.hidden(seq, table)
        last = (length.clamp(min=1) - 1).to(h.device)
        return self.logits(h[torch.arange(len(seq), device=h.device), last], table)


class BagTwoTower(nn.Module):
    kind = "general"

    def __init__(self, n_items: int, dim: int = 64, n_layers: int = 1, dropout: float = 0.5, text_dim: int = 0,
                 text_ids: bool = True, **_ignored):
        super().__init__()
        self.user_in = nn.Linear(n_items, dim)
        layers = []
        for _ in range(max(0, n_layers - 1)):
            layers += [nn.Linear(dim, dim), nn.Tanh()]
        self.user_mlp = nn.Sequential(*layers)
        self.items = ItemTable(n_items, dim, text_dim, ids=text_ids)
        self.item_bias = nn.Parameter(torch.zeros(n_items))
        self.drop = nn.Dropout(dropout)

    def user(self, bag: torch.Tensor) -> torch.Tensor:
        """[B, n_items] binary history -> [B, dim]."""
        x = F.normalize(self.drop(bag), dim=1)
        return self.user_mlp(torch.tanh(self.user_in(x)))

    def score(self, bag: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        return self.user(bag) @ table[1:].T + self.item_bias
