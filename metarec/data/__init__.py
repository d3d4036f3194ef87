"""Datasets: the registry of dataset cards, validated loaders for every supported format, preprocessing and
downloads. Everything produces the one in-memory :class:`~metarec.data.schema.Dataset`.

    from metarec.data import load_dataset, list_cards
    ds = load_dataset("ml-100k", min_rating=4, k_core=5)
"""
from metarec.data.schema import Dataset, build_dataset, index_ids
from metarec.data.preprocess import preprocess
from metarec.data.registry import (DatasetCard, clear_cache, data_roots, get_card, list_cards, load_dataset,
                                   locate, status)
from metarec.data.download import download

__all__ = ["Dataset", "DatasetCard", "build_dataset", "clear_cache", "data_roots", "download", "get_card",
           "index_ids", "list_cards", "load_dataset", "locate", "preprocess", "status"]
