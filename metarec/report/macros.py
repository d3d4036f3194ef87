"""Numbers for the paper's prose, generated with its tables: text that quotes a result cannot drift from it.

Every value of a results folder's leaderboard (``tables/leaderboard.csv``, the ``leaderboard`` summary) becomes a
LaTeX macro keyed by where it comes from::

    <grid>/<dataset>/<protocol>[/<setting>]/<method>/<column>

``setting`` names the protocol parameters that vary within the grid's dataset and protocol (``k_shot=5``), as the
report's tables do; ``column`` is a metric (its mean over seeds, ``ndcg@10``), its 95 % interval half-width
(``ndcg@10_ci``), ``rank``, and against the best tuned baseline ``delta``, ``delta_ci_low``, ``delta_ci_high`` and
``seed_p_holm``. ``paper/macros.tex`` defines them all; the paper writes ``\\res{multitask/ml-100k/general/
mtl:single/ndcg@10}``, which LaTeX refuses to typeset when the key is not defined, and ``metarec paper`` fails
before LaTeX runs, naming every key the paper uses that the results no longer give (``missing_keys``).
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pandas as pd

#: how the paper quotes a result (defined in paper.tex's preamble)
USE = re.compile(r"\\res\{([^{}]+)\}")
#: the columns of a leaderboard row that are not values (they make up the key)
KEY_COLUMNS = ("dataset", "protocol", "protocol_params", "method", "family", "baseline")


def varying_keys(decoded: list[dict]) -> list[str]:
    """The protocol parameters whose values differ among ``decoded`` (one dict of protocol parameters per setting),
    sorted: what names a setting in the report's tables, figures and these keys (e.g. ``k_shot``)."""
    keys = set().union(*decoded) if decoded else set()
    return sorted(k for k in keys if len({json.dumps(d.get(k), sort_keys=True) for d in decoded}) > 1)


def each_setting(sel: pd.DataFrame):
    """(dataset, protocol, protocol_params, label, rows) per setting of ``sel``, in order (numbers by value); the
    label names what varies within the dataset and protocol (e.g. ``k_shot=5``), '' when nothing does; ``rows`` are
    the setting's rows of ``sel``. Every table and figure that shows one setting at a time walks them this way, so no
    panel pools two settings."""
    for (ds, proto), g in sel.groupby(["dataset", "protocol"], sort=True):
        params = sorted(g.protocol_params.unique())
        decoded = [json.loads(p) for p in params]
        varying = varying_keys(decoded)
        for p, d in sorted(zip(params, decoded), key=lambda x: [str(x[1].get(k)).zfill(8) for k in varying]):
            yield ds, proto, p, " ".join(f"{k}={d.get(k)}" for k in varying), g[g.protocol_params == p]


def settings(board: pd.DataFrame) -> pd.Series:
    """Per row, the protocol parameters that vary among the rows of its dataset and protocol ('' when none)."""
    out = pd.Series("", index=board.index, dtype=object)
    for _, rows in board.groupby(["dataset", "protocol"], sort=False):
        decoded = {p: json.loads(p) for p in rows.protocol_params.unique()}
        if len(decoded) < 2:
            continue
        varying = varying_keys(list(decoded.values()))
        labels = {p: "_".join(f"{k}={d.get(k)}" for k in varying) for p, d in decoded.items()}
        out[rows.index] = rows.protocol_params.map(labels)
    return out


def _fmt(column: str, value) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if column == "rank":
        return str(int(value))
    if column == "seed_p_holm":
        # the < in math mode: in running text a T1 font sets a bare < as an inverted exclamation mark
        return f"{value:.2g}" if value >= 0.001 else "\\ensuremath{<}0.001"
    if column.startswith("delta"):   # a typeset minus sign, not a hyphen
        return f"\\ensuremath{{{value:+.4f}}}"
    return f"{value:.4f}"


#: columns of the ``vs_reference`` summary's table quoted as ``.../<method>/vs_reference/<metric>/<column>``
VS_REFERENCE = {"delta": "delta", "ci_low": "delta_ci_low", "ci_high": "delta_ci_high", "seed_p_holm": "seed_p_holm"}


#: the ``text_frontier`` summary's goal fields quoted as ``<grid>/<dataset>/<protocol>/text_frontier/<field>``
TEXT_GOALS = {"ndcg_pct": "pct", "params_pct": "pct", "recommender_params_pct": "pct", "speedup": "ratio"}
#: its per-method columns quoted as ``.../<method>/<column>``
TEXT_METHOD_COLUMNS = {"items_per_s": "{:.1f}", "latency_ms": "{:.3f}", "parameters": "{:,.0f}",
                       "encoder_parameters": "{:,.0f}"}
#: the ``distill_goals`` summary's columns per student
DISTILL_GOALS = {"params_pct": "{:.1f}", "ndcg_pct": "{:.1f}", "speedup": "{:.1f}"}
#: a seed-level comparison (``stats.compare`` row) quoted as ``.../<name>`` for each of these columns
PAIRED = {"delta": "delta", "ci_low": "delta_ci_low", "ci_high": "delta_ci_high", "seed_p": "seed_p",
          "seed_p_holm": "seed_p_holm"}


