from jaxsteer import cli


def test_demo_runs_end_to_end_offline(tmp_path, capsys):
    out = tmp_path / "demo"
    # The bundled shapes model, small settings: the compiles dominate on a CPU.
    assert cli.main(["demo", "--pool", "8", "--pairs", "8", "--steps", "1", "--k", "2",
                     "--directions", "2", "--seeds", "0", "--alphas", "-1:1:3",
                     "--devices", "1", "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("jaxsteer demo: the report will be at") and str(out) in lines[0]
    assert "model 'shapes'" in lines[0]
    page = (out / "report.html").read_text()
    assert 'id="direction-0"' in page and 'id="direction-1"' in page   # cards, 0-based
    assert page.count('type="range"') == 4    # a scrubber per direction, two to compose
    assert "<svg" in page                     # the spectrum, inline
    assert "http" not in page  # opens offline


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
