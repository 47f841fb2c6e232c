"""The CLI's contract, command by command: `--help` works, a tiny run exits 0, and bad input
(damaged file, missing file, --out a file, read-only --out, a second writer) is exit 2 with one
line on stderr, no traceback and nothing half-written.

The commands are enumerated from `cli.COMMANDS`, so a new command fails here until it has a
smoke run and bad-input rows. Everything runs in-process through `cli.main(argv)` on the tiny
random model (demo: on its default, the bundled shapes model), with counts as small as each
command accepts.
"""

import contextlib
import io
import json
import os
import shutil
import traceback

import pytest

from jaxsteer import cli, runlock

TINY = ["--model", "tiny", "--steps", "1", "--devices", "1"]
PROMPT = "a picture of a monster"
# The shapes model at the micro teacher's size (8 x 8 images, one UNet level).
TRAIN = ["--steps", "2", "--batch", "2", "--log-every", "1", "--checkpoint-every", "1",
         "--no-progress", "--optim.warmup", "1", "--model.image-size", "8",
         "--model.channels", "32", "--model.attention-levels", "0", "--model.heads", "1",
         "--model.text-width", "16", "--model.text-layers", "1", "--model.text-heads", "1"]
# The scenes model at its smallest (8 x 8 images, one VAE level, no attention): two steps a phase,
# a checkpoint each step, no quality table; its two compiled steps are most of its ~20 s.
SCENES = ["--vae-steps", "2", "--steps", "2", "--vae-batch", "2", "--batch", "2", "--log-every",
          "1", "--checkpoint-every", "1", "--eval-n", "0", "--vae-optim.warmup", "1",
          "--optim.warmup", "1", "--model.image-size", "8", "--model.vae-channels", "8",
          "--model.vae-groups", "8", "--model.channels", "32", "--model.attention-levels", "",
          "--model.heads", "1", "--model.text-width", "16", "--model.text-layers", "1",
          "--model.text-heads", "1"]
# A 1-step student of the micro teacher: the compiled step of tests/distill/test_run.py.
DISTILL = ["--steps", "2", "--batch", "4", "--student.steps", "1", "--no-progress", "--log-every",
           "1", "--checkpoint-every", "1", "--dmd.warmup", "1"]
SURVEY = ["--pairs", "4", "--batch", "4", "--pool", "4", "--complexity.n-boot-spectral", "0",
          "--complexity.n-boot", "4", "--complexity.pa-draws", "2", "--complexity.mle-k", "2",
          "--complexity.vaease.enabled", "false"]


def smoke_argv(root):
    """Each command's tiny run, in an order where every input exists before it is read."""
    return {
        "sample": ["sample", *TINY, "--prompt", PROMPT, "--n", "4", "--batch", "4",
                   "--out", f"{root}/pool"],
        "collect": ["collect", *TINY, "--prompt", PROMPT, "--token", "monster", "--pool",
                    f"{root}/pool", "--pairs", "4", "--batch", "4", "--out", f"{root}/grads"],
        "decompose": ["decompose", f"{root}/grads", "--k", "2"],
        "export": ["export", f"{root}/grads", "--out", f"{root}/dirs.safetensors"],
        "pool-from-images": ["pool-from-images", f"{root}/images", *TINY[:2], "--prompt",
                             PROMPT, "--batch", "2", "--out", f"{root}/imgpool"],
        "steer": ["steer", f"{root}/grads", *TINY, "--indices", "0", "--seeds", "0",
                  "--alphas", "-1:1:3", "--out", f"{root}/steer"],
        "diversify": ["diversify", f"{root}/grads/directions_pca", *TINY, "--n", "2",
                      "--out", f"{root}/diversify"],
        "report": ["report", str(root)],
        "survey": ["survey", f"{root}/prompts.txt", *TINY, *SURVEY, "--out", f"{root}/survey"],
        "survey-merge": ["survey-merge", f"{root}/survey"],
        "train-shapes": ["train-shapes", f"{root}/shapes", *TRAIN],
        "train-scenes": ["train-scenes", f"{root}/scenes", *SCENES],
        "distill-shapes": ["distill-shapes", f"{root}/student", "--teacher", f"{root}/teacher",
                           *DISTILL],
        "bench": ["bench", "pca", "--n", "32", "--m", "64", "--out", f"{root}/bench.json"],
        "env": ["env"],
        # The bundled shapes model (demo's default), small settings.
        "demo": ["demo", "--pool", "8", "--pairs", "8", "--steps", "1", "--k", "2",
                 "--directions", "2", "--seeds", "0", "--alphas", "-1:1:3", "--devices", "1",
                 "--out", f"{root}/demo"],
    }


