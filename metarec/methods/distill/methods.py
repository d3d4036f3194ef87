"""The registered distillation methods (``family = "distill"``; protocols ``sequential`` and ``general``; the
backbone is chosen from ``split.protocol``: SASRec-style ``SeqEncoder`` or ``BagTwoTower``).

    distill:teacher        the wide/deep backbone (dim 128, 2 layers), trained once per split and seed and cached
    distill:student        the small backbone (dim 32, 1 layer) trained alone: the baseline every KD row must beat
    distill:kd-soft        student + Hinton soft-label KD from the cached teacher (temperature softmax, all items)
    distill:kd-rd          student + Ranking Distillation (teacher top-K as rank-weighted extra positives)
    distill:kd-rrd         student + DE-RRD-style relaxed listwise ranking distillation
    distill:text-teacher   teacher backbone + frozen pretrained MiniLM-L6 item-text vectors (cached on disk)
    distill:text-student   student backbone + a 2-layer, 128-d DistilBERT item-text encoder (random init) trained
                           to reproduce the MiniLM vectors (``emb_weight``; 0 = text student alone) jointly with
                           the recommendation loss; at inference only the DistilBERT student encodes items
    distill:text-student-alone   the same text student without embedding distillation (emb_weight = 0)
    distill:text-<encoder>       the teacher-size backbone over frozen item-text vectors of one named encoder
                                 (``encoders.py``: mpnet-12, mpnet-6, mpnet-3, mpnet-6-random, minilm-6), with or
                                 without item ids; counts the encoder's parameters

A KD student may instead learn from any fitted Lightning method under the general protocol (``teacher_method``,
``teacher_params``; e.g. a tuned, converged mf-bpr), kept as a teacher artifact like the backbone teacher.
Students name their teacher with ``teacher_*`` parameters (``teacher_dim``, ``teacher_n_layers``, ...; the shared
``max_len``/``batch_size``/``weight_decay``/``valid_metric``/``accelerator`` are copied); the teacher is looked up
in the run store's artifacts (``metarec.methods.distill.teachers``) and trained only when absent, with the run's seed
unless ``teacher_seed`` is set. Under ``general`` one training "epoch" is ``bag_repeats`` shuffled passes over the
users (a pass is only n_users / batch_size steps), so one epoch budget suits both protocols.

Parameter counts (``num_parameters``) count what runs at inference: the backbone, plus the item-text encoder whose
vectors the model scores with — the frozen MiniLM (22.7 M) for ``text-teacher``, the DistilBERT student for
``text-student`` (its training-only 384-d distillation head is excluded). A student's frozen logit teacher is NOT
counted: it is used only during training.
"""
from __future__ import annotations

from typing import ClassVar

import torch

from metarec.errors import ConfigError
from metarec.methods.base import STAGES, as_user_tensor
from metarec.methods.distill.backbones import (BagTwoTower, SeqEncoder, interaction_matrix, last_window,
                                               training_chunks, user_sequences)
from metarec.methods.distill.module import DistillDataModule, DistillModule, FrozenTeacher, MethodTeacher
from metarec.methods.lightning import LightningMethod
from metarec.methods.registry import build_method, register
from metarec.methods.distill.encoders import ENCODERS
from metarec.methods.space import loguniform, uniform
from metarec.params import Domain

STUDENT_SIZE = {"dim": 32, "n_layers": 1}
TEACHER_SIZE = {"dim": 128, "n_layers": 2}
COMMON = {**LightningMethod.defaults, "n_heads": 2, "dropout": 0.2, "input_dropout": 0.5, "max_len": 50,
          "lr": 2e-3, "weight_decay": 0.0, "batch_size": 128, "max_epochs": 30, "patience": 3, "eval_every": 2,
          "text_max_len": 64, "bag_repeats": 8}
#: teacher parameters a student may set as ``teacher_<name>``
TEACHER_KEYS = ("dim", "n_layers", "n_heads", "dropout", "input_dropout", "lr", "weight_decay", "max_epochs",
                "patience", "eval_every")
#: parameters a student shares with its teacher (weight_decay is not one: both tune their own)
SHARED_KEYS = ("max_len", "batch_size", "valid_metric", "accelerator", "text_max_len", "bag_repeats")


_MINILM_PARAMS: list[int] = []


