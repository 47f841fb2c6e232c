"""`jaxsteer demo`'s words and its early refusals; its end-to-end run on the bundled model is
the CLI contract's smoke run (tests/test_cli_contract.py)."""

from jaxsteer import cli


def test_a_prompt_alone_brings_its_own_word():
    from jaxsteer.demo import demo_words
    assert demo_words("shapes", "a red square", None) == ("a red square", "square")
    assert demo_words("shapes", "a red square", "red") == ("a red square", "red")
    assert demo_words("shapes", None, None) == ("a circle", "circle")


def test_a_word_not_in_the_prompt_fails_before_anything_is_written(tmp_path, capsys):
    out = tmp_path / "demo"
    assert cli.main(["demo", "--prompt", "a red square", "--token", "circle",
                     "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert "report will be at" not in captured.out and not out.exists()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and "not a word of the prompt" in err[0]