def _text_frontier(grid: str, data: dict) -> dict[str, str]:
    """Keys of ``tables/text_frontier.json``: per dataset x protocol the student's goals (``.../text_frontier/
    ndcg_pct``, ``ndcg_pct_ci_low``/``_high``, ``params_pct``, ``recommender_params_pct``, ``speedup``), its test
    against the random-init control (``.../text_frontier/vs_control/delta`` ...), each method's throughput,
    latency and sizes (``.../<method>/items_per_s`` ...), and each text row against the id-only backbone
    (``.../<method>/vs_id_only/delta`` ...)."""
    out: dict[str, str] = {}

    def put(key: str, value, pattern: str) -> None:
        if value is not None and not (isinstance(value, float) and math.isnan(value)):
            out[key] = pattern.format(value)

    def paired(prefix: str, row: dict) -> None:
        for column, name in PAIRED.items():
            text = _fmt("seed_p_holm" if name.startswith("seed_p") else name, row.get(column))
            if text is not None:
                out[f"{prefix}/{name}"] = text

    for setting, entry in data.items():
        base = f"{grid}/{setting}"
        for field, kind in TEXT_GOALS.items():
            put(f"{base}/text_frontier/{field}", entry.get(field), "{:.1f}" if kind == "pct" else "{:.2f}")
        low, high = entry.get("ndcg_pct_ci") or (None, None)
        put(f"{base}/text_frontier/ndcg_pct_ci_low", low, "{:.1f}")
        put(f"{base}/text_frontier/ndcg_pct_ci_high", high, "{:.1f}")
        if entry.get("vs_control_test"):
            paired(f"{base}/text_frontier/vs_control", entry["vs_control_test"])
        for method, row in (entry.get("methods") or {}).items():
            for column, pattern in TEXT_METHOD_COLUMNS.items():
                put(f"{base}/{method}/{column}", row.get(column), pattern)
        for method, row in (entry.get("vs_id_only") or {}).items():
            paired(f"{base}/{method}/vs_id_only", row)
    return out


def _prefix(grid: str, row, setting: str) -> str:
    return "/".join([grid, row.dataset, row.protocol] + ([setting] if setting else []) + [row.method])


def values(folder: Path) -> dict[str, str]:
    """key -> formatted value for one results folder: its leaderboard (``tables/leaderboard.csv``) and, where the
    grid has a reference method, every method against it (``tables/vs_reference.csv``, keys
    ``.../<method>/vs_reference/<metric>/delta`` and ``delta_ci_low``, ``delta_ci_high``, ``seed_p_holm``) and, where
    the grid has the ``text_frontier`` summary, its goals and tests (``_text_frontier``), and where it has
    ``distill_goals``, each student's share of its teacher's parameters and NDCG and its speed-up."""
    grid = Path(folder).name
    out: dict[str, str] = {}
    path = Path(folder) / "tables" / "leaderboard.csv"
    if path.is_file():
        board = pd.read_csv(path)
        for (_, row), setting in zip(board.iterrows(), settings(board)):
            for column in board.columns:
                text = None if column in KEY_COLUMNS else _fmt(column, row[column])
                if text is not None:
                    out[f"{_prefix(grid, row, setting)}/{column}"] = text
    path = Path(folder) / "tables" / "vs_reference.csv"
    if path.is_file():
        tests = pd.read_csv(path)
        for (_, row), setting in zip(tests.iterrows(), settings(tests)):
            for column, name in VS_REFERENCE.items():
                text = _fmt(name, row[column]) if column in tests.columns else None
                if text is not None:
                    out[f"{_prefix(grid, row, setting)}/vs_reference/{row.metric}/{name}"] = text
    path = Path(folder) / "tables" / "text_frontier.json"
    if path.is_file():
        out.update(_text_frontier(grid, json.loads(path.read_text())))
    path = Path(folder) / "meta.json"
    if path.is_file():   # a composition's compute (compose.compute_spent): <grid>/compute/cpu_h, runs, trials, ...
        spent = json.loads(path.read_text()).get("compute") or {}
        for field, value in spent.items():
            if isinstance(value, (int, float)):
                out[f"{grid}/compute/{field}"] = f"{value:,.1f}" if field.endswith("_h") else f"{value:,}"
    path = Path(folder) / "tables" / "distill_goals.json"
    if path.is_file():   # each student against its teacher: .../<method>/distill_goals/params_pct, ndcg_pct, speedup
        for setting, rows in json.loads(path.read_text()).items():
            for method, row in rows.items():
                for field, pattern in DISTILL_GOALS.items():
                    value = row.get(field)
                    if value is not None and not math.isnan(value):
                        out[f"{grid}/{setting}/{method}/distill_goals/{field}"] = pattern.format(value)
    return out


def write(folders: list[Path], path: Path) -> dict[str, str]:
    """``path`` (paper/macros.tex): every folder's values as ``\\res`` keys; returns them."""
    from metarec.utils import atomic_write_text

    keys: dict[str, str] = {}
    for folder in folders:
        keys.update(values(folder))
    lines = ["% generated by `metarec paper` from results/*/tables/leaderboard.csv -- do not edit",
             "\\makeatletter"]
    lines += [f"\\@namedef{{mr@{k}}}{{{v}}}" for k, v in sorted(keys.items())]
    lines.append("\\makeatother")
    atomic_write_text(Path(path), "\n".join(lines) + "\n")
    return keys


def used(tex: str) -> list[str]:
    """The keys a LaTeX source quotes with ``\\res{...}`` (comments left out), in order of first use."""
    text = "\n".join(re.sub(r"(?<!\\)%.*", "", line) for line in tex.splitlines())
    return list(dict.fromkeys(USE.findall(text)))


def missing_keys(tex: str, keys: dict[str, str]) -> list[str]:
    """The keys ``tex`` quotes that ``keys`` does not define."""
    return [k for k in used(tex) if k not in keys]
