"""Training draws obey their captions and avoid held-out combinations; the complexity prompts
hold token length fixed across free-factor counts."""

import numpy as np
from scipy.stats import spearmanr

from jaxsteer.scenes.captions import (
    CATEGORICAL,
    FACTORS,
    free_count,
    is_heldout,
    obeys,
    spec,
    split_of,
)
from jaxsteer.scenes.prompts import LENGTHS, complexity_prompts, sample_captions, token_length


def test_training_draw_obeys_captions():
    captions, f = sample_captions(np.random.default_rng(0), 500, p_uncond=0.1)
    assert not any(is_heldout(c) for c in captions)
    assert 0.05 < np.mean([c == "" for c in captions]) < 0.15
    for i, c in enumerate(captions[:200]):
        s = spec(c)
        for k in s.fixed:
            assert obeys(s, k, f[k][i:i + 1])[0], (c, k)
    counts = np.bincount([free_count(c) for c in captions], minlength=9)
    assert (counts[1:] > 0).all()   # every free count is trained on (0 is rare: all 8 words)
    for k in CATEGORICAL:
        assert set(np.unique(f[k])) == set(range(f[k].max() + 1))


def _key(caption: str) -> tuple:
    s = spec(caption)
    return tuple(sorted(s.levels.items())), tuple(sorted(s.bands.items()))


def test_complexity_prompts_hold_length_fixed():
    """Length and free count are uncorrelated (the shapes grammar's test split: -0.93)."""
    keys = {}
    for split in ("tune", "test"):
        groups = complexity_prompts(split, 6)
        # all eight factors free is one spec, which is test's by rule (tune: 0..7)
        assert sorted(groups) == list(range(len(FACTORS) + (split == "test")))
        n_c, len_c = [], []
        for n, prompts in groups.items():
            assert len(prompts) == 6 and len(set(prompts)) == 6
            assert all(free_count(p) == n and split_of(p) == split and not is_heldout(p)
                       for p in prompts)
            assert len({_key(p) for p in prompts}) == (1 if n == len(FACTORS) else 6)
            lengths = [token_length(p) for p in prompts]
            assert lengths == [2 + LENGTHS[j % len(LENGTHS)] for j in range(6)]
            n_c += [n] * len(prompts)
            len_c += lengths
        rho = spearmanr(len_c, n_c).statistic
        assert abs(rho) <= 0.3, rho
        keys[split] = {_key(p) for ps in groups.values() for p in ps}
    assert not keys["tune"] & keys["test"]   # no condition is tuned on and then tested
    assert complexity_prompts("test", 2)[3] == complexity_prompts("test", 6)[3][:2]  # a rule
