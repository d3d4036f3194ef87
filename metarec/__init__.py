"""metarec: one persisted split, one evaluator, every method."""
from metarec import compat as _compat  # noqa: F401  (applies third-party shims first)

__version__ = "0.1.0"
