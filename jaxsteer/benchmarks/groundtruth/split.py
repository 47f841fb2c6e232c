"""The benchmark's prompt lists, drawn by rule from the tuning / test split of the caption space.

The world's captions module fixes which captions are tuning and which are test captions
(`shapes.captions.split_of`, `scenes.captions.split_of`); this module turns a split into the
three sections' lists without a hand-picked caption: the complexity list takes the world's
first ``per_count`` captions of each free-factor count (`worlds.World.groups`: shapes, the
training captions in hash order; scenes, the length-matched `scenes.prompts.complexity_prompts`),
and the recovery and diversity lists take, from that list, alternate captions of the world's
`section_counts` (shapes 2..4, scenes 3..5) that leave a continuous factor free (something to
recover or spread) and fix another (something to keep), recovery first. Every tuning decision is
made on ``tune``; ``test`` is what the benchmark reports.
"""

from __future__ import annotations

from jaxsteer.benchmarks.groundtruth import worlds

SECTION_COUNTS = worlds.WORLDS["shapes"].section_counts   # the shapes world's (2, 3, 4)


def complexity_prompts(split: str, per_count: int, world: str = "shapes") -> tuple[str, ...]:
    """The first ``per_count`` captions of each free-factor count (fewer where the split has
    fewer: in shapes, 5 free factors has one caption in all), by count then the world's order."""
    groups = worlds.get(world).groups(split, per_count)
    return tuple(c for n in sorted(groups) for c in groups[n][:per_count])


def _steerable(w: worlds.World, prompt: str) -> bool:
    """Whether a section can use the prompt: a free continuous factor and a fixed factor."""
    free = w.free(prompt)
    return len(free) < len(w.factors) and any(f not in worlds.LEVELS for f in free)


def section_prompts(split: str, per_count: int, n: int, world: str = "shapes"
                    ) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(recovery, diversity): ``n`` each. The complexity list's `_steerable` captions of the
    world's section counts are dealt round-robin over the counts (list order within a count),
    and recovery and diversity take turns, so the lists are disjoint, both span the counts, and
    they reuse the complexity prompts' pools and gradients."""
    w = worlds.get(world)
    prompts = complexity_prompts(split, per_count, world)
    ranked = [[c for c in prompts if w.free_count(c) == k and _steerable(w, c)]
              for k in w.section_counts]
    dealt = [r[j] for j in range(max(map(len, ranked), default=0)) for r in ranked
             if j < len(r)]
    return tuple(dealt[0::2][:n]), tuple(dealt[1::2][:n])
