"""What each protocol records in the split it returns — its name, its resolved parameters, the verdict of each of its
leakage checks — built inside the test (not in a shared fixture), so that a protocol that stops running a check, or
records another name or other parameters, fails here. The name and parameters are the split's identity: they go into
its folder name and every run key, so a change would silently separate old and new results."""
from __future__ import annotations

import pandas as pd

from metarec.data.schema import build_dataset
from metarec.protocols import get_protocol
from tests.toys import toy_dataset


def test_general_records_its_name_ratios_and_check():
    s = get_protocol("general")(toy_dataset(), seed=4, ratios=[0.6, 0.2, 0.2])
    assert (s.protocol, s.params, s.seed) == ("general", {"ratios": [0.6, 0.2, 0.2]}, 4)
    assert s.meta["checks"] == ["valid: no pair in train; test: no pair in train"]


def test_sequential_records_its_name_length_and_both_checks():
    s = get_protocol("sequential")(toy_dataset(), seed=2, min_length=5)
    assert (s.protocol, s.params, s.seed) == ("sequential", {"min_length": 5}, 2)
    assert s.meta["checks"] == ["test item = each user's latest, valid = second latest",
                                "valid: no pair in train; test: no pair in train"]


def test_temporal_records_its_name_parameters_and_both_checks():
    s = get_protocol("temporal")(toy_dataset(), seed=1, ratios=[0.7, 0.1, 0.2], drop_cold=False)
    assert (s.protocol, s.params) == ("temporal", {"ratios": [0.7, 0.1, 0.2], "drop_cold": False})
    assert s.meta["checks"] == ["valid: no pair in train; test: no pair in train",
                                "valid/test events not earlier than train events"]


def test_temporal_drop_cold_drops_a_valid_event_of_a_known_user_with_an_unseen_item():
    # ten events at t = 0..9: train t < 7, valid t = 7, test t >= 8. The valid event is u1's, on an item first seen
    # then: with drop_cold it goes (user known is not enough: the item must be known too)
    rows = [(t % 3, t % 4, t) for t in range(7)] + [(1, 9, 7), (0, 1, 8), (2, 2, 9)]
    ds = build_dataset("t", pd.DataFrame([(f"u{u}", f"i{i:02d}", t) for u, i, t in rows],
                                         columns=["user_id", "item_id", "timestamp"]))
    assert len(get_protocol("temporal")(ds, seed=0, drop_cold=False).valid) == 1
    kept = get_protocol("temporal")(ds, seed=0, drop_cold=True)
    assert len(kept.valid) == 0 and len(kept.test) == 2
