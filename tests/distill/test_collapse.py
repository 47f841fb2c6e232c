"""The collapse read-out on rendered images, whose factors are known (a known-answer test)."""

import numpy as np
import pytest

from jaxsteer.distill.collapse import PROMPTS, choose, factor_spreads, spread_ratio
from jaxsteer.errors import UserError
from jaxsteer.shapes.captions import RANGES
from jaxsteer.shapes.render import render, sample_factors


def drawn(prompt: str, n: int, squeeze: float, seed: int = 0):
    """Images of ``prompt`` whose free x and y are squeezed to ``squeeze`` of their spread."""
    _, f = sample_factors(np.random.default_rng(seed), n, (prompt,))
    for k in ("x", "y"):
        centre = np.mean(RANGES[k])
        f[k] = (centre + squeeze * (f[k] - centre)).astype(np.float32)
    return render(f), f


def test_spreads_are_the_free_factors_and_their_ratio_is_the_squeeze():
    full, f_full = drawn("a red circle", 256, 1.0)
    half, f_half = drawn("a red circle", 256, 0.5, seed=1)
    a, b = factor_spreads("a red circle", full), factor_spreads("a red circle", half)
    assert set(a["spread"]) == {"x", "y", "size"} and a["fidelity"] == b["fidelity"] == 1.0
    assert a["usable"] == 1.0
    assert a["spread"]["x"] == pytest.approx(np.std(f_full["x"]), rel=0.05)   # probe ~ truth
    # x and y halved, size the same: the geometric mean of (0.5, 0.5, ~1).
    assert spread_ratio([b], [a]) == pytest.approx(0.5 ** (2 / 3), rel=0.1)
    assert spread_ratio([a, b], [a, a]) == pytest.approx(0.5 ** (1 / 3), rel=0.1)
    assert spread_ratio([{"spread": {"type": 0.0}}], [{"spread": {"type": 1.0}}]) is None


def test_the_chosen_student_is_the_most_collapsed_faithful_one():
    s = {"a": {"spread_ratio": 0.3, "fidelity": 0.8}, "b": {"spread_ratio": 0.5, "fidelity": 0.95},
         "c": {"spread_ratio": 0.7, "fidelity": 0.99}}
    assert choose(s, ("a", "b", "c")) == "b"
    assert choose(s, ("a",)) == "a"                  # none faithful enough: the most faithful
    assert choose(s, ("a", "c"), fidelity=0.995) == "c"


def test_the_scenes_probe_reads_the_scenes_worlds_spreads():
    """The same read-out on scenes renders (the world's probe, free factors and fidelity): the
    free size squeezed to half its spread, hue the same: a ratio of sqrt(0.5)."""
    from jaxsteer.scenes import prompts as scenes_prompts
    from jaxsteer.scenes.captions import RANGES as SCENES_RANGES
    from jaxsteer.scenes.render import render as render_scenes
    prompt = PROMPTS["scenes"][2]   # hue, size, background and dot free
    full = scenes_prompts.draw_factors(np.random.default_rng(0), [prompt] * 128)
    centre = np.mean(SCENES_RANGES["size"])
    half = {**full, "size": (centre + 0.5 * (full["size"] - centre)).astype(np.float32)}
    a = factor_spreads(prompt, render_scenes(full), world="scenes")
    b = factor_spreads(prompt, render_scenes(half), world="scenes")
    assert set(a["spread"]) == {"hue", "size", "background", "dot"}
    assert a["fidelity"] == b["fidelity"] == 1.0 and a["usable"] == 1.0
    assert a["spread"]["size"] == pytest.approx(np.std(full["size"]), rel=0.1)   # probe ~ truth
    assert spread_ratio([b], [a]) == pytest.approx(0.5 ** 0.5, rel=0.1)
    assert a["spread"]["background"] == pytest.approx(b["spread"]["background"])


def test_a_collapse_run_of_the_wrong_world_is_one_line(micro_scenes, tmp_path, capsys):
    from jaxsteer.distill.collapse import CollapseRun, main
    cfg = CollapseRun(students=(tmp_path,), teacher=str(micro_scenes))
    assert cfg.resolved_world() == "scenes"
    with pytest.raises(UserError, match="--world shapes: the teacher .* is a scenes model"):
        CollapseRun(students=(tmp_path,), teacher=str(micro_scenes), world="shapes"
                    ).resolved_world()
    with pytest.raises(UserError, match="bundled scenes model"):
        CollapseRun(students=(tmp_path,), teacher="scenes", world="shapes").resolved_world()
    for argv, says in ((["--students", str(tmp_path), "--teacher", str(tmp_path / "none")],
                        "not a bundled model nor a pipeline folder"),
                       (["--students", str(tmp_path), "--teacher", str(micro_scenes),
                         "--prompts", "a blob"], "scenes caption")):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert str(e.value).startswith("error: ") and says in str(e.value)
        assert "\n" not in str(e.value)
    with pytest.raises(SystemExit, match="is not a student folder"):
        main(["--students", str(tmp_path), "--teacher", str(micro_scenes)])
