"""Maximal-marginal-relevance re-ranking (Carbonell & Goldstein, SIGIR 1998) of any registered ranking method.

``rerank:mmr`` fits its ``base`` method (``base_params``), takes each user's ``candidates`` best unknown items
and re-orders the first ``length`` of them greedily: at each step the candidate maximising

    lam * relevance - (1 - lam) * max similarity to the items already chosen

where relevance is the base score min-max scaled over the user's candidates and similarity is the one the
evaluator's ``diversity@K`` measures (``diversity_basis``): the Jaccard similarity of the items' category sets
(ml-100k genres, Amazon categories), or on splits without informative categories the cosine of the reference
item vectors. ``lam = 1`` is the base ranking; lowering it trades accuracy for intra-list diversity,
which is what the accuracy–diversity figure traces. The re-ranked items come first, the rest of the candidates
follow in base order, other items after them (tied).

The base's candidate lists (per stage: valid ranks after train, test after train + valid) are a run-store
artifact keyed by the split's content, the base and its resolved parameters and the seed, so a sweep over ``lam``
trains the base once per seed.
"""
from __future__ import annotations

import numpy as np
import torch

from metarec.data.schema import ITEM, USER
from metarec.errors import ConfigError
from metarec.methods.base import Method, as_user_tensor
from metarec.methods.registry import register


@register("rerank:mmr")
class MMR(Method):
    """MMR re-ranking of any ranking method (accuracy vs intra-list diversity)."""

    defaults = {"base": "mf-bpr", "base_params": {}, "lam": 0.5, "candidates": 100, "length": 20}
    protocols = ("general", "sequential", "temporal", "given")

    def fit(self, split, *, seed=0, workdir=None):
        from metarec.bench.artifacts import Artifacts
        from metarec.eval.evaluator import diversity_basis
        from metarec.eval.metrics import category_signatures
        from metarec.methods import build_method

        p = self.params
        if not 1 <= int(p["length"]) <= int(p["candidates"]) <= split.n_items:
            raise ConfigError(f"rerank:mmr: need 1 <= length <= candidates <= n_items ({split.n_items}), got "
                              f"length={p['length']}, candidates={p['candidates']}")
        if not isinstance(p["base"], str) or p["base"].startswith("rerank:"):
            raise ConfigError(f"rerank:mmr: base must name a ranking method (not a re-ranker), got {p['base']!r}")
        basis, why = diversity_basis(split)
        if basis is None:
            raise ConfigError(f"rerank:mmr on {split.dataset}: no item similarity to re-rank with ({why})")
        self.sig = self.sim = self.vectors = None
        if basis[0] == "categories":
            self.sig, self.sim = category_signatures(basis[1])
        else:
            self.vectors = basis[1]
        self.n_users, self.n_items = split.n_users, split.n_items

        base = build_method(p["base"], dict(p["base_params"] or {}))
        artifacts = self.artifacts if getattr(self, "artifacts", None) is not None else Artifacts()
        base.artifacts = artifacts
        identity = {"split": split.fingerprint, "base": p["base"], "params": base.params, "seed": seed,
                    "candidates": int(p["candidates"])}

        def build(folder):
            base.fit(split, seed=seed, workdir=workdir)
            for stage in ("valid", "test"):
                idx, val = self._candidates(base, split, stage, int(p["candidates"]))
                torch.save({"idx": idx, "score": val}, folder / f"{stage}.pt")
            return {"base_fit": True}

        folder, _, _ = artifacts.get_or_build("rerank_candidates", identity, build,
                                              valid=lambda f: all((f / f"{s}.pt").is_file() for s in ("valid", "test")))
        self.lists = {}
        for stage in ("valid", "test"):
            d = torch.load(folder / f"{stage}.pt")
            self.lists[stage] = self._rerank(d["idx"], d["score"])
        return self

    @staticmethod
    def _candidates(base, split, stage: str, c: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Each user's ``c`` best unknown items at ``stage`` (known items masked as the evaluator masks them)."""
        from metarec.eval.evaluator import scoring_stage
        from metarec.eval.metrics import topk_items

        known = split.known(stage)
        n_u, n_i = split.n_users, split.n_items
        mask_u, mask_i = known[USER].to_numpy().astype(np.int64), known[ITEM].to_numpy().astype(np.int64)
        order = np.argsort(mask_u, kind="stable")
        mask_u, mask_i = mask_u[order], mask_i[order]
        bounds = np.searchsorted(mask_u, np.arange(n_u + 1))
        idx_out, val_out = [], []
        with torch.no_grad(), scoring_stage(base, stage):
            for lo in range(0, n_u, 512):
                users = torch.arange(lo, min(lo + 512, n_u))
                s = torch.as_tensor(base.score(users)).to(torch.float32).clone()
                a, b = bounds[lo], bounds[min(lo + 512, n_u)]
                s[torch.from_numpy(mask_u[a:b] - lo), torch.from_numpy(mask_i[a:b])] = float("-inf")
                top = topk_items(s, c)
                idx_out.append(top.to(torch.int32))
                val_out.append(torch.gather(s, 1, top))
        return torch.cat(idx_out), torch.cat(val_out)

    def _rerank(self, idx: torch.Tensor, score: torch.Tensor) -> torch.Tensor:
        """The re-ordered candidate lists [U, C] (first ``length`` by MMR, the rest in base order)."""
        lam, length = float(self.params["lam"]), int(self.params["length"])
        idx = idx.long()
        U, C = idx.shape
        s = score.to(torch.float64)
        finite = torch.isfinite(s)
        lo = torch.where(finite, s, torch.full_like(s, float("inf"))).amin(1, keepdim=True)
        hi = torch.where(finite, s, torch.full_like(s, float("-inf"))).amax(1, keepdim=True)
        rel = torch.where(finite, (s - lo) / (hi - lo).clamp(min=1e-12), torch.full_like(s, -1e9))
        if self.vectors is not None:
            vec = self.vectors[idx]                                   # [U, C, d] reference vector of each candidate
        else:
            sig = self.sig[idx]                                       # [U, C] category signature of each candidate
        maxsim = torch.zeros((U, C), dtype=torch.float64)
        taken = torch.zeros((U, C), dtype=torch.bool)
        rows = torch.arange(U)
        chosen = []
        for step in range(length):
            gain = lam * rel - (1.0 - lam) * maxsim if step else rel.clone()
            gain = gain.masked_fill(taken, float("-inf"))
            j = gain.argmax(1)                                        # first maximum: base order breaks ties
            taken[rows, j] = True
            chosen.append(j)
            if self.vectors is not None:
                sim = (vec * vec[rows, j][:, None, :]).sum(2)
            else:
                sim = self.sim[sig, sig[rows, j][:, None]]
            maxsim = torch.maximum(maxsim, sim)
        first = torch.stack(chosen, 1)
        rest = torch.arange(C).expand(U, C)[~taken].view(U, C - length)
        return torch.gather(idx, 1, torch.cat([first, rest], 1))

    def score(self, users):
        users = as_user_tensor(users)
        lists = self.lists["valid" if self.stage == "valid" else "test"][users]
        C = lists.shape[1]
        out = torch.full((len(users), self.n_items), -1.0)
        out.scatter_(1, lists, torch.arange(2 * C, C, -1, dtype=torch.float32).expand(len(users), C))
        return out

    def num_parameters(self) -> int:
        return 0
