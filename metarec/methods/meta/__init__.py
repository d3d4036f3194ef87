"""Meta-learning family (cold start). ``meta:*`` (``ranking``): MAML, first-order MAML and Reptile (learn2learn) of a
cold user's vector for full-catalogue ranking, and the baselines under the same protocol (global model, fine-tuning,
MF fold-in, item kNN from the support). ``melu:*`` (``methods``): the MeLU-style rating variant (MAE/RMSE)."""
from metarec.methods.meta.knn import SupportItemKNN
from metarec.methods.meta.methods import MetaFinetune, MetaFOMAML, MetaGlobal, MetaMAML, MetaReptile
from metarec.methods.meta.ranking import (RankFinetune, RankFoldin, RankFOMAML, RankGlobal, RankMAML,
                                          RankReptile)

__all__ = ["MetaMAML", "MetaFOMAML", "MetaReptile", "MetaFinetune", "MetaGlobal", "RankMAML", "RankFOMAML",
           "RankReptile", "RankFinetune", "RankFoldin", "RankGlobal", "SupportItemKNN"]