def minilm_parameters() -> int:
    """Inference parameter count of the MiniLM teacher encoder (without its unused pooler:
    ``encoders.inference_parameters``), from its safetensors header (no model load)."""
    if not _MINILM_PARAMS:
        import json
        import math
        import struct

        from metarec.methods.distill.text import minilm_path

        with open(minilm_path() / "model.safetensors", "rb") as f:
            n = struct.unpack("<Q", f.read(8))[0]
            header = json.loads(f.read(n))
        _MINILM_PARAMS.append(sum(math.prod(v["shape"]) for k, v in header.items()
                                  if k != "__metadata__" and not k.endswith("position_ids")
                                  and not k.startswith("pooler.")))   # mean pooling never runs the pooler
    return _MINILM_PARAMS[0]


class DistillMethod(LightningMethod):
    """Shared machinery; subclasses set ``kd``, ``text_mode`` and their defaults."""

    family = "distill"
    protocols = ("sequential", "general")
    defaults = {**COMMON, **STUDENT_SIZE}
    # sizes stay fixed (teacher vs student size is what the family compares); optimisation and regularisation
    # are searched. KD methods add their loss's own knobs.
    search_space = {"lr": loguniform(3e-4, 1e-2), "dropout": uniform(0.0, 0.5), "input_dropout": uniform(0.0, 0.7),
                    "weight_decay": loguniform(1e-8, 1e-3)}
    kd: ClassVar[str | None] = None
    #: None (id embeddings only), "fixed" (pre-computed MiniLM vectors), "encoder" (frozen vectors of the
    #: ``text_encoder`` parameter's encoder) or "student" (DistilBERT student)
    text_mode: ClassVar[str | None] = None
    uses_teacher: ClassVar[bool] = False
    cached_teacher: ClassVar[bool] = False   # the method IS a teacher: fit loads/saves the teacher cache

    def __init__(self, **params):
        super().__init__(**params)
        self._frozen_teacher: FrozenTeacher | MethodTeacher | None = None
        self.text_info: dict = {}
        tp = self.params.get("teacher_params")
        if tp is not None and not isinstance(tp, dict):
            raise ConfigError(f"method {self.name!r}: teacher_params must be a mapping of the teacher_method's "
                              f"parameters, got {tp!r}")
        if self.params.get("teacher_method"):
            build_method(self.params["teacher_method"], dict(tp or {}))   # names and values checked now

    # ---- building -------------------------------------------------------------------------------------------------
    def _check(self, split) -> None:
        if split.protocol not in self.protocols:
            raise ConfigError(f"method {self.name!r} supports protocols {', '.join(self.protocols)}; "
                              f"got {split.protocol!r}")
        if self.uses_teacher and self.kd is None:
            raise ConfigError(f"method {self.name!r}: no KD loss")
        if self.kd in ("rd", "rrd"):
            # the teacher's top kd_k items (without the target, for RD) must exist in the catalogue
            k, room = int(self.params["kd_k"]), split.n_items - (self.kd == "rd")
            if k > room:   # (k >= 1 is checked with the parameters)
                raise ConfigError(f"method {self.name!r}: kd_k must be between 1 and {room} on this split "
                                  f"({split.n_items} items), got {k}")

    def build_module(self, split):
        self._check(split)
        p = self.params
        text_emb = has_text = student = ids = mask = None
        text_dim = 0
        if self.text_mode == "encoder":    # frozen vectors of a named encoder (encoders.py), a run-store artifact
            from metarec.methods.distill.encoders import item_embeddings

            text_emb, has_text, self.text_info = item_embeddings(split, p["text_encoder"], self.artifacts,
                                                                 max_len=int(p["text_max_len"]))
            text_dim = text_emb.shape[1]
        elif self.text_mode:
            from metarec.methods.distill import text as T

            text_emb, has_text, self.text_info = T.teacher_item_embeddings(split, max_len=int(p["text_max_len"]),
                                                                               artifacts=self.artifacts)
            if self.text_mode == "fixed":
                text_dim = text_emb.shape[1]
            else:
                tok = T.load_tokenizer()
                ids, mask, _ = T.tokenize_items(split, tok, int(p["text_max_len"]))
                student = T.TextStudent(len(tok), dim=int(p["text_dim"]), n_layers=int(p["text_layers"]),
                                        n_heads=int(p["text_heads"]), hidden_dim=4 * int(p["text_dim"]),
                                        max_len=int(p["text_max_len"]))
                text_dim = student.dim
        if split.protocol == "sequential":
            backbone = SeqEncoder(split.n_items, dim=int(p["dim"]), n_layers=int(p["n_layers"]),
                                  n_heads=int(p["n_heads"]), max_len=int(p["max_len"]), dropout=float(p["dropout"]),
                                  text_dim=text_dim, text_ids=bool(p.get("text_ids", True)))
            L = int(p["max_len"])
            inputs, targets, _ = training_chunks(user_sequences(split.train, split.n_users), L)
            self._train_tensors = (inputs, targets)
            self._lengths = (targets >= 0).sum(1)
            if self.kd in ("rd", "rrd") and self._frozen_teacher is not None:
                top = self._frozen_teacher.seq_topk(inputs, targets, int(p["kd_k"]), exclude_target=self.kd == "rd")
                self._train_tensors = (inputs, targets, top)
            histories = {s: last_window(user_sequences(split.known(s), split.n_users), L) for s in STAGES}
            train_matrix = None
        else:
            backbone = BagTwoTower(split.n_items, dim=int(p["dim"]), n_layers=int(p["n_layers"]),
                                   dropout=float(p["input_dropout"]), text_dim=text_dim,
                                   text_ids=bool(p.get("text_ids", True)))
            train_matrix = interaction_matrix(split.train, split.n_users, split.n_items)
            active = torch.from_numpy((train_matrix.getnnz(axis=1) > 0).nonzero()[0])
            self._train_tensors = (active.repeat(int(p["bag_repeats"])),)   # several passes per "epoch"
            self._lengths = None
            histories = {s: interaction_matrix(split.known(s), split.n_users, split.n_items) for s in STAGES}
        module = DistillModule(
            backbone, histories=histories, train_matrix=train_matrix, lr=float(p["lr"]),
            weight_decay=float(p["weight_decay"]), kd=self.kd, kd_weight=float(p.get("kd_weight", 0.0)),
            temperature=float(p.get("temperature", 1.0)), kd_k=int(p.get("kd_k", 10)),
            rd_lambda=float(p.get("rd_lambda", 5.0)), teacher=self._frozen_teacher,
            text_emb=text_emb, has_text=has_text, text_student=student, text_ids=ids, text_mask=mask,
            emb_weight=float(p.get("emb_weight", 0.0)), text_batch=int(p.get("text_batch", 256)))
        module.gen.manual_seed(int(getattr(self, "_seed", 0)))
        return module

    def build_datamodule(self, split, seed):
        return DistillDataModule(self._train_tensors, int(self.params["batch_size"]), seed, self._lengths)

    def prepare(self, split, seed: int = 0) -> None:
        """Build the module without training (to load a checkpoint into it)."""
        self.n_users, self.n_items, self._seed = split.n_users, split.n_items, seed
        self.module = self.build_module(split)
        self.module.eval()

    # ---- fitting --------------------------------------------------------------------------------------------------
    def teacher_method(self) -> "DistillMethod":
        p = self.params
        params = {k: p[f"teacher_{k}"] for k in TEACHER_KEYS}
        params.update({k: p[k] for k in SHARED_KEYS})
        params["progress_bar"] = p["progress_bar"]
        return build_method(self.teacher_name, params)

    teacher_name: ClassVar[str] = "distill:teacher"

    @classmethod
    def teacher_fixed(cls, teacher: str, params: dict, student: dict | None = None) -> dict:
        """The parameters that make ``teacher`` (a registered method) in configuration ``params`` this student's
        teacher (a grid's ``teacher:`` key, resolved with the teacher study's selection): the backbone teacher as
        ``teacher_*`` values, whose shared parameters (``SHARED_KEYS``) must equal the student's own (``student``:
        its fixed parameters), any other method as ``teacher_method`` + ``teacher_params``."""
        name = getattr(cls, "name", cls.__name__)
        if not cls.uses_teacher:
            raise ConfigError(f"method {name!r} does not learn from a teacher")
        if teacher != cls.teacher_name:
            build_method(teacher, dict(params))   # names and values checked now
            return {"teacher_method": teacher, "teacher_params": dict(params)}
        resolved = build_method(teacher, dict(params)).params
        mine = {**cls.defaults, **(student or {})}
        differ = [k for k in SHARED_KEYS if k in resolved and resolved[k] != mine.get(k)]
        if differ:
            raise ConfigError(f"method {name!r} shares {', '.join(differ)} with its teacher {teacher!r}, but the "
                              f"teacher has {', '.join(f'{k}={resolved[k]!r}' for k in differ)} and the student "
                              f"{', '.join(f'{k}={mine.get(k)!r}' for k in differ)}: give both the same value")
        return {f"teacher_{k}": resolved[k] for k in TEACHER_KEYS}

    def fit_fresh(self, split, *, seed: int = 0, workdir=None):
        """Train from scratch (no teacher cache lookup for this method itself)."""
        self._seed = seed
        super().fit(split, seed=seed, workdir=workdir)
        if self.module.text_student is not None:
            self.module.refresh_text_cache()   # the restored best weights' item vectors
        return self

    def fit(self, split, *, seed: int = 0, workdir=None):
        from metarec.methods.distill.teachers import load_or_train

        self._check(split)
        if self.cached_teacher:
            load_or_train(self, split, seed, self.artifacts)
            return self
        if self.uses_teacher:
            tseed = seed if self.params.get("teacher_seed") is None else int(self.params["teacher_seed"])
            if self.params.get("teacher_method"):   # any Lightning method (e.g. a tuned mf-bpr), general only
                from metarec.methods.distill.teachers import load_or_train_method

                if split.protocol != "general":
                    raise ConfigError(f"method {self.name!r}: teacher_method works under the general protocol only "
                                      f"(sequence KD needs a teacher's logits at every training prefix)")
                teacher, self.teacher_meta = load_or_train_method(
                    build_method(self.params["teacher_method"], dict(self.params["teacher_params"] or {})), split,
                    tseed, self.artifacts)
                self._frozen_teacher = MethodTeacher(teacher)
            else:
                teacher, self.teacher_meta = load_or_train(self.teacher_method(), split, tseed, self.artifacts)
                self._frozen_teacher = FrozenTeacher(teacher.module)
        return self.fit_fresh(split, seed=seed, workdir=workdir)   # seeds again: the student's init never
        # depends on whether the teacher was trained or loaded

    # ---- scoring --------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def score(self, users) -> torch.Tensor:
        if getattr(self, "module", None) is None:
            raise RuntimeError(f"{self.name}: call fit() before scoring")
        stage = self.stage or "test"   # set by the evaluator (Method.set_stage); outside it, test
        users = as_user_tensor(users).to(self.module.device)
        return self.module.score(users, stage)

    def num_parameters(self) -> int:
        """Parameters that run at inference: the backbone (+ text encoder, see the module docstring). A frozen
        logit teacher is excluded (training only); so is the text student's distillation head."""
        m = self.module
        n = sum(p.numel() for p in m.backbone.parameters())
        if m.text_student is not None:
            n += m.text_student.inference_parameters()
        if self.text_mode == "fixed":
            n += minilm_parameters()
        if self.text_mode == "encoder":
            n += int(self.text_info["parameters"])
        return n


