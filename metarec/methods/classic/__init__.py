from metarec.methods.classic.mf_bpr import MFBPR
from metarec.methods.classic.pop import Pop

__all__ = ["MFBPR", "Pop"]
