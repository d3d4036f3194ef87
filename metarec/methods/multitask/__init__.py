"""Multi-task recommenders (family ``multitask``): single-task, SharedBottom, MMoE and PLE over shared user/item
embeddings and side information; tasks built from the split's data (``tasks``), per-task metrics in
``metarec.eval.tasks``; a combined multi-domain dataset in ``multidomain``."""
from metarec.methods.multitask.methods import MMoE, PLE, MultiTaskMethod, SharedBottom, SingleTask  # noqa: F401