# Optimisation and regularisation defaults: each method's selection on ml-100k sequential (the studies tuned-ml100k
# adopts from distill: results/tuned-ml100k/tables/tuning.md; 3 significant digits). The studies' budget (1200
# CPU-s) bought 2-7 trials of these models, so a default is the best of a few draws, not a converged search; sizes
# and the training schedule are not searched.
TEACHER_TUNED = {"lr": 2.06e-3, "dropout": 0.358, "input_dropout": 0.422, "weight_decay": 5.30e-6}
STUDENT_TUNED = {"lr": 8.91e-3, "dropout": 0.274, "input_dropout": 0.681, "weight_decay": 3.75e-5}
# The studies share a sampler seed, so several selected the same draw of the common parameters: kd-soft, kd-rrd and
# text-student the teacher's (TEACHER_TUNED), text-student-alone kd-rd's.
RD_TUNED = {"lr": 1.29e-3, "dropout": 0.360, "input_dropout": 8.01e-5, "weight_decay": 3.25e-7}


def _teacher_defaults() -> dict:
    return {**COMMON, **TEACHER_SIZE, **TEACHER_TUNED}


def _student_defaults(**extra) -> dict:
    t = _teacher_defaults()
    # teacher_method / teacher_params: another registered (Lightning) method as the teacher, e.g. a tuned mf-bpr
    # under the general protocol; None: the distill:teacher backbone described by the teacher_* parameters
    return {**COMMON, **STUDENT_SIZE, **{f"teacher_{k}": t[k] for k in TEACHER_KEYS}, "teacher_seed": None,
            "teacher_method": None, "teacher_params": None, **extra}


