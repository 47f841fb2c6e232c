from jaxsteer import cli


def test_demo_runs_end_to_end_offline(tmp_path, capsys):
    out = tmp_path / "demo"
    assert cli.main(["demo", "--pool", "16", "--pairs", "24", "--steps", "2", "--k", "4",
                     "--directions", "2", "--seeds", "0", "--devices", "1",
                     "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("jaxsteer demo: the report will be at") and str(out) in lines[0]
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 3  # spectrum + 2 grids, inlined
    assert "http" not in page  # opens offline
