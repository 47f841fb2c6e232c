"""Writes the token-id fixtures that tests/models/test_tokenizer_fixtures.py checks.

    python3 scripts/make_tokenizer_fixtures.py [--out tests/fixtures/tokenizer_ids.json]

For each prompt, the ids transformers' ``CLIPTokenizer`` gives (``add_special_tokens=True``, no
padding, no truncation) with the bundled shapes tokenizer and with the character-level tokenizer
of the `tiny` models (`jaxsteer.models.tiny.write_char_tokenizer`). The test asserts that
jaxsteer's tokenization gives the same ids on whatever transformers is installed, so a change of
tokenizer behaviour (transformers 5's tokenizers, lower-casing, whitespace and accent rules)
shows up as a failing test rather than as different token rows being differentiated.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "fixtures" / "tokenizer_ids.json"

# Shapes-world captions, words outside the vocabulary, case, punctuation, digits, repeated and
# odd whitespace, accents and other non-ASCII text, and the empty prompt (classifier-free
# guidance's unconditional branch).
PROMPTS = [
    "",
    "a small red circle on the left",
    "a large blue square at the top right",
    "a green triangle",
    "A Small RED Circle",
    "a  small   red\tcircle",
    "  leading and trailing spaces  ",
    "a red circle, a blue square.",
    "what's that? it's a star!",
    "circle-ish shapes",
    "3 circles and 12 squares",
    "a monster",
    "a photograph of an astronaut riding a horse",
    "café crème brûlée",
    "naïve résumé",
    "Ünïcödé ÅÉÎÕÜ",
    "東京 タワー",
    "emoji 🙂 here",
    "a picture of a dog, 4k, highly detailed",
    "circle\nsquare",
]


def _ids(tokenizer_dir: Path) -> list[list[int]]:
    from transformers import CLIPTokenizer

    tok = CLIPTokenizer.from_pretrained(str(tokenizer_dir))
    return [tok(p, add_special_tokens=True, truncation=False)["input_ids"] for p in PROMPTS]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    import transformers

    from jaxsteer.models.tiny import write_char_tokenizer
    from jaxsteer.shapes.assets import ASSET_DIR

    with tempfile.TemporaryDirectory() as tmp:
        write_char_tokenizer(Path(tmp))
        char_ids = _ids(Path(tmp))
    data = {"transformers_version": transformers.__version__, "prompts": PROMPTS,
            "ids": {"shapes": _ids(ASSET_DIR / "tokenizer"), "tiny": char_ids}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    # One prompt's ids per line: small diffs when a tokenizer changes.
    lines = [f"  {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}"
             for k, v in data.items() if k != "ids"]
    ids = ",\n".join(f"    {json.dumps(name)}: [\n" + ",\n".join(
        f"      {json.dumps(row)}" for row in rows) + "\n    ]"
        for name, rows in data["ids"].items())
    args.out.write_text("{\n" + ",\n".join([*lines, f'  "ids": {{\n{ids}\n  }}']) + "\n}\n",
                        encoding="utf-8")
    json.loads(args.out.read_text(encoding="utf-8"))  # the file parses
    print("wrote", args.out)


if __name__ == "__main__":
    main()
