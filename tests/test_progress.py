import io

from jaxsteer.progress import LineProgress, bar, line


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_off_a_terminal_one_line_per_interval_and_one_at_the_end():
    clock, out = Clock(), io.StringIO()
    p = LineProgress(total=100, desc="collecting", unit="grad", interval=30, stream=out,
                     clock=clock)
    for _ in range(10):       # 10 updates of 10 grads, 10 s apart
        clock.t += 10
        p.update(10)
    p.close()
    p.close()                 # closing twice prints once
    lines = out.getvalue().splitlines()
    assert len(lines) == 4    # at 30 s, 60 s, 90 s, and the close at 100 s
    assert lines[0] == "jaxsteer collecting: 30/100 grad, 1 grad/s, ETA 1m10s, elapsed 30s"
    assert lines[-1].startswith("jaxsteer collecting: 100/100 grad") and "ETA 0s" in lines[-1]


def test_iteration_counts_items_and_slow_rates_read_as_seconds_per_item():
    clock, out = Clock(), io.StringIO()
    items = []
    for x in LineProgress(["a", "b"], desc="survey", unit="prompt", interval=30, stream=out,
                          clock=clock):
        clock.t += 50
        items.append(x)
    assert items == ["a", "b"]
    lines = out.getvalue().splitlines()
    assert lines[0] == "jaxsteer survey: 1/2 prompt, 50 s/prompt, ETA 50s, elapsed 50s"
    assert lines[-1].startswith("jaxsteer survey: 2/2 prompt")


def test_a_terminal_gets_tqdm_and_a_pipe_gets_lines():
    class Tty(io.StringIO):
        def isatty(self):
            return True
    from tqdm.auto import tqdm
    assert isinstance(bar(range(3), stream=Tty()), tqdm)
    assert isinstance(bar(range(3), stream=io.StringIO()), LineProgress)
    assert line("x", 5, None, "it", 0.0) == "jaxsteer x: 5/? it, 0 it/s, elapsed 0s"


def test_sample_prints_progress_on_stderr_and_clean_json_on_stdout(tmp_path, capsys):
    import json

    from jaxsteer import cli
    assert cli.main(["sample", "--model", "tiny", "--prompt", "a cat", "--n", "4", "--batch", "2",
                     "--steps", "1", "--devices", "1", "--out", str(tmp_path / "pool")]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["samples"] == 4
    assert "jaxsteer sampling: 2/2 shard" in captured.err
