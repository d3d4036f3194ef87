"""`given`: a dataset's own train/valid/test files, unchanged (e.g. the LightGCN ml-1m split, UniSRec's
leave-one-out), so published numbers can be reproduced on exactly their split."""
from __future__ import annotations

from typing import TYPE_CHECKING

from metarec.data.schema import Dataset
from metarec.errors import ConfigError
from metarec.protocols.base import make_split, protocol
from metarec.protocols.leakage import check_no_test_pair_in_train

if TYPE_CHECKING:
    from metarec.protocols.split import Split


def given(ds: Dataset, *, seed: int, allow_repeats: bool) -> "Split":
    """The dataset's own train/valid/test files (seed unused)."""
    if not ds.given or not {"train", "test"} <= set(ds.given):
        raise ConfigError(f"protocol 'given': dataset {ds.name!r} ships no train/test split of its own")
    frames = {k: ds.given[k] for k in ("train", "valid", "test") if k in ds.given}
    if "valid" not in frames:
        frames["valid"] = frames["test"].iloc[:0]
    return make_split(ds, "given", {"allow_repeats": bool(allow_repeats)}, 0, frames,
                      [lambda s: check_no_test_pair_in_train(s, allow_repeats=bool(allow_repeats))])


# registered after the definition rather than by a decorator: mutation testing (mutmut) leaves decorated
# functions alone, and this is the split algorithm every comparison rests on
protocol("given", allow_repeats=False)(given)
