"""Mutation testing of the core, resumable across machines, and the score per module.

    make mutation                                   # every configured module (hours on 2 cores)
    make mutation MUTATE='metarec.protocols.*'      # a part: mutant-name globs
    .venv/bin/python benchmarks/mutation_score.py [--goal 0.85] [--survivors]   # the score only, from the state

mutmut 3 keeps its verdicts in ``mutants/`` (git-ignored, gone with the machine). This script keeps them in
``results/mutation/`` (committed): ``run`` copies that state into ``mutants/`` first — mutmut keeps a verdict while
the mutated function's source hash is unchanged and retests it otherwise — then runs the mutants that have no
verdict yet in chunks, saving the state after each chunk, so a killed run loses at most one chunk.

The score per module is killed / (killed + survived + no tests): a mutant no test even runs counts against it.
Timeouts count as killed (the mutant made a test hang, which a test run notices), as mutmut counts them. Exit
status 1 if a module misses the goal.
"""
from __future__ import annotations

import argparse
import collections
import fnmatch
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STATE = ROOT / "results" / "mutation"
WORK = ROOT / "mutants"
STATS = "mutmut-stats.json"
KILLED = {"killed", "timeout"}
COUNTED = KILLED | {"survived", "no tests"}


def status_of(code) -> str:
    from mutmut.stats import status_by_exit_code   # mutmut's own reading of its exit codes

    return status_by_exit_code[code]


def module_of(key: str) -> str:
    """'metarec.eval.registry.x_register_metric__mutmut_3' -> 'metarec.eval.registry' (methods: 'xǁClassǁm')."""
    parts = key.split("__mutmut_")[0].split(".")
    while parts and (parts[-1].startswith("x_") or parts[-1].startswith("xǁ")):
        parts.pop()
    return ".".join(parts)


def verdicts(folder: Path) -> dict[str, object]:
    """mutant name -> mutmut exit code (None: not run yet), from every ``*.py.meta`` of the package under
    ``folder`` (``folder/metarec``: mutants/ also holds a copy of results/, committed verdicts included)."""
    out: dict[str, object] = {}
    for meta in sorted((folder / "metarec").rglob("*.py.meta")):
        out.update(json.loads(meta.read_text())["exit_code_by_key"])
    return out


def save() -> None:
    """mutants/ -> results/mutation/: the verdict files and the test map (written whole, then moved in place)."""
    tmp = STATE.with_name(STATE.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    # only the package's verdicts: mutants/ also holds a copy of results/ (also_copy), mutation state included
    for meta in (WORK / "metarec").rglob("*.py.meta"):
        dest = tmp / meta.relative_to(WORK)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(meta, dest)
    if (WORK / STATS).exists():
        tmp.mkdir(parents=True, exist_ok=True)
        shutil.copy2(WORK / STATS, tmp / STATS)
    if STATE.exists():
        shutil.rmtree(STATE)
    tmp.rename(STATE)


def restore() -> None:
    """results/mutation/ -> mutants/ where mutants/ has no state of its own (a fresh machine)."""
    if not STATE.exists() or any(WORK.rglob("*.py.meta")):
        return
    for path in STATE.rglob("*"):
        if path.is_file():
            dest = WORK / path.relative_to(STATE)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, dest)


def mutmut(*args: str) -> int:
    return subprocess.call([str(Path(sys.executable).with_name("mutmut")), *args], cwd=ROOT)


def run(globs: list[str], chunk: int, children: int, again: bool = False) -> None:
    """Run the mutants without a verdict that match ``globs``; ``again``: rerun the survivors (and those without a
    covering test) that match, after tests were added to kill them."""
    restore()

    def wanted(key: str) -> bool:
        return not globs or any(fnmatch.fnmatch(key, g) for g in globs)

    def order(key: str) -> int:   # the globs' order: the module named first runs first
        return next((i for i, g in enumerate(globs) if fnmatch.fnmatch(key, g)), 0)

    rerun: set[str] | None = None
    stalled = 0
    while True:
        # a glob no mutant matches: mutmut (re)generates the mutants of changed sources (a changed function loses
        # its verdicts), collects or updates the map of which tests run which function, then has nothing to run
        mutmut("run", "--max-children", str(children), "metarec.__set_up_only__*")
        found = verdicts(WORK)
        if rerun is None:
            rerun = {k for k, v in found.items() if status_of(v) in ("survived", "no tests")} if again else set()
        pending = sorted((k for k, v in found.items() if (v is None or k in rerun) and wanted(k)), key=order)
        if not pending:
            break
        print(f"[mutation] {len(pending)} mutants to run; next {min(chunk, len(pending))}", flush=True)
        code = mutmut("run", "--max-children", str(children), *pending[:chunk])
        rerun -= set(pending[:chunk])
        save()
        after = verdicts(WORK)
        fresh = [k for k in pending[:chunk] if found.get(k) is None]
        if fresh and all(after.get(k) is None for k in fresh):
            stalled += 1          # nothing new: the unmutated tests failed, or the sources changed under the run
            if stalled >= 2:
                raise SystemExit(f"mutmut ran none of two chunks (exit {code}): see its output above")
        else:
            stalled = 0
    save()   # also when nothing was pending: the set-up call may have regenerated changed functions' mutants


DEVICE = ("device placement only: with no GPU here every tensor is on the CPU, which is also what device=None "
          "means; the torch path's CUDA run is left to a GPU machine")

#: survivors whose change cannot alter behaviour here, recognised from the mutated line (pattern on the removed
#: line, pattern on the added line, why); anything else is listed as "not examined"
EQUIVALENT = [
    (r"float\(\"nan\"\)", r"float\(\"NAN\"\)", "the same NaN"),
    (r"float\(\"-inf\"\)", r"float\(\"-INF\"\)", "the same -inf"),
    (r"\.to\((dev|[\w.]*\.device)\)|device=(dev|[\w.]*\.device)|dev = s\.device",
     r"\.to\(None\)|device=None|dev = None|torch\.arange\(B, \)|dtype=torch\.bool, \)", DEVICE),
    (r"\.to\(torch\.(float64|long)\)", r"\.to\(None\)",
     "dtype only: the values are converted where they are combined, or compare and index the same"),
    (r"dtype=(np\.int64|float|np\.float64)|astype\(np\.int64\)|to_numpy\(np\.(int64|float64)\)",
     r"dtype=None|astype\(None\)|to_numpy\(None\)|\(\s*\)|, \)",
     "dtype only: the values are already of that type, or compare and index the same"),
    (r"kind=\"stable\"", r"kind=None|kind=\"(XXstableXX|STABLE)\"|, \)",
     "sort stability: the keys are unique there, or equal keys interchangeable (numpy's default sort is also stable on small inputs, so no test can tell)"),
    (r"groupby\(.*sort=(True|False)", r"sort=(None|True|False)|groupby\([^)]*, \)",
     "group order: the result is re-indexed or per row, not read in group order"),
    (r"ignore_errors=True", r"ignore_errors=(None|False)|, \)",
     "the folder exists and is ours to delete: errors are never raised"),
    (r"mkdir\(parents=True", r"parents=(None|False)|mkdir\(exist_ok", "the parent folder always exists there"),
    (r"(to_parquet|to_csv)\(.*index=False", r"index=(None|True)|to_parquet\([^)]*, \)|to_parquet\(tmp, \)",
     "the frame has a plain RangeIndex: stored as metadata or not, it reads back the same"),
    (r"compression=\"zstd\"|engine=\"pyarrow\"", r"compression=None|engine=None|, \)|compression=\"(XXzstdXX|ZSTD)",
     "codec or engine of the file: the content read back is the same"),
]