@register("distill:teacher")
class Teacher(DistillMethod):
    """Wide/deep backbone (dim 128, 2 layers); trained once per (split, configuration, seed) and cached on disk."""

    defaults = _teacher_defaults()
    cached_teacher = True


@register("distill:student")
class Student(DistillMethod):
    """The small backbone (dim 32, 1 layer) trained alone (hard loss only)."""

    defaults = {**COMMON, **STUDENT_SIZE, **STUDENT_TUNED}


@register("distill:kd-soft")
class KDSoft(DistillMethod):
    """Student + soft-label KD (Hinton): hard loss + kd_weight * T^2 KL(teacher || student) over all items."""

    defaults = _student_defaults(**TEACHER_TUNED, kd_weight=0.352, temperature=8.0)
    search_space = {**DistillMethod.search_space, "kd_weight": loguniform(0.05, 5.0), "temperature": [1.0, 2.0, 4.0, 8.0]}
    kd = "soft"
    uses_teacher = True


@register("distill:kd-rd")
class KDRD(DistillMethod):
    """Student + Ranking Distillation (Tang & Wang 2018): teacher top-K as rank-weighted extra positives."""

    defaults = _student_defaults(**RD_TUNED, kd_weight=0.0983, kd_k=50, rd_lambda=5.98)
    search_space = {**DistillMethod.search_space, "kd_weight": loguniform(0.05, 5.0), "kd_k": [5, 10, 20, 50],
                    "rd_lambda": loguniform(0.5, 50.0)}
    kd = "rd"
    uses_teacher = True


