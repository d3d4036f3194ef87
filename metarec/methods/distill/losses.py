"""Distillation losses over the full item set. Every function takes student and teacher logits [N, n_items] for the
same N rows (one per sequence position or user) and returns a scalar; the teacher side is treated as a constant.

    soft_kd   Hinton et al. 2015: T^2 * KL(softmax(t/T) || softmax(s/T)), temperature T over ALL items. Zero
              (with zero gradient) exactly when the student's logits equal the teacher's up to a per-row constant.
    rd        Ranking Distillation (Tang & Wang, KDD 2018): the teacher's top-K items become extra positives with
              RD's rank-discounted weights w_r ∝ exp(-r / lam), r = 0..K-1. Adapted to our full-softmax hard loss:
              -sum_r w_r log softmax(s)[pi_r] (the paper uses a pointwise logistic loss with sampled negatives).
              The hard loss's positives are excluded from pi when ``exclude`` is given (sequential: the position's
              target, an index per row; general: the user's training items, a boolean mask [N, n_items]), as RD
              takes the teacher's top-K among the items the user has not interacted with. A row with fewer than K
              such items tops its list up with excluded ones (already positives: harmless).
    rrd       Relaxed Ranking Distillation (DE-RRD, Kang et al., CIKM 2020): a Plackett-Luce likelihood that the
              student ranks the teacher's top-K ("interesting") items in the teacher's order, above all the other
              ("uninteresting") items, whose mutual order is ignored:
              -sum_k [ s[pi_k] - log( sum_{j>=k} exp s[pi_j] + sum_{u not in top-K} exp s[u] ) ] / K.
              ``exclude`` as for rd: DE-RRD draws its interesting items from the teacher's top unobserved items.
    emb_mse   embedding distillation: squared L2 distance between (projected) student and teacher vectors,
              averaged over the rows where ``mask`` is True (items with text); 0 when no row qualifies.

rd and rrd are likelihoods of the teacher's ranking, not divergences: at student == teacher they equal the
teacher's own value (> 0); they decrease as the student's ranking approaches the teacher's (see the tests).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def soft_kd(student: torch.Tensor, teacher: torch.Tensor, temperature: float = 2.0) -> torch.Tensor:
    t = temperature
    log_ps = F.log_softmax(student / t, dim=-1)
    log_pt = F.log_softmax(teacher.detach() / t, dim=-1)
    kl = (log_pt.exp() * (log_pt - log_ps)).sum(-1)
    return kl.mean() * t * t


def rank_weights(k: int, lam: float, device=None) -> torch.Tensor:
    w = torch.exp(-torch.arange(k, dtype=torch.float32, device=device) / lam)
    return w / w.sum()


def _teacher_topk(teacher: torch.Tensor, k: int, exclude: torch.Tensor | None) -> torch.Tensor:
    t = teacher.detach()
    if exclude is not None and exclude.dim() == 2:   # a mask of each row's positives
        t = t.masked_fill(exclude, float("-inf"))
    elif exclude is not None:                       # one positive per row
        t = t.clone()
        t.scatter_(1, exclude.clamp(min=0).unsqueeze(1), float("-inf"))
    return t.topk(k, dim=-1).indices


def rd(student: torch.Tensor, teacher: torch.Tensor | None, k: int = 10, lam: float = 5.0,
       exclude: torch.Tensor | None = None, top: torch.Tensor | None = None) -> torch.Tensor:
    """``top`` [N, K]: the teacher's top-K, when pre-computed (then ``teacher`` may be None)."""
    if top is None:
        top = _teacher_topk(teacher, k, exclude)                             # [N, K]
    k = top.shape[1]
    logp = F.log_softmax(student, dim=-1).gather(1, top)                     # [N, K]
    return -(logp * rank_weights(k, lam, student.device)).sum(-1).mean()


def rrd(student: torch.Tensor, teacher: torch.Tensor | None, k: int = 10, top: torch.Tensor | None = None,
        exclude: torch.Tensor | None = None) -> torch.Tensor:
    if top is None:
        top = _teacher_topk(teacher, k, exclude)                             # [N, K] in the teacher's order
    s_top = student.gather(1, top)                                           # [N, K]
    rest = student.scatter(1, top, float("-inf"))                            # uninteresting items only
    lse_rest = torch.logsumexp(rest, dim=-1, keepdim=True)                   # [N, 1]
    # log sum_{j>=k} exp s[pi_j], for every k: a reversed cumulative logsumexp
    tail = torch.logcumsumexp(s_top.flip(-1), dim=-1).flip(-1)               # [N, K]
    denom = torch.logaddexp(tail, lse_rest)
    return -(s_top - denom).mean()


def emb_mse(student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    err = (student - teacher.detach()).pow(2).sum(-1)
    if mask is not None:
        if not bool(mask.any()):
            return student.sum() * 0.0
        err = err[mask]
    return err.mean()
