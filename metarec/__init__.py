"""metarec: one persisted split, one evaluator, every method."""
from metarec import compat as _compat  # noqa: F401  (applies third-party shims first)

__version__ = "0.1.0"

from metarec.utils import code_identity as _code_identity  # noqa: E402

_code_identity()   # what code this process runs, taken now (a run records it: metarec.utils.code_identity)
