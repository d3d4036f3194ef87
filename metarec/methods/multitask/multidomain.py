"""The combined multi-domain dataset moved to ``metarec.data.combine`` (a dataset card, ``amazon2018-multidomain``,
builds it like any dataset); kept here so existing imports work."""
from metarec.data.combine import PREFIX, combine

__all__ = ["PREFIX", "combine"]
