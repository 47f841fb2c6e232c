"""The benchmark's prompt lists, drawn by rule from the tuning / test split of the caption space.

`captions.split_of` fixes which captions are tuning and which are test captions; this module
turns a split into the three sections' lists without a hand-picked caption: the complexity list
takes the first ``per_count`` training captions (no held-out combination) of each free-factor
count in hash order, and the recovery and diversity lists take, from that list, alternate
captions with 2..4 free factors (every one has a free continuous factor to recover or spread,
and, below 5, a fixed one to keep), recovery first. Every tuning decision is made on ``tune``;
``test`` is what the benchmark reports.
"""

from __future__ import annotations

from jaxsteer.shapes.captions import free_count, split_captions

SECTION_COUNTS = (2, 3, 4)   # free-factor counts of the recovery and diversity prompts


def complexity_prompts(split: str, per_count: int) -> tuple[str, ...]:
    """The first ``per_count`` captions of each free-factor count 0..5 (fewer where the split
    has fewer: 5 free factors has one caption in all), by count then hash order."""
    groups = split_captions(split)
    return tuple(c for n in sorted(groups) for c in groups[n][:per_count])


def section_prompts(split: str, per_count: int, n: int) -> tuple[tuple[str, ...],
                                                                  tuple[str, ...]]:
    """(recovery, diversity): ``n`` each. The complexity list's captions with `SECTION_COUNTS`
    free factors are dealt round-robin over the counts (hash order within a count), and
    recovery and diversity take turns, so the lists are disjoint, both span the counts, and
    they reuse the complexity prompts' pools and gradients."""
    ranked = [[c for c in complexity_prompts(split, per_count) if free_count(c) == k]
              for k in SECTION_COUNTS]
    dealt = [r[j] for j in range(max(map(len, ranked), default=0)) for r in ranked
             if j < len(r)]
    return tuple(dealt[0::2][:n]), tuple(dealt[1::2][:n])