def call(argv, capsys):
    """(exit code, stderr lines) of one in-process CLI call."""
    capsys.readouterr()
    code = cli.main(list(argv))
    return code, capsys.readouterr().err.strip().splitlines()


def test_top_level_help(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in cli.COMMANDS)


@pytest.mark.parametrize("name", list(cli.COMMANDS))
def test_every_command_has_help(name, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main([name, "--help"])
    captured = capsys.readouterr()
    assert e.value.code == 0 and "Traceback" not in captured.err
    assert captured.out.startswith(f"usage: jaxsteer {name}")


def write_images(folder, n):
    from PIL import Image
    folder.mkdir(parents=True)
    rng = __import__("numpy").random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (20 + i, 24, 3), dtype="uint8")).save(
            folder / f"{i}.png")


@pytest.fixture(scope="module")
def smoke(tmp_path_factory, micro_shapes):
    """Runs every command's smoke argv once, in order: {name: (code, stderr, stdout)}."""
    root = tmp_path_factory.mktemp("smoke")
    shutil.copytree(micro_shapes, root / "teacher")
    (root / "prompts.txt").write_text("a red cat\na big dog\n")
    write_images(root / "images", 3)
    results = {}
    for name, argv in smoke_argv(root).items():
        err, out = io.StringIO(), io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            try:
                code = cli.main(argv)
            except Exception:  # noqa: BLE001 - reported by the command's own test
                code = traceback.format_exc()
        results[name] = (code, err.getvalue(), out.getvalue())
    return root, results


def test_every_command_has_a_smoke_run():
    assert set(smoke_argv("x")) == set(cli.COMMANDS)


@pytest.mark.parametrize("name", list(cli.COMMANDS))
def test_smoke_run_exits_0_without_a_traceback(smoke, name):
    _, results = smoke
    code, err, _ = results[name]
    assert code == 0, f"{code}\n{err[-3000:]}"
    assert "Traceback" not in err


def test_smoke_outputs_exist(smoke):
    root, _ = smoke
    assert (root / "report.html").exists() and (root / "demo" / "report.html").exists()
    assert (root / "shapes" / "model_index.json").exists()
    assert (root / "student" / "unet" / "diffusion_flax_model.msgpack").exists()
    assert json.loads((root / "bench.json").read_text())["result"]
    assert (root / "survey" / "summary.csv").read_text().count("\n") == 3


def test_demo_runs_the_bundled_model_offline_into_one_page(smoke):
    root, results = smoke
    lines = results["demo"][2].splitlines()
    assert lines[0].startswith("jaxsteer demo: the report will be at")
    assert str(root / "demo") in lines[0] and "model 'shapes'" in lines[0]
    page = (root / "demo" / "report.html").read_text()
    assert 'id="direction-0"' in page and 'id="direction-1"' in page   # cards, 0-based
    assert page.count('type="range"') == 4    # a scrubber per direction, two to compose
    assert "<svg" in page                     # the spectrum, inline
    assert "http" not in page  # opens offline


def test_train_scenes_trains_both_phases_and_a_rerun_resumes(smoke, tmp_path, capsys):
    from jaxsteer.scenes import train
    root, _ = smoke
    work = root / "scenes.train"
    progress = json.loads((work / "progress.json").read_text())
    assert (progress["vae_step"], progress["unet_step"], progress["done"]) == (2, 2, True)
    assert [len(progress["losses"][p]) for p in ("vae", "unet")] == [2, 2]
    assert (work / "vae_ema.msgpack").exists() and (work / "unet.msgpack").exists()
    assert (root / "scenes" / "model_index.json").exists()
    # more steps on a copy: the UNet resumes at 2, through `python -m jaxsteer.scenes.train`
    shutil.copytree(work, tmp_path / "scenes.train")
    capsys.readouterr()
    assert train.main([str(tmp_path / "scenes"), *SCENES, "--steps", "3"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert [line.split(" {")[0] for line in out] == ["unet", "vae 2/2, unet 3/3: done"]
    assert json.loads((tmp_path / "scenes.train" / "progress.json").read_text())["exported"] \
        == [2, 3]


@pytest.mark.parametrize("flags, message", [
    (["--steps", "-1"], "--steps must be >= 1"),
    (["--p-uncond", "2"], "--p-uncond must be in [0, 1]"),
    (["--vae-steps", "x"], "--vae-steps: cannot read 'x' as int")])
def test_train_scenes_bad_values_are_one_line_and_exit_2(flags, message, tmp_path, capsys):
    from jaxsteer.scenes import train
    argv = [str(tmp_path / "m"), *SCENES, *flags]
    line = [f"jaxsteer train-scenes: error: {message}"]
    assert call(["train-scenes", *argv], capsys) == (2, line)
    assert train.main(argv) == 2 and capsys.readouterr().err.strip().splitlines() == line
    assert not list(tmp_path.iterdir())


# --- bad input ------------------------------------------------------------------------------


def flip_last_byte(path):
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))


