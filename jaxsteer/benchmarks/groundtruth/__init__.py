"""`jaxsteer bench groundtruth`: the method checked against the known factors of a synthetic world.

``--groundtruth.world shapes`` (the default, described below) or ``scenes`` (eight factors,
length-matched complexity prompts, the bundled ``scenes`` model): `worlds` holds what differs, the
factors, grammar, prompt lists, probe, fidelity score and differentiated word; below, "the
probe", "captions" and "type" mean the world's (scenes adds texture, background and dot, which
are scored like type).

DESIGN.md section 4 asks for three numbers no paper gives. The prompts come from one half of the
caption space (`split`: tuning or test captions, by a hash rule fixed before tuning), the sizes
from a scale preset (`config.SCALES`). Every prompt gets a pool of images from the model under
its sampler preset (`models.bundled.PRESETS`), the pool's pair gradients (`collect.Collector`,
one denoiser call at the noisiest step, the authors' default, or at each of several timesteps in
turn), optionally unit-normalised, and their PCA and SAE directions. Then:

1. **Factor recovery.** The top-k directions of each method are steered over a range of
   strengths on several seeds (the unsteered image of each seed is the reference) and the probe
   reads the factors back. For each free continuous factor the score of a direction is
   ``|mean over seeds of Spearman(strength, change)|``, each seed's correlation taken over its
   usable samples (the reference included), where change is the factor minus its value on the
   seed's reference (hue: the signed difference wrapped to [-180, 180], so a red shape turning
   orange or magenta is a small change, not a jump of 360). Per seed, because a pooled
   correlation over every (seed, strength) sample cannot reach 1 even for a perfect direction
   (the strengths are tied across seeds: 0.98 for five levels); the signed mean, because a
   direction that moves a factor one way on some seeds and the other way on others moves it
   nowhere. A seed with fewer than 3 usable samples is skipped; one whose factor does not change
   at all counts 0. A factor's recovery is the best score over the k directions; the
   headline is the mean over (prompt, free continuous factor). Type is categorical, so it gets
   no rank correlation: its score is the share of usable steered samples whose type differs
   from the reference's, best over directions, reported beside the others and left out of the
   mean (it is not on the same scale). An image is usable when the probe finds a shape
   (`valid`) on a background no brighter than ``usable_background``: steering far enough turns
   images to noise, and the probe's readings of noise mean nothing.
2. **Complexity.** `complexity.estimate_all` on every prompt's gradients, and for each
   estimator the Spearman correlation over prompts between its value and the number of free
   factors, ``5 - len(captions.spec(prompt).fixed)``, with a bootstrap interval over prompts;
   the tuning variants of every estimator on the same gradients; and for one prompt per count
   (round-robin) more gradients and the convergence table (`convergence`).
3. **Diversity restoration.** The collapsed generator (`turbo`: the bundled model's distilled
   student when installed, `shapes-student` or `scenes-student`, else the same weights under
   the shared-noise `shapes-turbo` preset, a stand-in the run's log notes) samples
   ``diversity_n`` seeds without and with random offsets (`diversity.random_offsets`) along
   directions found on its own gradients (the authors' recipe for distilled models) or on the
   base model's. Spread of a free factor: standard
   deviation (x, y, size), circular standard deviation in degrees (hue), normalised entropy
   (type); fidelity: `evaluate.score`'s share of images whose every caption-fixed factor reads
   back inside its band. The spread ratio is the geometric mean of after / before over every
   (prompt, free continuous factor); type's entropy is reported but not in the ratio (it can be
   0 before). The same table shows the collapse itself: the base preset's spread next to turbo's,
   and the diversity distillation baseline (turbo+dd<k>: the base model's first k steps).

`summary.headline` reports one named method on all three: the estimator, the recovery's
directions and the diversity variant, each chosen on the tuning split.

Every compiled program (a renderer and a gradient kernel per preset, PCA, SAE step,
estimators) is built once, not once per prompt: the sampler settings, batch sizes, pool size,
gradient count and differentiated row count are the same for every prompt, and partial batches
are padded.
"""

from jaxsteer.benchmarks.groundtruth.config import (
    CONTINUOUS as CONTINUOUS,
)
from jaxsteer.benchmarks.groundtruth.config import (
    HEADLINE as HEADLINE,
)
from jaxsteer.benchmarks.groundtruth.config import (
    SCALES as SCALES,
)
from jaxsteer.benchmarks.groundtruth.config import (
    TARGETS as TARGETS,
)
from jaxsteer.benchmarks.groundtruth.config import (
    GroundTruthBench as GroundTruthBench,
)
from jaxsteer.benchmarks.groundtruth.config import (
    GroundTruthConfig as GroundTruthConfig,
)
from jaxsteer.benchmarks.groundtruth.sections import run as run
from jaxsteer.benchmarks.groundtruth.sections import run_bench as run_bench
from jaxsteer.benchmarks.groundtruth.split import complexity_prompts as complexity_prompts
from jaxsteer.benchmarks.groundtruth.split import section_prompts as section_prompts
from jaxsteer.benchmarks.groundtruth.stats import (
    best_over_directions as best_over_directions,
)
from jaxsteer.benchmarks.groundtruth.stats import factor_change as factor_change
from jaxsteer.benchmarks.groundtruth.stats import format_tables as format_tables
from jaxsteer.benchmarks.groundtruth.stats import recovery_scores as recovery_scores
from jaxsteer.benchmarks.groundtruth.stats import spearman as spearman
from jaxsteer.benchmarks.groundtruth.stats import spread as spread
