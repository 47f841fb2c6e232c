"""`jaxsteer.models.base`: beta schedules, token rows of words, the bundle's equality."""

import numpy as np
import pytest

from jaxsteer.errors import UserError
from jaxsteer.models.base import (
    ModelBundle,
    NoiseSchedule,
    Tokens,
    alphas_cumprod_from_config,
    schedule_from_config,
)


def test_linear_and_scaled_linear_betas_by_hand():
    a = alphas_cumprod_from_config({"num_train_timesteps": 3, "beta_schedule": "linear",
                                    "beta_start": 0.1, "beta_end": 0.3})
    np.testing.assert_allclose(a, [0.9, 0.9 * 0.8, 0.9 * 0.8 * 0.7], rtol=1e-12)
    # scaled_linear: betas linear in sqrt(beta), i.e. 0.01, (0.1 + 0.3)^2 / 4 = 0.04, 0.09.
    a = alphas_cumprod_from_config({"num_train_timesteps": 3, "beta_schedule": "scaled_linear",
                                    "beta_start": 0.01, "beta_end": 0.09})
    np.testing.assert_allclose(a, np.cumprod([0.99, 0.96, 0.91]), rtol=1e-12)


def test_trained_betas_win_over_the_named_schedule():
    a = alphas_cumprod_from_config({"beta_schedule": "nonsense", "trained_betas": [0.5, 0.5]})
    np.testing.assert_allclose(a, [0.5, 0.25])


def test_cosine_schedule_follows_its_alpha_bar():
    n = 1000
    a = alphas_cumprod_from_config({"num_train_timesteps": n,
                                    "beta_schedule": "squaredcos_cap_v2"})
    f = lambda t: np.cos((t / n + 0.008) / 1.008 * np.pi / 2) ** 2  # noqa: E731
    # Away from the capped end, alpha_bar(t) = f(t + 1) / f(0), the product telescoping.
    t = np.arange(0, 900)
    np.testing.assert_allclose(a[t], f(t + 1) / f(0), rtol=1e-9)
    assert np.all(np.diff(a) < 0) and a[-1] > 0


def test_defaults_are_sds_and_an_unknown_schedule_is_refused():
    a = alphas_cumprod_from_config({})
    assert len(a) == 1000
    np.testing.assert_allclose(a[0], 1 - 0.00085, rtol=1e-12)
    np.testing.assert_allclose(1 - a[-1] / a[-2], 0.012, rtol=1e-9)
    with pytest.raises(UserError, match="unsupported beta_schedule 'karras'"):
        alphas_cumprod_from_config({"beta_schedule": "karras"})


def test_schedule_from_config_reads_every_field_with_defaults():
    s = schedule_from_config({"num_train_timesteps": 4, "beta_schedule": "linear",
                              "beta_start": 0.1, "beta_end": 0.1,
                              "prediction_type": "v_prediction", "set_alpha_to_one": False,
                              "steps_offset": 1, "timestep_spacing": "trailing"})
    assert isinstance(s, NoiseSchedule) and isinstance(s.alphas_cumprod, tuple)
    np.testing.assert_allclose(s.alphas_cumprod, 0.9 ** np.arange(1, 5), rtol=1e-12)
    assert s.num_train_timesteps == 4 and s.prediction_type == "v_prediction"
    assert (s.set_alpha_to_one, s.steps_offset, s.timestep_spacing) == (False, 1, "trailing")
    d = schedule_from_config({})
    assert (d.prediction_type, d.set_alpha_to_one, d.steps_offset, d.timestep_spacing) == (
        "epsilon", True, 0, "leading")
    hash(d)  # a static argument of jitted functions


TOKENS = Tokens(ids_et=np.zeros((1, 12), np.int32), prompt="A red Dog and a red cat",
                words=(("a", (1,)), ("red", (2, 3)), ("dog", (4,)), ("and", (5,)),
                       ("a", (6,)), ("red", (7, 8)), ("cat", (9, 10))))


def test_rows_of_words_and_phrases():
    assert TOKENS.rows("dog") == (4,)
    assert TOKENS.rows("RED") == (2, 3, 7, 8)                  # every occurrence, any case
    assert TOKENS.rows("red cat") == (7, 8, 9, 10)             # a phrase, in order
    assert TOKENS.rows("  a   red ") == (1, 2, 3, 6, 7, 8)      # spaces collapse; both places
    with pytest.raises(UserError, match="'cat red' is not a word of the prompt"):
        TOKENS.rows("cat red")                                 # the words, but not in order
    with pytest.raises(UserError, match="its words are: a, red, dog, and, a, red, cat"):
        TOKENS.rows("do")                                      # whole words only
    with pytest.raises(UserError, match="--token is empty"):
        TOKENS.rows("   ")


def test_a_bundle_compares_by_model_and_params_not_by_info():
    a = ModelBundle("model", {"w": 1}, {"model": "x"})
    b = ModelBundle("model", {"w": 1}, {"model": "y", "folder": "/tmp"})
    assert a == b and ModelBundle("model", {"w": 2}) != a
    assert ModelBundle("m", None).info == {} and ModelBundle("m", None).info is not a.info
