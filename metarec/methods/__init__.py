"""Methods: one base class (fit / score), a registry, one module or folder per model."""
from metarec.methods.base import Method
from metarec.methods.registry import build_method, get_method, list_methods, register

__all__ = ["Method", "build_method", "get_method", "list_methods", "register"]