def snapshot(*folders):
    """Every file under ``folders`` with its bytes: "nothing half-written" is this unchanged."""
    return {str(p): p.read_bytes() for f in folders if f.exists()
            for p in sorted(f.rglob("*")) if p.is_file()}


@pytest.fixture
def bad(smoke, tmp_path):
    """A scratch copy of the smoke runs to damage, a file to pass as --out, and a writer lock."""
    root, _ = smoke
    work = tmp_path / "w"
    for name in ("pool", "grads", "survey"):
        shutil.copytree(root / name, work / name)
    (work / "file").write_text("not a folder\n")
    (work / "prompts.txt").write_text("a red cat\n")
    flip_last_byte(work / "pool" / "shards" / "000000.safetensors")
    flip_last_byte(work / "grads" / "shards" / "000000.safetensors")
    return root, work


def damaged(root, w):
    return {
        "collect": (["collect", *TINY, "--prompt", PROMPT, "--token", "monster", "--pool",
                     f"{w}/pool", "--pairs", "4", "--batch", "4", "--out", f"{w}/new"],
                    "000000.safetensors is damaged"),
        "decompose": (["decompose", f"{w}/grads", "--k", "2", "--out", f"{w}/new"],
                      "000000.safetensors is damaged"),
        "steer": (["steer", f"{w}/grads/directions_pca", *TINY, "--out", f"{w}/new"],
                  "directions_pca"),
        "report": (["report", f"{w}/grads"], "manifest.json is corrupted"),
        "survey-merge": (["survey-merge", f"{w}/survey"], "is corrupted"),
        "sample": (["sample", "--model", f"{w}/model", "--prompt", PROMPT, "--out", f"{w}/new"],
                   "cannot read the weights in"),
    }


def missing(root, w):
    gone = f"{w}/nothing-here"
    return {
        "sample": (["sample", "--model", gone, "--prompt", PROMPT, "--out", f"{w}/new"],
                   "not found"),
        "collect": (["collect", *TINY, "--prompt", PROMPT, "--token", "monster", "--pool", gone,
                     "--out", f"{w}/new"], "not a sample pool"),
        "decompose": (["decompose", gone, "--out", f"{w}/new"], "not a jaxsteer run folder"),
        "steer": (["steer", gone, *TINY, "--out", f"{w}/new"], gone),
        "diversify": (["diversify", gone, *TINY, "--out", f"{w}/new"], gone),
        "report": (["report", gone], "is not a folder"),
        "survey": (["survey", gone, *TINY, "--out", f"{w}/new"], "prompts file not found"),
        "survey-merge": (["survey-merge", gone], "is not a folder"),
        "train-shapes": (["train-shapes", f"{w}/new", *TRAIN, "--init-from", gone], gone),
        "train-scenes": (["train-scenes", f"{w}/new", *SCENES, "--config", gone], gone),
        "distill-shapes": (["distill-shapes", f"{w}/new", "--teacher", gone, *DISTILL], gone),
        "demo": (["demo", "--model", gone, "--out", f"{w}/new"], "not found"),
        "bench": (["bench", "throughput", "--torch-json", gone, "--out", f"{w}/new.json"],
                  gone),
        "export": (["export", gone, "--out", f"{w}/new.safetensors"], gone),
        "pool-from-images": (["pool-from-images", gone, *TINY[:2], "--prompt", PROMPT,
                              "--out", f"{w}/new"], "is not a folder of images"),
    }


