"""Item categories from WordNet: a tiny WordNet written here (byte offsets as in the real files), and
the real one where Debian's wordnet-base is installed."""

from pathlib import Path

import pytest

from pmg.keywords.categories import WORDNET_DIR, WordNetNouns, category_keywords


def tiny_wordnet(root: Path) -> Path:
    synsets = [("pizza", 13), ("tiger", 18), ("tiger", 5), ("french_fries", 13), ("peach", 20), ("peach", 13),
               ("knife", 6), ("sunflower", 20)]
    data, offsets = b"  1 This software and database is a licence header line\n", []
    for word, lexfile in synsets:
        offsets.append(len(data))
        data += f"{len(data):08d} {lexfile:02d} n 01 {word} 0 000 | a gloss\n".encode()
    (root / "data.noun").write_bytes(data)
    senses: dict[str, list[int]] = {}
    for (word, _), off in zip(synsets, offsets):
        senses.setdefault(word, []).append(off)
    lines = ["  1 licence header\n"] + [f"{w} n {len(o)} 1 @ {len(o)} 0 {' '.join(f'{x:08d}' for x in o)}  \n" for w, o in sorted(senses.items())]
    (root / "index.noun").write_text("".join(lines))
    return root


def test_nouns_compounds_and_senses(tmp_path):
    wn = WordNetNouns(tiny_wordnet(tmp_path))
    assert wn.nouns("French fries") == ["french_fries"]  # the compound, not "french" + "fries"
    assert wn.nouns("tiger face") == ["tiger"]
    assert wn.nouns("tigers") == ["tiger"]  # plural-insensitive
    assert wn.lexfiles("tiger") == {18, 5}  # a fierce person first, the animal second: both senses count
    assert wn.lexfiles("unknown") == set()


def test_category_shared_by_most_items(tmp_path):
    wn = WordNetNouns(tiny_wordnet(tmp_path))
    assert category_keywords(["pizza", "french fries", "peach", "kitchen knife"], wordnet=wn) == {"food": 0.75}
    # a category of fewer than 60% of the items, or of a single item, is not a preference
    assert category_keywords(["pizza", "knife", "sunflower", "tiger"], wordnet=wn) == {}
    assert category_keywords(["pizza"], wordnet=wn) == {}
    # plants and food both pass when the items are both (peach: the tree and the fruit)
    assert category_keywords(["peach", "sunflower", "pizza"], wordnet=wn) == {"food": 2 / 3, "plants": 2 / 3}


@pytest.mark.skipif(not (WORDNET_DIR / "index.noun").is_file(), reason="Debian's wordnet-base is not installed")
def test_real_wordnet_categories():
    assert category_keywords(["pizza", "wine glass", "french fries", "clinking beer mugs"]) == {"food": 0.75}
    assert category_keywords(["tiger face", "hatching chick", "pig", "rooster", "panda"]) == {"animals": 1.0}
    assert category_keywords(["cherry blossom", "sunflower", "four leaf clover", "deciduous tree"]) == {"plants": 1.0}
    # film titles and hearts fall into no category
    assert category_keywords(["Star Trek (2009)", "Iron Man (2008)", "Beautiful Mind, A (2001)"]) == {}
    assert category_keywords(["red heart", "blue heart", "sparkling heart"]) == {}
