"""jaxsteer's tokenization gives the ids transformers' CLIPTokenizer gave when the fixtures were
made (``tests/fixtures/tokenizer_ids.json``, written by ``scripts/make_tokenizer_fixtures.py``),
on the bundled shapes tokenizer and the `tiny` models' character tokenizer."""

import json
from pathlib import Path

import numpy as np
import pytest

from jaxsteer.errors import UserError

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "tokenizer_ids.json"
DATA = json.loads(FIXTURE.read_text(encoding="utf-8"))


def _tokenizer(name: str, tmp_path: Path):
    from transformers import CLIPTokenizer

    if name == "shapes":
        from jaxsteer.shapes.assets import ASSET_DIR
        folder = ASSET_DIR / "tokenizer"
    else:
        from jaxsteer.models.tiny import write_char_tokenizer
        folder = tmp_path / "tokenizer"
        write_char_tokenizer(folder)
    return CLIPTokenizer.from_pretrained(str(folder))


@pytest.mark.parametrize("name", ["shapes", "tiny"])
def test_token_ids_match_the_fixtures(name, tmp_path):
    from jaxsteer.models.tokens import tokenize

    tok = _tokenizer(name, tmp_path)
    n = int(tok.model_max_length)
    assert len(DATA["prompts"]) == len(DATA["ids"][name]) >= 20
    checked = 0
    for prompt, want in zip(DATA["prompts"], DATA["ids"][name], strict=True):
        if len(want) > n:  # longer than the encoder's window: refused, never cut
            with pytest.raises(UserError, match="shorten it"):
                tokenize((tok,), prompt, n, allow_empty=True)
            continue
        got = tokenize((tok,), prompt, n, allow_empty=True).ids_et[0]
        pad = tok.pad_token_id
        np.testing.assert_array_equal(got, want + [pad] * (n - len(want)), err_msg=repr(prompt))
        checked += 1
    assert checked >= 10


def test_the_shapes_model_tokenizes_like_the_fixtures():
    from jaxsteer.models import load

    model = load("shapes", dtype="float32").model
    prompt = "a small red circle on the left"
    want = DATA["ids"]["shapes"][DATA["prompts"].index(prompt)]
    assert model.tokenize(prompt).ids_et[0, : len(want)].tolist() == want
