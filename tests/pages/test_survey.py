"""The survey page from a hand-written survey folder (no model run)."""

from jaxsteer import cli, records
from jaxsteer.pages.survey import SurveyResult
from jaxsteer.survey import append_line


def record(line, prompt, size, ci):
    return {"line": line, "prompt": prompt, "token": prompt.split()[-1], "pairs": 64,
            "spectrum_head": [0.3, 0.1, 0.02, 0.01],
            "estimates": {"subspace_size": {"value": size, "ci": ci, "threshold": 0.05},
                          "mle": {"value": 3.14159265358979, "ci": None}}}


def test_survey_page_ranks_prompts_with_intervals_thumbnails_and_skipped_lines(tmp_path):
    out = tmp_path / "survey"
    records.write_json(out / "survey.json", {"config": {"model": "shapes", "pairs": 64}})
    append_line(out / "records-000.jsonl", record(1, "a red circle", 2.0, [1.0, 3.0]))
    append_line(out / "records-001.jsonl", record(3, "a big blue square", 7.0, [5.0, 9.0]))
    append_line(out / "errors-000.jsonl", {"line": 2, "prompt": "a zebra", "error": "unknown"
                                           " word 'zebra'"})
    assert cli.main(["report", str(out)]) == 0
    page = (out / "report.html").read_text()
    assert page.index("a big blue square") < page.index("a red circle")   # ranked, largest first
    assert "7 [5, 9]" in page and "2 [1, 3]" in page and "3.14" in page
    assert "3.14159" not in page                                         # rounded
    assert page.count("<svg") == 3                                       # histogram + 2 thumbs
    assert "Skipped lines" in page and "unknown word" in page and "a zebra" in page
    assert "Prompts ranked by complexity" in page
    assert "a big blue square" in SurveyResult({"out": str(out)})._repr_html_()


def test_the_page_reads_flat_and_nested_recorded_configs_alike(tmp_path):
    """Survey folders from before the model: / sampler: nesting record a flat config."""
    from jaxsteer.pages.survey import survey_html
    bodies = []
    for name, cfg in (("flat", {"model": "shapes", "pairs": 64, "steps": 4}),
                      ("nested", {"model": {"name": "shapes"}, "pairs": 64,
                                  "sampler": {"steps": 4}})):
        records.write_json(tmp_path / name / "survey.json", {"config": cfg})
        append_line(tmp_path / name / "records-000.jsonl", record(1, "a red circle", 2.0, None))
        bodies.append(survey_html(tmp_path / name)[1])
    assert bodies[0] == bodies[1] and "shapes" in bodies[0]