@register("distill:kd-rrd")
class KDRRD(DistillMethod):
    """Student + relaxed ranking distillation (DE-RRD style listwise loss on the teacher's top-K)."""

    defaults = _student_defaults(**TEACHER_TUNED, kd_weight=0.352, kd_k=50)
    search_space = {**DistillMethod.search_space, "kd_weight": loguniform(0.05, 5.0), "kd_k": [5, 10, 20, 50]}
    kd = "rrd"
    uses_teacher = True


@register("distill:text-teacher")
class TextTeacher(DistillMethod):
    """Teacher backbone + frozen pretrained MiniLM-L6 item-text vectors (cached); counts MiniLM's parameters."""

    defaults = _teacher_defaults()
    text_mode = "fixed"
    cached_teacher = True


@register("distill:text-student")
class TextStudent(DistillMethod):
    """Student backbone + 2-layer 128-d DistilBERT text encoder distilled from MiniLM (emb_weight; 0 = alone)."""

    defaults = {**COMMON, **STUDENT_SIZE, **TEACHER_TUNED,
                "emb_weight": 1.0, "text_dim": 128, "text_layers": 2, "text_heads": 2, "text_batch": 256}
    text_mode = "student"


class TextRecommender(DistillMethod):
    """The teacher-size backbone over frozen item-text vectors of one encoder (``encoders.py``), with id embeddings
    (hybrid; ``text_ids: false`` for text only); counts the encoder's parameters. One registered name per encoder,
    so a table has one row per encoder: the family's frontier."""

    defaults = {**_teacher_defaults(), "text_encoder": "mpnet-6", "text_ids": True}
    domains = {"text_encoder": Domain("str", choices=ENCODERS)}
    text_mode = "encoder"


for _encoder in ENCODERS:
    register(f"distill:text-{_encoder}")(type(
        f"Text_{_encoder.replace('-', '_')}", (TextRecommender,),
        {"__doc__": f"{TextRecommender.__doc__.splitlines()[0]} Encoder: {_encoder}.",
         "defaults": {**TextRecommender.defaults, "text_encoder": _encoder},
         "domains": {"text_encoder": Domain("str", choices=(_encoder,))}}))


@register("distill:text-student-alone")
class TextStudentAlone(TextStudent):
    """The text student trained without embedding distillation (emb_weight 0): its 'student alone' row."""

    defaults = {**TextStudent.defaults, "emb_weight": 0.0, **RD_TUNED}
