"""One adapter from a LightningModule + LightningDataModule pair to the Method contract.

The adapter owns the Trainer: seeding, deterministic algorithms, CPU threads, the progress bar, a CSV logger in
the run's folder, validation on the split's valid stage through metarec's own evaluator (the same one that
scores the test stage), early stopping on that metric and restoring the best validated weights. NaN/inf losses
stop training with a TrainingError naming the epoch and step.

A subclass implements ``build_module(split)`` and ``build_datamodule(split, seed)``; the module implements
``score(users) -> [len(users), n_items]`` (and optionally ``score_pairs``/``predict_rating``).
"""
from __future__ import annotations

import copy
import logging
import os
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import torch

from metarec.errors import TrainingError
from metarec.methods.base import Method, as_user_tensor

TRAINER_DEFAULTS: dict[str, Any] = {
    "max_epochs": 50,
    "patience": 5,            # validations without improvement before stopping
    "eval_every": 1,          # validate every N epochs
    "valid_metric": "ndcg@10",
    "progress_bar": True,
    "accelerator": "cpu",     # "auto" uses a GPU when there is one; CPU is the reproducible default
}


class FiniteLossGuard:
    """Mixin for LightningModules: call ``self.check_finite(loss)`` in training_step."""

    def check_finite(self, loss: torch.Tensor) -> torch.Tensor:
        if not torch.isfinite(loss).all():
            raise TrainingError(f"non-finite loss ({loss.item()}) at epoch {self.current_epoch}, "
                                f"step {self.global_step}: lower the learning rate or check the data")
        return loss


def _validation_callback(method: "LightningMethod", split, metric: str, every: int, patience: int):
    import pytorch_lightning as pl

    from metarec.eval import Evaluator

    class ValidateOnSplit(pl.Callback):
        """Every ``every`` epochs: scores split.valid with the shared evaluator, logs ``valid/<metric>``, keeps the
        best weights, and stops after ``patience`` evaluations without improvement. (Lightning's EarlyStopping
        expects the metric at every epoch; validating every N epochs needs the count kept here.)"""

        def __init__(self):
            self.evaluator = Evaluator(split, metrics=[metric])
            self.best, self.best_state, self.best_epoch, self.history, self.curve = -float("inf"), None, -1, [], []
            self.bad_evals = 0
            self.t0 = time.perf_counter()

        def on_train_start(self, trainer, module):
            self.t0 = time.perf_counter()

        def on_train_epoch_end(self, trainer, module):
            epoch = trainer.current_epoch
            if (epoch + 1) % every and epoch + 1 != trainer.max_epochs:
                return
            module.eval()
            with torch.no_grad():
                value = float(self.evaluator.evaluate(method, stage="valid").means[metric])
            module.train()
            self.history.append((epoch, value))
            self.curve.append((epoch, value, time.perf_counter() - self.t0))  # + seconds since training began
            module.log(f"valid/{metric}", value, prog_bar=True, on_epoch=True)
            if value > self.best:
                self.best, self.best_epoch, self.bad_evals = value, epoch, 0
                self.best_state = copy.deepcopy(module.state_dict())
            else:
                self.bad_evals += 1
                if self.bad_evals >= patience:
                    trainer.should_stop = True
            if method.report(epoch, value):  # a tuner's pruner judged this trial hopeless
                trainer.should_stop = True

    return ValidateOnSplit()


def _epoch_log(method: "LightningMethod", validation):
    """One line per epoch on stderr when it is not a terminal (a log file, CI): epoch k/N (1-based, of max_epochs),
    the epoch's training loss, the validation metric when it was computed this epoch (with the best so far), and
    the time since training began. On a terminal Lightning's own bar shows the same."""
    import sys

    import pytorch_lightning as pl

    class EpochLog(pl.Callback):
        def on_train_start(self, trainer, module):
            self.t0 = time.perf_counter()

        def on_train_epoch_end(self, trainer, module):
            epoch = trainer.current_epoch + 1
            loss = trainer.callback_metrics.get("train/loss")
            parts = [f"[{method.name}] epoch {epoch}/{trainer.max_epochs}"]
            if loss is not None:
                parts.append(f"loss {float(loss):.4f}")
            if validation is not None and validation.history and validation.history[-1][0] == epoch - 1:
                metric = method.params["valid_metric"]
                parts.append(f"valid {metric} {validation.history[-1][1]:.4f} (best {validation.best:.4f} at "
                             f"epoch {validation.best_epoch + 1})")
            parts.append(f"{time.perf_counter() - self.t0:.0f} s")
            print(", ".join(parts), file=sys.stderr, flush=True)

    return EpochLog()


