import pytest
import torch
from helpers import tiny_bert

from pmg.conditioning.encode import PromptTooLongError, count_chunks, encode_prompts


def test_chunked_encoding_covers_every_token():
    tok, enc = tiny_bert(max_length=16)
    words = [f"word{i}" for i in range(40)]
    text = ", ".join(words)
    ids = tok(text, add_special_tokens=False)["input_ids"]
    n = count_chunks(tok, text, 16)
    assert n == -(-len(ids) // 14) and n > 2
    seen = []
    calls = []
    orig = enc.forward

    def spy(input_ids, **kw):
        calls.append(input_ids.clone())
        return orig(input_ids, **kw)

    enc.forward = spy
    states = encode_prompts(tok, enc, [text], max_chunks=10)
    enc.forward = orig
    assert states.shape == (1, n * 16, enc.config.hidden_size)
    for row in calls[0]:
        body = [t for t in row.tolist() if t not in (tok.cls_token_id, tok.sep_token_id, tok.pad_token_id)]
        seen += body
    assert seen == ids  # every token, in order, exactly once


def test_each_chunk_is_encoded_on_its_own():
    tok, enc = tiny_bert(max_length=16)
    short = encode_prompts(tok, enc, ["a red apple"])
    padded = encode_prompts(tok, enc, ["a red apple"], num_chunks=3)
    assert padded.shape[1] == 48
    torch.testing.assert_close(padded[:, :16], short)
    empty = encode_prompts(tok, enc, [""])
    torch.testing.assert_close(padded[:, 16:32], empty)


def test_too_long_prompt_is_refused_with_its_text():
    tok, enc = tiny_bert(max_length=16)
    with pytest.raises(PromptTooLongError, match="word0"):
        encode_prompts(tok, enc, [" ".join(f"word{i}" for i in range(200))], max_chunks=2)
