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
