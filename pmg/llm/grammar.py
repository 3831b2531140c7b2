"""Compact llama.cpp grammars for the keyword lists PMG asks for.

llama.cpp turns a JSON schema into a grammar that allows free whitespace, and small models spend a
third of their tokens on it (``[\\n    "cat face",\\n    ...``) and may fill strings with emoji. A list
of short phrases (``PHRASE_PATTERN``: one to three lowercase words) has a grammar of its own with no
whitespace between tokens: the cat lover's five answers took 198 tokens with the schema and 83 with
this grammar (llama.cpp, SmolLM2-135M).
"""

from __future__ import annotations

__all__ = ["PHRASE_PATTERN", "MAX_WORDS", "phrase_list_schema", "gbnf_for_schema"]

MAX_WORDS = 3
# a lowercase English word or number ("t-shirt", "90s", "rock'n'roll"), one to three of them
_WORD = "[a-z0-9][a-z0-9'-]{0,13}"
PHRASE_PATTERN = f"^{_WORD}( {_WORD}){{0,{MAX_WORDS - 1}}}$"


def phrase_list_schema(min_items: int, max_items: int) -> dict:
    """A JSON schema: ``min_items``..``max_items`` distinct-looking short phrases."""
    if not 0 <= min_items <= max_items or max_items < 1:
        raise ValueError(f"need 0 <= min_items <= max_items, max_items >= 1; got {min_items}, {max_items}")
    phrase = {"type": "string", "pattern": PHRASE_PATTERN, "minLength": 1, "maxLength": 44}
    return {"type": "array", "items": phrase, "minItems": min_items, "maxItems": max_items}


def gbnf_for_schema(schema: dict | None) -> str | None:
    """A whitespace-free GBNF grammar for a ``phrase_list_schema``; None for any other schema (the
    backend then sends the schema itself)."""
    if not schema or schema.get("type") != "array" or (schema.get("items") or {}).get("pattern") != PHRASE_PATTERN:
        return None
    lo, hi = int(schema.get("minItems", 0)), int(schema.get("maxItems", 10))
    if lo == 0:
        items = f'(phrase ("," phrase){{0,{hi - 1}}})?'
    else:
        items = f'phrase ("," phrase){{{lo - 1},{hi - 1}}}'
    return "\n".join([
        f'root ::= "[" {items} "]"',
        f'phrase ::= "\\"" word (" " word){{0,{MAX_WORDS - 1}}} "\\""',
        "word ::= [a-z0-9] [a-z0-9'-]{0,13}",
        "",
    ])
