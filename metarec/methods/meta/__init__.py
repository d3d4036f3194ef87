"""Meta-learning family (cold-start): MAML, first-order MAML, Reptile (learn2learn) on a MeLU-style model, and the
baselines under the same protocol and adaptation budget (global model, global model fine-tuned per user)."""
from metarec.methods.meta.methods import MetaFinetune, MetaFOMAML, MetaGlobal, MetaMAML, MetaReptile

__all__ = ["MetaMAML", "MetaFOMAML", "MetaReptile", "MetaFinetune", "MetaGlobal"]