#: survivors examined one by one (mutmut numbers mutants per function: a changed function renumbers its mutants,
#: and its entries here then no longer match; they are re-examined with it)
EXAMINED = {
    "metarec.protocols.leakage.x__pairs__mutmut_1": "any injective packing of (user, item) works: the check only "
    "compares packings made by the same function",
    "metarec.protocols.leakage.x__pairs__mutmut_5": "as _1: still injective for item ids < 2^32",
    "metarec.protocols.leakage.x__pairs__mutmut_6": "as _1: still injective for item ids < 2^32",
    "metarec.protocols.leakage.x_check_no_test_pair_in_train__mutmut_11": "impressions skip both stages either "
    "way: break after the first skip ends the same loop",
    "metarec.protocols.leakage.x_check_no_test_pair_in_train__mutmut_20": "dtype only: the packed pairs are int64",
    "metarec.protocols.leakage.x_check_no_test_pair_in_train__mutmut_24": "fromiter without a count reads the "
    "same set",
    "metarec.protocols.base.x_split_counts__mutmut_18": "r * n > 0 and r / n > 0 agree for n >= 1",
    "metarec.protocols.base.x_split_counts__mutmut_25": "only entries equal to 0 are bumped: += 1 and = 1 agree",
    "metarec.protocols.base.x_check_ratios__mutmut_19": "train > 0 and no share < 0 already make the sum > 0",
    "metarec.protocols.base.x_check_ratios__mutmut_25": "differs only for a sum exactly 1e-6 from 1: not worth a "
    "test",
    "metarec.protocols.base.x_protocol__mutmut_7": "only the first line of the summary is read",
    "metarec.protocols.split.xǁSplitǁdescribe__mutmut_20": "an empty frame has 0 distinct users either way",
    "metarec.protocols.split.xǁSplitǁsave__mutmut_11": "the temporary folder is renamed or removed: its name "
    "prefix is never seen",
    "metarec.protocols.split.xǁSplitǁsave__mutmut_13": "as save_11",
    "metarec.protocols.split.xǁSplitǁsave__mutmut_12": "a temporary folder under /tmp renames into place on one "
    "file system (as here); across file systems os.replace would fail: not worth a test",
    "metarec.protocols.split.xǁSplitǁsave__mutmut_14": "as save_12",
    "metarec.protocols.split.x__read_parquet__mutmut_11": "pyarrow is pandas' default engine here",
    "metarec.report.stats.x_compare__mutmut_98": "one seed has no spread (ptp 0): the branch is never taken",
    "metarec.report.stats.x_compare__mutmut_146": "sign(0) * 8 = 0: the same vote",
    "metarec.report.stats.x_compare__mutmut_266": "nanmean of all-NaN is NaN as well (with a warning)",
    "metarec.report.stats.x_compare__mutmut_270": "as _266",
    "metarec.report.stats.x_compare__mutmut_295": "differs only for a Holm p exactly equal to alpha: not worth a "
    "test",
    "metarec.report.stats.x_compare__mutmut_171": "both branches compute the same z (isf(sf(t)) = -isf(cdf(t))); "
    "the split only keeps precision at extreme |t|: not worth a test",
    "metarec.report.stats.x_compare__mutmut_172": "as _171",
    "metarec.report.stats.x_compare__mutmut_179": "as _171 (t = 0 gives z = 0 on both)",
    "metarec.report.stats.x_compare__mutmut_180": "as _171",
    "metarec.report.stats.x_user_bootstrap__mutmut_1": "compare always passes its seed",
    "metarec.report.stats.x_user_bootstrap__mutmut_11": "integers(n) and integers(0, n) draw the same numbers",
    "metarec.bench.store.x_select_configs__mutmut_2": "overwritten below for every row; only an empty table keeps "
    "it, where no value is read",
    "metarec.bench.store.x_select_configs__mutmut_5": "as select_configs_2",
    "metarec.bench.store.x__writer_alive__mutmut_20": "PermissionError needs a process of another user: the tests "
    "run as one user (root here)",
    "metarec.eval.registry.x__load__mutmut_9": "a single MetricDef iterates as a one-item list only through the "
    "else branch; with `or True` a non-list plugin value fails loudly (TypeError), which no test feeds: not worth",
    "metarec.protocols.impressions.x_impressions__mutmut_40": "'left' is searchsorted's default",
    "metarec.protocols.impressions.x_impressions__mutmut_60": "'left' is searchsorted's default",
    "metarec.protocols.impressions.x_impressions__mutmut_48": "numpy reads the side from its first letter, any case",
    "metarec.protocols.impressions.x_impressions__mutmut_68": "as _48",
    "metarec.protocols.cold_start.x_cold_start__mutmut_210": "cold users are disjoint from train users: no "
    "(user, item) pair can repeat across stages, so allow_repeats never matters",
    "metarec.protocols.cold_start.x_cold_start__mutmut_211": "as _210",
    "metarec.protocols.cold_start.x_cold_start__mutmut_212": "as _210",
    "metarec.protocols.cold_start.x_cold_start__mutmut_233": "as _210",
    "metarec.protocols.cold_start.x_cold_start__mutmut_235": "as _210",
    "metarec.protocols.cold_start.x_cold_start__mutmut_135": "the users come from the same frame: the index is "
    "already `ok`",
    "metarec.bench.store.x_tidy_table__mutmut_21": "result.json is written with sorted keys "
    "(atomic_write_json), so the parameters read back are already in key order",
    "metarec.bench.store.x_tidy_table__mutmut_23": "as tidy_table_21",
    "metarec.bench.store.x_tidy_table__mutmut_26": "as tidy_table_21",
    "metarec.bench.store.x_tidy_table__mutmut_43": "as tidy_table_21",
    "metarec.bench.store.x_tidy_table__mutmut_45": "as tidy_table_21",
    "metarec.bench.store.x_tidy_table__mutmut_48": "as tidy_table_21",
    # examined in session 5 (2026-12-01)
    "metarec.protocols.impressions.x_impressions__mutmut_75": "float zeros instead of int zeros: np.r_ makes the "
    "stage codes 0.0/1.0/2.0, which compare equal to 0/1/2 in the stage masks",
    "metarec.protocols.impressions.x_impressions__mutmut_77": "as _75",
    "metarec.protocols.impressions.x_impressions__mutmut_79": "as _75 (float ones)",
    "metarec.protocols.impressions.x_impressions__mutmut_81": "as _79",
    "metarec.protocols.impressions.x_impressions__mutmut_109": "the index of train is not read: make_split resets "
    "every frame's index and the time-order check reads values only",
    "metarec.protocols.impressions.x_impressions__mutmut_111": "as _109",
    "metarec.protocols.impressions.x_impressions__mutmut_112": "as _109",
    "metarec.protocols.cold_start.x_cold_start__mutmut_146": "the kept users have >= k_shot + n_query >= 2 "
    "events: an initial 1 never exceeds their maximum",
    "metarec.protocols.split.x__parquet_safe__mutmut_2": "the join only touches list-like values: mapping every "
    "object column leaves the others as they are",
    "metarec.protocols.split.x__write_parquet__mutmut_6": "the frame's index was just reset to a RangeIndex: stored "
    "as metadata or not, it reads back the same (the file digest is taken from the file written)",
    "metarec.protocols.split.x__write_parquet__mutmut_7": "pyarrow is pandas' default engine here",
    "metarec.bench.store.x_tidy_table__mutmut_150": "pandas sorts on several columns with a lexsort, stable "
    "whatever `kind` says (kind applies to one-column sorts only)",
    "metarec.bench.grid.x__parse_tune__mutmut_166": "(None or 21) // 2 == (None or 20) // 2 == 10",
    "metarec.eval.metrics.x__topk_candidates_torch__mutmut_19": "which exact path runs (sort all vs candidates) "
    "when many items reach the threshold: the same indices either way, only the speed differs",
    "metarec.eval.metrics.x__topk_candidates_torch__mutmut_20": "as _19",
    "metarec.eval.metrics.x__topk_candidates_torch__mutmut_21": "as _19",
    "metarec.eval.metrics.x__topk_candidates_torch__mutmut_52": "float('-INF') is -inf",
    "metarec.eval.metrics.x__topk_candidates_torch__mutmut_68": "dim defaults to the last one, which is 1 here",
    "metarec.eval.metrics.x__topk_candidates_torch__mutmut_8": "as _68",
    "metarec.eval.metrics.x_topk_items__mutmut_42": "which exact path runs on small catalogues (sort all vs block "
    "maxima): the same indices either way",
    "metarec.eval.metrics.x_topk_items__mutmut_44": "as topk_items_42",
    "metarec.eval.metrics.x__topk_candidates_torch__mutmut_32": DEVICE,
    "metarec.eval.metrics.x__topk_candidates_torch__mutmut_34": DEVICE,
    "metarec.eval.metrics.x__topk_candidates_torch__mutmut_45": DEVICE,
    "metarec.eval.metrics.x__topk_candidates_torch__mutmut_49": DEVICE,
    "metarec.eval.metrics.x__topk_candidates_torch__mutmut_56": DEVICE,
    "metarec.eval.metrics.x__topk_candidates_torch__mutmut_59": DEVICE,
    "metarec.eval.metrics.x_topk_items__mutmut_11": DEVICE,
    "metarec.eval.metrics.x_topk_items__mutmut_14": DEVICE,
    "metarec.eval.metrics.x_impression_metrics__mutmut_43": DEVICE,
    "metarec.eval.metrics.x_impression_metrics__mutmut_45": DEVICE,
    "metarec.eval.metrics.x_impression_metrics__mutmut_56": DEVICE,
    "metarec.eval.metrics.x_impression_metrics__mutmut_59": DEVICE,
    "metarec.eval.metrics.x_impression_metrics__mutmut_66": DEVICE,
    "metarec.eval.metrics.x_impression_metrics__mutmut_70": DEVICE,
    "metarec.eval.metrics.x_impression_metrics__mutmut_83": DEVICE,
    "metarec.eval.metrics.x_impression_metrics__mutmut_86": DEVICE,
    "metarec.eval.metrics.x_impression_metrics__mutmut_128": DEVICE,
    "metarec.eval.metrics.x_impression_metrics__mutmut_131": DEVICE,
    "metarec.eval.metrics.x_impression_metrics__mutmut_140": DEVICE,
    "metarec.eval.metrics.x_impression_metrics__mutmut_142": DEVICE,
    "metarec.eval.metrics.x_impression_metrics__mutmut_170": DEVICE,
    "metarec.eval.metrics.x_impression_metrics__mutmut_173": DEVICE,
    "metarec.eval.metrics.x_impression_metrics__mutmut_194": DEVICE,
    "metarec.eval.metrics.x_impression_metrics__mutmut_196": DEVICE,
    "metarec.eval.metrics.x_impression_metrics__mutmut_224": DEVICE,
    "metarec.eval.metrics.x_impression_metrics__mutmut_227": DEVICE,
    "metarec.eval.metrics.x_impression_metrics__mutmut_103": "npos is a count >= 1 where it is > 0: both clamps "
    "leave it alone",
    "metarec.eval.metrics.x_impression_metrics__mutmut_169": "float ones used as run-start flags: the same nonzero "
    "positions and cumulative sums as bool ones",
    "metarec.eval.metrics.x_impression_metrics__mutmut_172": "as impression_metrics_169",
    "metarec.eval.metrics.x_impression_metrics__mutmut_210": "as auc_per_user_123",
    "metarec.eval.metrics.x_impression_metrics__mutmut_213": "as auc_per_user_123",
    "metarec.eval.metrics.x_impression_metrics__mutmut_231": "int64 counts in float64 arithmetic give float64",
    "metarec.eval.metrics.x_impression_metrics__mutmut_256": "as auc_per_user_174",
    "metarec.eval.metrics.x_impression_metrics__mutmut_257": "as auc_per_user_174",
    "metarec.eval.metrics.x_impression_metrics__mutmut_259": "as auc_per_user_174",
    "metarec.eval.metrics.x_impression_metrics__mutmut_65": "where() promotes the float32 NaNs to the float64 branch",
    "metarec.eval.metrics.x_impression_metrics__mutmut_69": "as impression_metrics_65",
    "metarec.eval.metrics.x_novelty__mutmut_2": "the self-information is float64 already",
    "metarec.eval.metrics.x_novelty__mutmut_7": "a bool weight times float64 values is float64, and float64 over an "
    "integer count too",
    "metarec.eval.evaluator.xǁEvaluatorǁ__init____mutmut_26": "int() of the true quotient floors it like // for "
    "positive numbers",
    "metarec.eval.evaluator.xǁEvaluatorǁ__init____mutmut_34": "differs only for a one-item catalogue, where both "
    "quotients exceed 1024",
    "metarec.eval.metrics.x__pair_mean__mutmut_18": "a bool weight times float64 distances is float64",
    "metarec.eval.metrics.x__pair_mean__mutmut_20": "padding is a suffix of the list: for i < j, listed_j implies "
    "listed_i, so the pair's weight is listed_j either way",
    "metarec.eval.metrics.x_category_signatures__mutmut_8": "a bool matrix groups into the same unique rows as its "
    "int8 form",
    "metarec.eval.metrics.x_category_signatures__mutmut_30": "a positive union is a count >= 1: both clamps leave "
    "it alone",
    "metarec.eval.metrics.x_diversity__mutmut_31": "as category_signatures_30",
    "metarec.eval.metrics.x_reference_item_vectors__mutmut_42": "ARPACK's start vector sets the scale of the "
    "iteration, not the components found (up to sign, which inner products ignore)",
    "metarec.eval.metrics.x_reference_item_vectors__mutmut_43": "as reference_item_vectors_42",
    "metarec.eval.metrics.x_reference_item_vectors__mutmut_52": "as reference_item_vectors_33",
    "metarec.eval.metrics.x_reference_item_vectors__mutmut_56": "as reference_item_vectors_33",
    "metarec.eval.metrics.x_reference_item_vectors__mutmut_57": "arpack is svds' default solver",
    "metarec.eval.metrics.x_reference_item_vectors__mutmut_59": "scipy reads the solver name in any case",
    "metarec.eval.metrics.x_reference_item_vectors__mutmut_78": "a norm of exactly 1e-12 does not occur",
    "metarec.eval.metrics.x_self_information__mutmut_10": "float64 counts over an int64 total give float64",
    "metarec.eval.metrics.x__pair_mean__mutmut_5": DEVICE,
    "metarec.eval.metrics.x__pair_mean__mutmut_9": DEVICE,
    "metarec.eval.metrics.x_auc_per_user__mutmut_5": "ones_like of a bool mask is bool already",
    "metarec.eval.metrics.x_auc_per_user__mutmut_7": "as auc_per_user_5",
    "metarec.eval.metrics.x_auc_per_user__mutmut_14": "ties get the average rank of their run (AUC) or are counted in the same run: the order within a run is never read",
    "metarec.eval.metrics.x_auc_per_user__mutmut_18": "as auc_per_user_14",
    "metarec.eval.metrics.x_auc_per_user__mutmut_21": "as auc_per_user_14",
    "metarec.eval.metrics.x_auc_per_user__mutmut_16": "dim defaults to the last one, which is 1 here",
    "metarec.eval.metrics.x_auc_per_user__mutmut_35": "as auc_per_user_16",
    "metarec.eval.metrics.x_auc_per_user__mutmut_37": "a bool key sorts as its int8 form (False before True)",
    "metarec.eval.metrics.x_auc_per_user__mutmut_84": "valid items come first in each row, so comparing with the "
    "row's first validity flag still starts a run at every valid/masked boundary; masked runs are never read",
    "metarec.eval.metrics.x_auc_per_user__mutmut_123": "float32 holds the rank sums exactly below 2^24 scores per "
    "batch (the evaluator's batches are far smaller): not worth a test of that size",
    "metarec.eval.metrics.x_auc_per_user__mutmut_126": "as auc_per_user_123",
    "metarec.eval.metrics.x_auc_per_user__mutmut_144": "as auc_per_user_123 (counts below 2^24)",
    "metarec.eval.metrics.x_auc_per_user__mutmut_148": "as auc_per_user_144",
    "metarec.eval.metrics.x_auc_per_user__mutmut_174": "with no negative (or no positive) the pair count is 0, "
    "so auc = 0/0 = NaN either way",
    "metarec.eval.metrics.x_auc_per_user__mutmut_175": "as auc_per_user_174",
    "metarec.eval.metrics.x_auc_per_user__mutmut_177": "as auc_per_user_174",
    "metarec.eval.metrics.x_auc_per_user__mutmut_185": "float('NAN') is NaN",
    "metarec.eval.metrics.x_gauc__mutmut_5": "n_pos is float64 already (auc_per_user)",
    "metarec.eval.metrics.x_gauc__mutmut_10": "float('NAN') is NaN",
    "metarec.eval.metrics.x_gauc__mutmut_14": "auc is float64 already",
    "metarec.eval.metrics.x_gini_from_counts__mutmut_3": "int64 counts times the float64 weights give float64",
    "metarec.eval.metrics.x_gini_from_counts__mutmut_10": "float('NAN') is NaN",
    "metarec.eval.metrics.x_gini_from_counts__mutmut_14": "an int64 range times float64 counts gives float64",
    "metarec.eval.metrics.x_gini_from_counts__mutmut_18": "as gini_from_counts_14",
    "metarec.eval.metrics.x_impression_metrics__mutmut_9": "torch's CPU sort keeps equal keys in order on these "
    "inputs too: no test can tell stable from default here",
    "metarec.eval.metrics.x_impression_metrics__mutmut_12": "as impression_metrics_9",
    "metarec.eval.metrics.x_impression_metrics__mutmut_14": "as impression_metrics_9",
    "metarec.eval.metrics.x_reference_item_vectors__mutmut_1": "the default dimension is never used: the evaluator "
    "passes REFERENCE_DIM",
    "metarec.eval.metrics.x_reference_item_vectors__mutmut_23": "the codes are whole numbers either way (float64 "
    "holds them exactly); scipy reads the indices back as integers",
    "metarec.eval.metrics.x_reference_item_vectors__mutmut_24": "as reference_item_vectors_23",
    "metarec.eval.metrics.x_reference_item_vectors__mutmut_31": "scipy truncates the float row indices of "
    "non-negative codes, which is the floor division",
    "metarec.eval.metrics.x_reference_item_vectors__mutmut_33": "ARPACK from a random start finds the same "
    "components up to sign, and a sign does not change inner products",
    "metarec.eval.metrics.x_vector_diversity__mutmut_2": "the vectors are float64 already",
    "metarec.eval.metrics.x_auc_per_user__mutmut_99": DEVICE,
    "metarec.eval.metrics.x_auc_per_user__mutmut_101": DEVICE,
    "metarec.eval.metrics.x_auc_per_user__mutmut_116": DEVICE,
    "metarec.eval.metrics.x_auc_per_user__mutmut_118": DEVICE,
    "metarec.eval.metrics.x_gini_from_counts__mutmut_15": DEVICE,
    "metarec.eval.metrics.x_gini_from_counts__mutmut_19": DEVICE,
    "metarec.eval.metrics.x__expected_pairs__mutmut_21": "n_g is 0 (then m_g = 0) or >= 2: n_g = 1 never occurs",
    "metarec.eval.metrics.x__expected_pairs__mutmut_22": "with n_g = 2 the straddling run has m_g = 1 item above "
    "the cut, so m(m-1) = 0 either way",
    "metarec.eval.metrics.x__expected_pairs__mutmut_31": "n(n-1) >= 2 wherever n > 1: the clamp never acts",
    "metarec.eval.metrics.x_expected_diversity__mutmut_3": "the similarity matrix is square",
    "metarec.eval.metrics.x_expected_diversity__mutmut_36": "float64 minus an int64 count is float64",
    "metarec.eval.metrics.x_expected_diversity__mutmut_64": "last_counts is float64 already (_CutoffRun.last_counts)",
    "metarec.eval.metrics.x_expected_topk_table__mutmut_5": "the evaluator passes float64 counts; an int64 count "
    "gives float64 quotients too",
    "metarec.eval.metrics.x_expected_topk_table__mutmut_31": "NDCG divides DCG by the ideal DCG built from the same "
    "discounts: scaling them cancels",
    "metarec.eval.metrics.x_expected_vector_diversity__mutmut_37": "the run sums are float64 already "
    "(_CutoffRun.last_vector_sums)",
    "metarec.eval.metrics.x_expected_vector_diversity__mutmut_48": "as expected_vector_diversity_37",
    "metarec.eval.metrics.x_expected_vector_diversity__mutmut_59": "as expected_vector_diversity_37",
    "metarec.eval.metrics.x_mae__mutmut_3": "float32 minus float64 is computed in float64: the conversion of one "
    "side is enough",
    "metarec.eval.metrics.x_mae__mutmut_4": "as mae_3",
    "metarec.eval.metrics.x_rmse__mutmut_5": "as mae_3",
    "metarec.eval.metrics.x_rmse__mutmut_6": "as mae_3",
    "metarec.eval.metrics.x_expected_diversity__mutmut_4": DEVICE,
    "metarec.eval.metrics.x_expected_diversity__mutmut_20": DEVICE,
    "metarec.eval.metrics.x_expected_diversity__mutmut_23": DEVICE,
    "metarec.eval.metrics.x_expected_diversity__mutmut_49": DEVICE,
    "metarec.eval.metrics.x_expected_diversity__mutmut_52": DEVICE,
    "metarec.eval.metrics.x_expected_topk_table__mutmut_10": DEVICE,
    "metarec.eval.metrics.x_expected_topk_table__mutmut_14": DEVICE,
    "metarec.eval.metrics.x_expected_vector_diversity__mutmut_11": "a bool mask times float64 vectors is float64: "
    "the conversion changes nothing",
    "metarec.eval.metrics.x_expected_vector_diversity__mutmut_12": "as expected_vector_diversity_11",
    "metarec.eval.metrics.x_run_means__mutmut_58": "last_mean is float64 already (_CutoffRun.last_mean)",
    "metarec.eval.metrics.x_tie_runs__mutmut_104": "where() promotes the int64 counts to the float64 branch",
    "metarec.eval.metrics.x_tie_runs__mutmut_116": "as tie_runs_104",
    "metarec.eval.metrics.x_tie_runs__mutmut_118": "an int64 offset in float64 arithmetic gives float64",
    "metarec.eval.metrics.x_tie_runs__mutmut_156": "for a one-item run p is 0 or 1, so p(p-1) = 0 either way",
    "metarec.eval.metrics.x_tie_runs__mutmut_166": "n(n-1) >= 2 wherever n > 1: the clamp never acts",
    "metarec.eval.metrics.x_tie_runs__mutmut_53": DEVICE,
    "metarec.eval.metrics.x_tie_runs__mutmut_56": DEVICE,
    "metarec.eval.metrics.x_tie_runs__mutmut_68": DEVICE,
    "metarec.eval.metrics.x_tie_runs__mutmut_71": DEVICE,
    "metarec.eval.metrics.x__expected_pairs__mutmut_8": "m_g = 0 wherever n_g = 0 (no straddling run): the "
    "term is 0 either way",
    "metarec.eval.metrics.x__expected_pairs__mutmut_9": "a straddling run has 0 < m < n items above the cut, so "
    "n_g >= 2 wherever m_g > 0: n_g = 1 never occurs",
    "metarec.eval.metrics.x__expected_pairs__mutmut_12": "as _expected_pairs_9: n_g is 0 or >= 2",
    "metarec.eval.metrics.x__straddle__mutmut_12": "position k (0-based) lies past the first k, in a run that "
    "started at or before it: its inclusion is < 1, so it is never 'whole' either way",
    "metarec.eval.metrics.x__straddle__mutmut_30": "rows without a straddling run have n_g = 0, where "
    "_expected_pairs ignores m",
    "metarec.eval.metrics.x__straddle__mutmut_32": "an int64 m gives the same float64 quotients",
    "metarec.eval.metrics.x__straddle__mutmut_43": "where() promotes the float32 zeros to the float64 branch",
    "metarec.eval.metrics.x__straddle__mutmut_46": "as _straddle_43",
    "metarec.eval.metrics.x_inclusion__mutmut_2": "an int64 start divided by the float64 run sizes is float64",
    "metarec.eval.metrics.x__straddle__mutmut_9": DEVICE,
    "metarec.eval.metrics.x__straddle__mutmut_11": DEVICE,
    "metarec.eval.metrics.x__straddle__mutmut_44": DEVICE,
    "metarec.eval.metrics.x__straddle__mutmut_47": DEVICE,
    "metarec.eval.metrics.x__stable_sort_topk__mutmut_12": "dim defaults to the last one, which is 1 here",
    "metarec.eval.metrics.x_map___mutmut_15": "the hits are float64 already (_head): dividing by an int64 range "
    "gives float64 too",
    "metarec.eval.metrics.x_map___mutmut_19": "as map__15",
    "metarec.eval.metrics.x_map___mutmut_29": "as map__15: a float64 sum over an integer count is float64",
    "metarec.eval.metrics.x_recall__mutmut_8": "as map__29",
    "metarec.eval.metrics.x_run_means__mutmut_3": "every caller passes float64 values (item properties gathered "
    "from float64 tensors)",
    "metarec.eval.metrics.x_tie_runs__mutmut_4": "the evaluator converts the hits to float64 once before",
    "metarec.bench.grid.x_parse_grid__mutmut_491": "every method class is a Method subclass (the registry refuses any other), and Method declares "
    "protocols: the getattr default is never used",
    "metarec.bench.grid.x_parse_grid__mutmut_556": "an absent tune key means tuned: None is not False either",
    "metarec.bench.grid.x_parse_grid__mutmut_558": "as parse_grid_556",
    "metarec.bench.grid.x_parse_grid__mutmut_618": "an absent tune key is accepted either way: False is in (True, False) too",
    "metarec.eval.evaluator.xǁEvaluatorǁ__init____mutmut_89": "the note is read only after _diversity_basis sets it, and '' and None are both falsy",
    "metarec.eval.evaluator.xǁEvaluatorǁ_evaluate_ranking__mutmut_1": "every caller passes fresh explicitly: the default is never used",
    "metarec.eval.evaluator.xǁEvaluatorǁ_evaluate_ranking__mutmut_28": "the self-information is computed whether needed or not: the same values, "
    "only extra work",
    "metarec.eval.evaluator.xǁEvaluatorǁ_evaluate_ranking__mutmut_38": "the only per-unit metric that needs ratings, user_mae, cannot be asked "
    "under a ranking protocol (registry: no protocols): the clause filters nothing today and guards a future one",
    "metarec.eval.evaluator.xǁEvaluatorǁ_evaluate_ranking__mutmut_39": "as _evaluate_ranking_38",
    "metarec.eval.evaluator.xǁEvaluatorǁ_evaluate_ranking__mutmut_46": "coverage and Gini of integer counts held as float64 are the same numbers",
    "metarec.eval.evaluator.xǁEvaluatorǁ_evaluate_ranking__mutmut_49": "as _evaluate_ranking_46",
    "metarec.eval.evaluator.xǁEvaluatorǁ_evaluate_ranking__mutmut_50": "as _evaluate_ranking_46",
    "metarec.eval.evaluator.xǁEvaluatorǁ_impression_stage__mutmut_62": "astype(None) is float64",
    "metarec.eval.evaluator.xǁEvaluatorǁ_signatures__mutmut_9": "the signature similarity matrix is square",
    "metarec.eval.evaluator.xǁEvaluatorǁ_train_counts__mutmut_1": "a cache key that never matches recomputes the same counts: only extra work",
    "metarec.eval.evaluator.xǁEvaluatorǁ_train_counts__mutmut_2": "as _train_counts_1",
    "metarec.eval.evaluator.xǁEvaluatorǁevaluate__mutmut_50": "fresh=None is falsy like False: the scores are still copied",
    "metarec.eval.evaluator.xǁEvaluatorǁevaluate__mutmut_55": "the default of fresh is False",
    "metarec.eval.evaluator.xǁEvaluatorǁevaluate_scores__mutmut_28": DEVICE,
    "metarec.eval.evaluator.xǁEvaluatorǁevaluate_scores__mutmut_29": "fresh=None copies a block the evaluator made itself: only extra work",
    "metarec.eval.evaluator.xǁEvaluatorǁevaluate_scores__mutmut_30": "as evaluate_scores_29",
    "metarec.eval.evaluator.xǁEvaluatorǁevaluate_scores__mutmut_41": "pairs=None is falsy like False",
    "metarec.eval.evaluator.xǁEvaluatorǁevaluate_scores__mutmut_52": "as evaluate_scores_29",
    "metarec.eval.evaluator.xǁEvaluatorǁevaluate_scores__mutmut_57": "as evaluate_scores_29 (the default of fresh is False)",
    "metarec.eval.evaluator.xǁEvaluatorǁevaluate_scores__mutmut_65": "evaluate_scores never adapts: adapt_s is 0.0, so adding or subtracting it is "
    "the same",
    "metarec.eval.metrics.x_impression_metrics__mutmut_89": "y is float64, so y / rank is float64 whatever rank's "
    "integer dtype",
    "metarec.eval.evaluator.x__category_matrix__mutmut_17": "a float 0/1 matrix converts to the same int8 signatures as the bool one",
    "metarec.eval.evaluator.x__category_matrix__mutmut_19": "as _category_matrix_17",
    "metarec.eval.evaluator.x__category_matrix__mutmut_24": "differs only for an empty vocabulary, where every row is all False either way",
    "metarec.eval.evaluator.x__category_matrix__mutmut_42": "a tensor of Python ints is int64 already",
    "metarec.eval.evaluator.x__category_matrix__mutmut_44": "as _category_matrix_42",
    "metarec.eval.evaluator.x__csr__mutmut_5": "astype's copy flag: the arrays are only read",
    "metarec.eval.evaluator.x__csr__mutmut_6": "as _csr_5",
    "metarec.eval.evaluator.x__csr__mutmut_11": "as _csr_5",
    "metarec.eval.evaluator.x__csr__mutmut_12": "as _csr_5",
    "metarec.eval.evaluator.x__nanmean__mutmut_10": "the mean of no values is NaN either way (numpy warns)",
    "metarec.eval.evaluator.x__short_lists_exact__mutmut_9": "the exact values are float64 like the values they replace",
    "metarec.eval.evaluator.x_diversity_basis__mutmut_37": "the kind is only compared with 'categories': any other name means vectors",
    "metarec.eval.evaluator.x_diversity_basis__mutmut_38": "as diversity_basis_37",
    "metarec.eval.evaluator.xǁEvaluatorǁ_evaluate_ranking__mutmut_119": "one more list position can only send a batch down the exact tie path, which gives the same values",
    "metarec.eval.evaluator.xǁEvaluatorǁ_evaluate_ranking__mutmut_180": "an all-True listed mask gives the same values as None: only the fast path is skipped",
    "metarec.eval.evaluator.xǁEvaluatorǁ_evaluate_ranking__mutmut_182": "as _evaluate_ranking_180",
    "metarec.eval.evaluator.xǁEvaluatorǁ_evaluate_ranking__mutmut_217": "the plugin's values are float64 already (the hits and counts it gets are)",
    "metarec.eval.evaluator.xǁEvaluatorǁ_evaluate_ranking__mutmut_219": "as _evaluate_ranking_217",
    "metarec.eval.evaluator.xǁEvaluatorǁ_evaluate_ranking__mutmut_260": "a list short at K holds all the user's rankable items: the columns past K are padding, which listed excludes, so novelty over all columns is the same",
    "metarec.eval.evaluator.xǁEvaluatorǁ_evaluate_ranking__mutmut_393": "max(1, .) and max(2, .) differ only for catalogues of more than 2^21 items, and then only in chunk size",
    "metarec.eval.evaluator.xǁEvaluatorǁ_evaluate_ranking__mutmut_483": "an empty float32 table gives GAUC NaN like an empty float64 one",
    "metarec.eval.evaluator.xǁEvaluatorǁ_evaluate_ranking__mutmut_485": "as _evaluate_ranking_483",
    "metarec.eval.evaluator.xǁEvaluatorǁ_evaluate_ranking__mutmut_486": "one all-zero row has weight 0: GAUC is NaN either way",
    "metarec.eval.evaluator.xǁEvaluatorǁ_evaluate_ranking__mutmut_487": "an empty (0, 3) table gives GAUC NaN like (0, 2)",
    "metarec.eval.evaluator.xǁEvaluatorǁ_evaluate_ranking__mutmut_532": "the rating time is the only addition to t_score, which is 0.0 before: = and += agree",
    "metarec.eval.evaluator.xǁEvaluatorǁ_evaluate_ranking__mutmut_575": "'user' is EvalResult's default unit",
    "metarec.eval.evaluator.xǁEvaluatorǁ_evaluate_ranking__mutmut_67": "the generator is only read by the sampled modes: one made in full mode changes nothing",
    "metarec.eval.evaluator.xǁEvaluatorǁ_evaluate_ranking__mutmut_71": "as _evaluate_ranking_67",
    "metarec.eval.evaluator.xǁEvaluatorǁ_evaluate_ranking__mutmut_72": "as _evaluate_ranking_67",
    "metarec.eval.evaluator.xǁEvaluatorǁ_evaluate_ranking__mutmut_75": "the stage's batches are built when only rating metrics are asked, which read nothing from them: only extra work",
    "metarec.eval.evaluator.xǁEvaluatorǁ_evaluate_ranking__mutmut_89": "fresh=None is falsy: the scores are copied, as with fresh=False (only extra work where they were fresh)",
    "metarec.eval.evaluator.xǁEvaluatorǁ_masked__mutmut_24": DEVICE,
    "metarec.eval.evaluator.xǁEvaluatorǁ_masked__mutmut_25": DEVICE,
    "metarec.eval.evaluator.xǁEvaluatorǁ_masked__mutmut_26": DEVICE,
    "metarec.eval.evaluator.xǁEvaluatorǁ_masked__mutmut_27": DEVICE,
    "metarec.eval.evaluator.xǁEvaluatorǁ_masked__mutmut_28": DEVICE,
    "metarec.eval.evaluator.xǁEvaluatorǁ_masked__mutmut_43": "valid is read only when AUC is asked, and then it is set",
    "metarec.eval.evaluator.xǁEvaluatorǁ_ratings__mutmut_16": "the chunk size of the rating predictions: the same values",
    "metarec.eval.evaluator.xǁEvaluatorǁ_ratings__mutmut_44": "astype(None) is float64",
    "metarec.eval.evaluator.xǁ_CutoffRunǁ__init____mutmut_20": "with no position past the cut-off, None == tk is False: the same all-False extension as zeros_like",
    "metarec.eval.evaluator.xǁ_CutoffRunǁ__init____mutmut_50": "the hits are float64 like p_last: the conversion changes nothing",
    "metarec.eval.evaluator.xǁ_CutoffRunǁinclusion_sums__mutmut_36": DEVICE,
    "metarec.eval.evaluator.xǁ_CutoffRunǁinclusion_sums__mutmut_53": DEVICE,
    "metarec.eval.evaluator.xǁ_CutoffRunǁlast_counts__mutmut_9": DEVICE,
    "metarec.eval.evaluator.x__sample_candidates__mutmut_37": "a row that wants no draw adds none either way",
    "metarec.eval.evaluator.x__sample_candidates__mutmut_57": "repeat_interleave(want) repeats each row index want times: the same rows",
    "metarec.eval.evaluator.x__sample_candidates__mutmut_82": "a uniform float64 draw equal to a cumulative boundary has probability ~0: left and right insertion agree",
    "metarec.eval.evaluator.x__sample_candidates__mutmut_83": "as _sample_candidates_82",
    "metarec.eval.evaluator.x__sample_candidates__mutmut_84": "the row clamp that follows keeps every draw inside its row either way",
    "metarec.eval.evaluator.x__sample_candidates__mutmut_97": "as _sample_candidates_82: only a point rounded past its row's end reaches it",
    "metarec.eval.evaluator.x__sample_candidates__mutmut_101": "as _sample_candidates_82: only a draw rounded onto a zero-weight boundary lands on an item that is not free",
    "metarec.eval.evaluator.x__sample_candidates__mutmut_10": "dtype only: the counts are multiplied into float64 weights either way",
    "metarec.eval.evaluator.x__sample_candidates__mutmut_6": "dtype only: a bool weight times counts, and the cumulative sum of bools, give the same numbers for these sizes",
    "metarec.eval.evaluator.x__sample_candidates__mutmut_13": "the product of int64 counts is int64 already",
    "metarec.eval.evaluator.xǁEvaluatorǁtop_k__mutmut_23": "fresh=False copies a block the evaluator made itself: only extra work",
    "metarec.eval.evaluator.xǁEvaluatorǁtop_k__mutmut_28": "the generator is only read by the sampled modes",
    "metarec.eval.evaluator.xǁEvaluatorǁtop_k__mutmut_32": "as top_k_28",
    "metarec.eval.evaluator.xǁEvaluatorǁtop_k__mutmut_33": "as top_k_28",
    "metarec.eval.evaluator.xǁEvaluatorǁtop_k__mutmut_38": "fresh=None is falsy: a copy, as for a callable",
    "metarec.eval.evaluator.xǁEvaluatorǁtop_k__mutmut_39": "want_valid=None is falsy like False",
    "metarec.eval.evaluator.xǁEvaluatorǁtop_k__mutmut_50": "top_k never reads the valid matrix: only extra work",
    "metarec.eval.evaluator.xǁEvaluatorǁtop_k__mutmut_51": "top_k never reads the scoring clock",
    "metarec.eval.evaluator.xǁEvaluatorǁ_evaluate_impressions__mutmut_52": "an empty float32 score vector gives the same (empty) metrics",
    "metarec.eval.evaluator.xǁEvaluatorǁ_evaluate_impressions__mutmut_54": "as _evaluate_impressions_52",
    "metarec.eval.evaluator.xǁEvaluatorǁ_evaluate_impressions__mutmut_74": "want_mrr defaults to True: MRR is computed when not asked, and not reported",
    "metarec.eval.query_ranking.x_melu_ndcg__mutmut_15": "the discount vector is read only up to the list length, at most k",
    "metarec.eval.query_ranking.x_melu_ndcg__mutmut_7": "DCG and IDCG both double: their ratio is the same",
    "metarec.eval.query_ranking.x_query_metrics__mutmut_48": "pandas reads orient in any case",
    "metarec.eval.query_ranking.x_query_metrics__mutmut_67": "the mean of no errors is NaN either way (numpy warns)",
    "metarec.eval.query_ranking.x_query_metrics__mutmut_77": "the nanmean of only NaN is NaN either way (numpy warns)",
    "metarec.eval.query_ranking.x_query_metrics__mutmut_9": "the predictions are float64 already (query_ranking converts them)",
    "metarec.eval.tasks.x__auc_block__mutmut_24": "the nanmean of only NaN is NaN either way (numpy warns)",
    "metarec.eval.tasks.x__auc_block__mutmut_41": "astype(None) is float64",
    "metarec.eval.tasks.x_padded_groups__mutmut_20": "_auc_block is only called with at least one row",
    "metarec.eval.tasks.x_padded_groups__mutmut_22": "as padded_groups_20",
    "metarec.eval.metrics.x__discounts__mutmut_7": DEVICE,
    "metarec.eval.metrics.x__discounts__mutmut_11": DEVICE,
    "metarec.eval.metrics.x_map___mutmut_16": DEVICE,
    "metarec.eval.metrics.x_map___mutmut_20": DEVICE,
    "metarec.eval.metrics.x_ndcg__mutmut_8": DEVICE,
    "metarec.eval.metrics.x_ndcg__mutmut_10": DEVICE,
    "metarec.eval.metrics.x_run_means__mutmut_13": DEVICE,
    "metarec.eval.metrics.x_run_means__mutmut_16": DEVICE,
    "metarec.eval.metrics.x_run_means__mutmut_27": DEVICE,
    "metarec.eval.metrics.x_run_means__mutmut_30": DEVICE,
    "metarec.eval.metrics.x_tie_runs__mutmut_2": DEVICE,
    "metarec.eval.metrics.x_tie_runs__mutmut_7": DEVICE,
    "metarec.eval.metrics.x_tie_runs__mutmut_9": DEVICE,
    "metarec.eval.metrics.x_tie_runs__mutmut_13": DEVICE,
    "metarec.eval.metrics.x_tie_runs__mutmut_16": DEVICE,
    "metarec.eval.metrics.xǁTieRunsǁfrom_hits__mutmut_10": DEVICE,
    "metarec.eval.metrics.xǁTieRunsǁfrom_hits__mutmut_12": DEVICE,
}


