from metarec.methods.classic.mf_bpr import MFBPR
from metarec.methods.classic.mmr import MMR
from metarec.methods.classic.pop import Pop, Random, Recency

__all__ = ["MFBPR", "MMR", "Pop", "Random", "Recency"]
