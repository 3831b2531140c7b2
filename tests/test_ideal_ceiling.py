"""benchmarks/ideal_ceiling.py: what each probe asks the generator for, and how a user's rank is read."""

import importlib.util
from pathlib import Path

spec = importlib.util.spec_from_file_location("ideal_ceiling", Path(__file__).parents[1] / "benchmarks" / "ideal_ceiling.py")
ceiling = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ceiling)


def _rows():
    rows = []
    for user, ranks, fits, pics in (("u1", [9, 2, 40], [0.1, 0.2, 0.3], [0.1, 0.5, 0.2]), ("u2", [1, 7, 3], [0.5, 0.4, 0.1], [0.2, 0.1, 0.6])):
        for k, (rank, fit, pic) in enumerate(zip(ranks, fits, pics)):
            rows.append({"user": user, "split": "test", "probe": "told its name", "noise": k, "rank": rank, "fit": fit,
                         "fit_pictures": pic})
        rows.append({"user": user, "split": "test", "probe": "told the favourites", "noise": 0, "rank": 100, "fit": 0.0})
    rows.append({"user": "u3", "split": "val", "probe": "told its name", "noise": 0, "rank": 4, "fit": 0.9, "fit_pictures": 0.9})
    return rows


def test_best_ranks_reads_noise_zero_the_oracle_and_the_scorers_pick():
    rows = _rows()
    assert ceiling.best_ranks(rows, "test", "told its name") == [9, 1]
    assert ceiling.best_ranks(rows, "test", "told the favourites") == [100, 100]
    assert ceiling.best_ranks(rows, "test", "told its name, best of 3") == [2, 1]
    assert ceiling.best_ranks(rows, "test", "told its name, scorer's pick of 3") == [40, 1]  # u1's highest fit is its worst noise
    assert ceiling.best_ranks(rows, "test", "told its name, scorer's pick of 3 with the exemplar") == [2, 3]
    assert ceiling.best_ranks(rows, "val", "told its name, best of 3") == [4]


def test_probe_conditions_name_the_truth_and_rank_favourites_by_use():
    user = {"history": [{"title": "key"}, {"title": "locked"}, {"title": "locked"}, {"title": "open lock"}],
            "target": {"message": "so tired"}}
    truth = {"target_label": "locked with key", "style": "openmoji"}
    probes = ceiling.probe_conditions(user, truth)
    assert probes["told its name"] == ("locked with key, openmoji style", None, (0.0, 1.0))
    assert probes["told the favourites"] == ("so tired", "locked, key, open lock, openmoji style", (1.0, 0.0))
