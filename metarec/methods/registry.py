"""Method registry: built-in methods register with ``@register("name")``; outside packages add a class to the
entry-point group ``metarec.methods`` (``name = "package.module:Class"``) and are found without touching metarec."""
from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

from metarec.errors import ConfigError, UnknownNameError
from metarec.methods.base import Method

ENTRY_POINT_GROUP = "metarec.methods"
_BUILTIN: dict[str, type[Method]] = {}


def register(name: str):
    """Class decorator: register a Method subclass under ``name``."""
    def deco(cls: type[Method]) -> type[Method]:
        if name in _BUILTIN and _BUILTIN[name] is not cls:
            raise ValueError(f"method name {name!r} registered twice ({_BUILTIN[name].__qualname__}, {cls.__qualname__})")
        cls.name = name
        _BUILTIN[name] = cls
        return cls
    return deco


def _plugins() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


# Built-in method packages, one per family; importing a package runs its @register decorators.
BUILTIN_PACKAGES = ("metarec.methods.classic", "metarec.methods.recbole", "metarec.methods.distill",
                    "metarec.methods.multitask", "metarec.methods.meta")


def _load_builtins() -> None:
    import importlib

    for package in BUILTIN_PACKAGES:
        try:
            importlib.import_module(package)
        except ModuleNotFoundError as e:
            if e.name != package:  # the package exists but one of its imports is missing
                _warn_once(package, e)
        except Exception as e:  # never let one family's failure break the other methods
            _warn_once(package, e)


_WARNED: set[str] = set()


def _warn_once(package: str, error: Exception) -> None:
    if package not in _WARNED:
        _WARNED.add(package)
        import warnings

        warnings.warn(f"{package} not loaded ({type(error).__name__}: {error}); its methods are unavailable")


def list_methods() -> dict[str, str]:
    """name -> where it comes from ('builtin' or the plugin's 'module:Class')."""
    _load_builtins()
    out = {name: "builtin" for name in _BUILTIN}
    for name, ep in _plugins().items():
        out[name] = f"plugin {ep.value}" + (" CLASHES with the built-in" if name in _BUILTIN else "")
    return dict(sorted(out.items()))


def get_method(name: str) -> type[Method]:
    _load_builtins()
    plugins = _plugins()
    if name in _BUILTIN and name in plugins:
        # never a silent choice between two methods of the same name: results would not say which one ran
        raise ConfigError(f"plugin method {name!r} ({plugins[name].value}) has the name of a built-in method; "
                          f"rename its entry point in group {ENTRY_POINT_GROUP!r}")
    if name in _BUILTIN:
        return _BUILTIN[name]
    if name in plugins:
        try:
            cls = plugins[name].load()
        except Exception as e:  # a broken plugin must name itself, not crash the registry
            raise ConfigError(f"plugin method {name!r} ({plugins[name].value}) failed to load: {e}") from None
        if not (isinstance(cls, type) and issubclass(cls, Method)):
            raise ConfigError(f"plugin method {name!r} ({plugins[name].value}) is not a metarec Method subclass")
        cls.name = name
        return cls
    raise UnknownNameError("method", name, list(_BUILTIN) + list(plugins))


def build_method(name: str, params: dict[str, Any] | None = None) -> Method:
    return get_method(name)(**(params or {}))
