"""Small shared helpers: atomic writes, key=value option parsing, the working folder."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import yaml

from metarec.errors import ConfigError


def home() -> Path:
    """Where splits and runs go: $METAREC_HOME, else ./runs (git-ignored)."""
    return Path(os.environ.get("METAREC_HOME") or Path.cwd() / "runs")


def file_digest(path: str | os.PathLike, algo: str = "sha256") -> str:
    """Hex digest of a file, read in 1 MiB blocks (split files, artifacts and downloads are checked with it)."""
    import hashlib

    h = hashlib.new(algo)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write via a temporary file in the same folder and rename: readers see the old or the new file, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(o):
    import numpy as np

    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, (np.ndarray,)):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def parse_assignments(items: list[str] | None, what: str) -> dict[str, Any]:
    """``["dim=64", "lr=1e-3", "ratios=[0.8,0.1,0.1]"]`` -> dict, values parsed as YAML scalars/lists."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"bad {what} {item!r}: expected KEY=VALUE")
        key, value = item.split("=", 1)
        if not key:
            raise ConfigError(f"bad {what} {item!r}: empty key")
        try:
            out[key] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise ConfigError(f"bad {what} {item!r}: value is not valid YAML") from None
    return out


def versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {}
    for pkg in ("metarec", "torch", "pytorch-lightning", "recbole", "numpy", "pandas", "transformers", "learn2learn"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def machine() -> dict:
    """What ran a run: CPU model, logical cores, platform (for a result's reproducibility card)."""
    import os
    import platform

    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {"cpu": cpu or "unknown", "cores": os.cpu_count(), "platform": platform.platform()}


def reset_peak_memory() -> bool:
    """Start a new peak-RSS window for this process (Linux: ``/proc/self/clear_refs`` 5 resets VmHWM); False where
    the platform cannot, and :func:`peak_memory_mb` then reports the process's lifetime peak."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_memory_mb(window: bool) -> dict:
    """Peak resident memory in MiB since :func:`reset_peak_memory` (``window`` True) or of the whole process."""
    if window:
        try:
            with open("/proc/self/status") as f:
                kb = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
            return {"peak_rss_mb": kb / 1024, "peak_rss_scope": "run"}
        except (OSError, StopIteration, ValueError):
            pass
    import resource

    return {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "peak_rss_scope": "process"}


def _git(*args: str) -> str | None:
    import subprocess

    try:
        root = Path(__file__).resolve().parents[1]
        done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=5)
        return done.stdout.strip() if done.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def _file_sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def source_hashes(package: Path | None = None) -> dict[str, str]:
    """sha256 of every ``**/*.py`` under ``package`` (default ``metarec/``), by path relative to it."""
    package = Path(package) if package is not None else Path(__file__).resolve().parent
    return {path.relative_to(package).as_posix(): _file_sha256(path) for path in sorted(package.rglob("*.py"))}


def source_digest(package: Path | None = None) -> str:
    """One sha256 over the package's Python sources as they are on disk now (each file's path and hash, in path
    order)."""
    return _digest(source_hashes(package))


def _digest(hashes: dict[str, str]) -> str:
    import hashlib

    h = hashlib.sha256()
    for rel, digest in hashes.items():
        h.update(f"{rel}\0{digest}\n".encode())
    return h.hexdigest()


_CODE_AT_IMPORT: dict | None = None
_FILES_AT_IMPORT: dict[str, str] = {}


def code_identity() -> dict:
    """The code this process runs, taken once, when ``metarec`` was first imported (``metarec/__init__`` calls
    this): the git revision then, whether the package's sources differed from it (uncommitted changes), and the
    digest of those sources. Why at import and not per run: a long-lived process (a pool worker, a Ray actor)
    keeps the modules it imported while the checkout moves on, so HEAD at run time can name code the run never
    executed; :func:`code_now_differs` says when that may be the case. Not a git checkout: revision None."""
    global _CODE_AT_IMPORT
    if _CODE_AT_IMPORT is None:
        rev = _git("rev-parse", "HEAD")
        status = _git("status", "--porcelain", "--", "metarec") if rev else None
        _FILES_AT_IMPORT.update(source_hashes())
        _CODE_AT_IMPORT = {"revision": rev or None, "uncommitted": bool(status) if status is not None else None,
                           "source_sha256": _digest(_FILES_AT_IMPORT)}
    return dict(_CODE_AT_IMPORT)


def code_now_differs() -> bool:
    """True when a package module this process has loaded is no longer, on disk, what it was when the process
    started: imported after the change, it is not the code :func:`code_identity` names (imported before, it is,
    but the flag stays conservative). Modules the process never loaded do not count, nor does ``metarec.report``:
    it renders exported results and no run calls it (a process that parsed a grid has loaded its summaries to check
    their names), so editing a table or figure while a grid runs does not cast doubt on the grid's runs."""
    import sys

    code_identity()
    package = Path(__file__).resolve().parent
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if not name.startswith("metarec") or name == "metarec.report" or name.startswith("metarec.report.") \
                or not path:
            continue
        try:
            rel = Path(path).resolve().relative_to(package).as_posix()
        except ValueError:
            continue
        try:   # only the loaded modules' files are read: a run calls this once, at its end
            now = _file_sha256(package / rel)
        except OSError:   # deleted since
            now = None
        if now != _FILES_AT_IMPORT.get(rel):
            return True
    return False
