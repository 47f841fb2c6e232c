"""`jaxsteer.diversity_distillation`: a base of another family or size is refused before anything
is encoded or compiled. (The images themselves are checked by tests/test_steer.py, through
``jaxsteer diversify --baseline``.)"""

from types import SimpleNamespace

import pytest

from jaxsteer.diversity_distillation import distilled_diversity
from jaxsteer.errors import UserError
from jaxsteer.models.architectures import SCHEDULES
from jaxsteer.models.base import schedule_from_config


def _bundle(latent_shape, schedule):
    # Only the two fields the check reads: anything further would fail loudly.
    return SimpleNamespace(model=SimpleNamespace(latent_shape=latent_shape, schedule=schedule))


@pytest.mark.parametrize("base_shape,base_spacing,what", [
    ((4, 16, 16), "leading", "latent shape"),
    ((4, 8, 8), "trailing", "noise schedule"),
])
def test_a_base_of_another_family_or_size_is_refused(base_shape, base_spacing, what):
    student = _bundle((4, 8, 8), schedule_from_config(SCHEDULES["leading"]))
    base = _bundle(base_shape, schedule_from_config(SCHEDULES[base_spacing]))
    with pytest.raises(UserError, match=f"base model's {what} differs from the distilled"):
        distilled_diversity(student, None, base, 3.0, "a dog", None, 1, None, 4)
