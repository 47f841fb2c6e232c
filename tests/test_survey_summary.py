"""Merging a survey's records: one row per prompt line, duplicates and skipped lines counted."""

import json

import pytest

from jaxsteer import cli


def test_merge_keeps_the_first_record_of_a_line_measured_twice(tmp_path, capsys):
    def rec(line, value):
        return {"line": line, "prompt": f"p{line}", "token": "x",
                "estimates": {"subspace_size": {"value": value}}}
    out = tmp_path / "s"
    out.mkdir()
    for name, recs in (("records-000.jsonl", [rec(1, 3), rec(2, 5), rec(1, 9)]),
                       ("records-001.jsonl", [rec(2, 7), rec(3, 4)])):
        (out / name).write_text("".join(json.dumps(r) + "\n" for r in recs))
    (out / "errors-000.jsonl").write_text('{"line": 4, "error": "empty prompt"}\n')
    assert cli.main(["survey-merge", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "dropped 2 duplicate record(s)" in printed and "1 prompt line(s) skipped" in printed
    rows = (out / "summary.csv").read_text().splitlines()[1:]
    assert [r.split(",")[0] for r in rows] == ["1", "2", "3"]
    assert rows[0].endswith(",3") and rows[1].endswith(",5")   # the first record wins
    summary = json.loads(printed[printed.index("{"):])
    assert summary["errors"] == 1 and summary["duplicates_dropped"] == 2


@pytest.mark.parametrize("make", ["nothing", "file"])
def test_merge_refuses_a_folder_without_records(tmp_path, capsys, make):
    out = tmp_path / "s"
    if make == "file":
        out.write_text("x")
    else:
        out.mkdir()
    assert cli.main(["survey-merge", str(out)]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