def explain(diff: str, key: str = "") -> str:
    if key in EXAMINED:
        return EXAMINED[key]

    removed = "\n".join(line[1:] for line in diff.splitlines() if line.startswith("-") and not line.startswith("---"))
    added = "\n".join(line[1:] for line in diff.splitlines() if line.startswith("+") and not line.startswith("+++"))
    for old, new, why in EQUIVALENT:
        if re.search(old, removed) and re.search(new, added):
            return why
    return "not examined"


def mutant_diff(key: str) -> str:
    """The changed lines of one mutant as '-old' / '+new', read from the mutated module in mutants/ (the original
    and the mutant are both kept there as functions); '' where the module is not generated."""
    module, _, name = key.rpartition(".")
    path = WORK / (module.replace(".", "/") + ".py")
    if not path.is_file():
        return ""
    text = path.read_text()

    def body(fname: str) -> list[str]:
        # up to the next definition at the same indentation (nested helpers belong to it) or top-level code
        m = re.search(rf"^(?P<ind>[ \t]*)def {re.escape(fname)}\(.*?(?=^(?P=ind)(?:@|def |class )|^\S|\Z)", text,
                      re.S | re.M)
        return m.group(0).replace(fname, "NAME", 1).splitlines() if m else []

    orig, mutant = body(re.sub(r"__mutmut_\d+$", "__mutmut_orig", name)), body(name)
    changed = [(a, b) for a, b in zip(orig, mutant) if a != b]
    if len(orig) != len(mutant):           # a removed or added line: compare the rest as one block
        changed = [("\n".join(orig), "\n".join(mutant))] if not changed else changed
    base = name.split("__mutmut_")[0]
    return "\n".join(f"-{a.replace('NAME', base)}\n+{b.replace('NAME', base)}" for a, b in changed[:2])