def out_args(root, w, out):
    """Each writing command with ``out`` as its output place."""
    return {
        "sample": ["sample", *TINY, "--prompt", PROMPT, "--out", out],
        "collect": ["collect", *TINY, "--prompt", PROMPT, "--token", "monster", "--out", out],
        "decompose": ["decompose", f"{root}/grads", "--out", out],
        "steer": ["steer", f"{root}/grads", *TINY, "--out", out],
        "diversify": ["diversify", f"{root}/grads/directions_pca", *TINY, "--out", out],
        "survey": ["survey", f"{w}/prompts.txt", *TINY, "--out", out],
        "train-shapes": ["train-shapes", out, *TRAIN],
        "train-scenes": ["train-scenes", out, *SCENES],
        "distill-shapes": ["distill-shapes", out, "--teacher", f"{root}/teacher", *DISTILL],
        "demo": ["demo", *TINY, "--out", out],
        "report": ["report", out],
        "survey-merge": ["survey-merge", out],
        "pool-from-images": ["pool-from-images", f"{root}/images", *TINY[:2], "--prompt",
                             PROMPT, "--out", out],
    }


def writer(root, w):
    return {
        "sample": smoke_argv(w)["sample"],
        "collect": smoke_argv(root)["collect"][:-1] + [f"{w}/grads2"],
        "survey": ["survey", f"{w}/prompts.txt", *TINY, *SURVEY, "--out", f"{w}/survey2"],
        "pool-from-images": ["pool-from-images", f"{root}/images", *TINY[:2], "--prompt", PROMPT,
                             "--out", f"{w}/imgpool2"],
    }


def cases():
    """(kind, command) rows of the bad-input table."""
    rows = [("damaged", c) for c in damaged("r", "w")]
    rows += [("missing", c) for c in missing("r", "w")]
    rows += [("out-is-a-file", c) for c in out_args("r", "w", "o")]
    rows += [("out-read-only", c) for c in out_args("r", "w", "o") if c not in
             ("report", "survey-merge")]
    rows += [("second-writer", c) for c in writer("r", "w")]
    return rows


@pytest.mark.parametrize("kind, name", cases(), ids=[f"{k}-{c}" for k, c in cases()])
def test_bad_input_is_exit_2_one_line_nothing_written(bad, kind, name, capsys, monkeypatch,
                                                      tiny_folder):
    root, w = bad
    held = None
    if kind == "damaged":
        argv, message = damaged(root, w)[name]
        if name == "steer":
            checkpoint = w / "grads" / "directions_pca"
            flip_last_byte(next(p for p in sorted(checkpoint.rglob("*")) if p.is_file()
                                and p.stat().st_size > 100))
        if name == "report":
            (w / "grads" / "manifest.json").write_text("{ cut")
        if name == "survey-merge":
            part = w / "survey" / "records-000.jsonl"
            part.write_text('{"line": 1, "pr\n' + part.read_text())
        if name == "sample":
            shutil.copytree(tiny_folder, w / "model")
            path = w / "model" / "unet" / "diffusion_pytorch_model.safetensors"
            path.write_bytes(path.read_bytes()[:1000])
    elif kind == "missing":
        argv, message = missing(root, w)[name]
    elif kind == "out-is-a-file":
        argv = out_args(root, w, f"{w}/file")[name]
        message = "is not a folder" if name in ("report", "survey-merge") else "is a file"
    elif kind == "out-read-only":
        target = f"{w}/ro/out"
        argv, message = out_args(root, w, target)[name], "is not writable"
        # Tests run as root, whom no chmod stops: play the read-only file system that
        # access(2) reports.
        real = os.access
        monkeypatch.setattr(os, "access", lambda p, m: (not str(p).startswith(f"{w}/ro"))
                            and real(p, m) if m == os.W_OK else real(p, m))
        (w / "ro").mkdir()
    else:
        argv, message = writer(root, w)[name], "being written by another jaxsteer run"
        out = argv[argv.index("--out") + 1]
        lock = ".jaxsteer-survey-000.lock" if name == "survey" else runlock.NAME
        held = runlock.hold(out, lock)
        held.__enter__()
    before = snapshot(w)
    try:
        code, err = call(argv, capsys)
    finally:
        if held is not None:
            held.__exit__(None, None, None)
    assert code == 2, err
    assert len(err) == 1 and err[0].startswith(f"jaxsteer {name}: error:"), err
    assert message in err[0] and "Traceback" not in err[0]
    if kind == "second-writer":
        assert f"pid {os.getpid()}" in err[0]
    assert snapshot(w) == before
    assert not (w / "new").exists() and not (w / "ro" / "out").exists()