class _OneBasedBar:
    """Lightning's progress bar numbers epochs from 0 ("Epoch 0/1" for two epochs): show k/N from 1."""

    @staticmethod
    def build():
        from pytorch_lightning.callbacks import TQDMProgressBar

        class Bar(TQDMProgressBar):
            def on_train_epoch_start(self, trainer, *args):
                super().on_train_epoch_start(trainer, *args)
                self.train_progress_bar.set_description(f"Epoch {trainer.current_epoch + 1}/{trainer.max_epochs}")

        return Bar()


class LightningMethod(Method):
    """Base for methods written as a LightningModule + LightningDataModule."""

    defaults = dict(TRAINER_DEFAULTS)

    def build_module(self, split):
        raise NotImplementedError

    def build_datamodule(self, split, seed: int):
        raise NotImplementedError

    def fit(self, split, *, seed: int = 0, workdir: str | Path | None = None) -> "LightningMethod":
        import pytorch_lightning as pl

        for name in ("pytorch_lightning", "lightning_fabric", "lightning.pytorch"):
            logging.getLogger(name).setLevel(logging.WARNING)
        warnings.filterwarnings("ignore", ".*does not have many workers.*")
        warnings.filterwarnings("ignore", ".*LeafSpec.*")
        self.n_users, self.n_items = split.n_users, split.n_items
        pl.seed_everything(seed, workers=True, verbose=False)
        self.module = self.build_module(split)
        datamodule = self.build_datamodule(split, seed)
        if workdir is None:   # a folder of our own making (the training log only) is removed after the fit
            with tempfile.TemporaryDirectory(prefix="metarec-", ignore_cleanup_errors=True) as tmp:
                return self._train(split, Path(tmp), datamodule)
        Path(workdir).mkdir(parents=True, exist_ok=True)
        return self._train(split, Path(workdir), datamodule)

    def _train(self, split, workdir: Path, datamodule) -> "LightningMethod":
        import pytorch_lightning as pl
        from pytorch_lightning.loggers import CSVLogger

        p = self.params
        validate = p["valid_metric"] and len(split.valid) > 0
        callbacks = []
        if validate:
            callbacks.append(_validation_callback(self, split, p["valid_metric"], int(p["eval_every"]),
                                                  int(p["patience"])))
        bar = bool(p["progress_bar"]) and os.isatty(2)
        if p["progress_bar"] and not bar:   # a log: one line per epoch instead of a carriage-return bar
            callbacks.append(_epoch_log(self, callbacks[0] if validate else None))
        if bar:
            callbacks.append(_OneBasedBar.build())
        trainer = pl.Trainer(
            max_epochs=int(p["max_epochs"]), accelerator=p["accelerator"], devices=1, deterministic=True,
            logger=CSVLogger(str(workdir), name="lightning", version=""), callbacks=callbacks,
            enable_checkpointing=False, enable_progress_bar=bar,
            enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0, log_every_n_steps=10,
            reload_dataloaders_every_n_epochs=1, default_root_dir=str(workdir))
        try:
            trainer.fit(self.module, datamodule=datamodule)
        except SystemExit:
            # Lightning answers Ctrl-C with a graceful shutdown and exit(1); hand the interrupt back instead, so
            # the runner keeps every finished run and the CLI says how to resume
            if trainer.interrupted:
                raise KeyboardInterrupt from None
            raise
        self.epochs_trained = trainer.current_epoch
        if validate and callbacks[0].best_state is not None:
            self.module.load_state_dict(callbacks[0].best_state)
            self.best_epoch, self.best_valid = callbacks[0].best_epoch, callbacks[0].best
            self.valid_history = callbacks[0].history
            self.valid_curve = callbacks[0].curve
        self.module.eval()
        return self

    @torch.no_grad()
    def score(self, users) -> torch.Tensor:
        users = as_user_tensor(users).to(self.module.device)
        return self.module.score(users)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.module.parameters() if p.requires_grad)