def survivors_markdown(keys: list[str]) -> str:
    """One table row per surviving mutant: the mutated line before and after, and why it survives."""
    rows = ["| mutant | change | why it survives |", "| --- | --- | --- |"]
    for key in keys:
        diff = mutant_diff(key)
        change = " → ".join(" ".join(line[1:].split()) for line in diff.splitlines()[:2]).replace("|", "\\|")
        rows.append(f"| `{key.split('.')[-1]}` | `{change[:160]}` | {explain(diff, key)} |")
    return "\n".join(rows)


def score(goal: float, survivors: bool) -> int:
    found = verdicts(STATE if STATE.exists() else WORK)
    if not found:
        print("no mutation results: run `make mutation` first")
        return 1
    counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    left: dict[str, list[str]] = collections.defaultdict(list)
    for key, code in found.items():
        status = status_of(code)
        counts[module_of(key)][status] += 1
        if status in ("survived", "no tests"):
            left[module_of(key)].append(key)
    print(f"{'module':<30}{'killed':>8}{'survived':>10}{'no tests':>10}{'not run':>9}{'other':>7}{'score':>8}")
    missed = []
    for module in sorted(counts):
        c = counts[module]
        killed = sum(c[s] for s in KILLED)
        counted = sum(c[s] for s in COUNTED)
        other = sum(v for s, v in c.items() if s not in COUNTED and s != "not checked")
        value = killed / counted if counted else float("nan")
        if not value >= goal or c["not checked"]:
            missed.append(module)
        print(f"{module:<30}{killed:>8}{c['survived']:>10}{c['no tests']:>10}{c['not checked']:>9}{other:>7}"
              f"{value:>8.1%}")
    print(f"goal {goal:.0%} with every mutant run: "
          + ("every module reaches it" if not missed else f"not (yet) by {', '.join(missed)}"))
    if survivors:
        for module in sorted(left):
            print(f"\n### {module}\n")
            print(survivors_markdown(sorted(left[module])))
    return 1 if missed else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("command", nargs="?", choices=["run", "again", "score"], default="score",
                    help="run: mutants without a verdict; again: rerun the survivors; score: print the scores")
    ap.add_argument("globs", nargs="*", help="run: mutant-name globs to run (default: every configured module)")
    ap.add_argument("--goal", type=float, default=0.85)
    ap.add_argument("--survivors", action="store_true", help="score: list the surviving mutants")
    ap.add_argument("--chunk", type=int, default=150, help="run: mutants per mutmut call (state saved after each)")
    ap.add_argument("--children", type=int, default=1, help="run: parallel mutmut workers")
    args = ap.parse_args()
    if args.command in ("run", "again"):
        run(args.globs, args.chunk, args.children, again=args.command == "again")
    return score(args.goal, args.survivors)


if __name__ == "__main__":
    raise SystemExit(main())
