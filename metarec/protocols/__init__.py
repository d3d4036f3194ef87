"""Protocols turn a Dataset into a persisted Split. Each module registers one protocol by name."""
from metarec.protocols import cold_start, general, given, impressions, sequential, temporal  # noqa: F401
from metarec.protocols.base import PROTOCOLS, get_protocol, params_key
from metarec.protocols.split import Split

__all__ = ["PROTOCOLS", "Split", "get_protocol", "params_key"]
