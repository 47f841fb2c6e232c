"""`jaxsteer bench WHAT`: picks one benchmark of `jaxsteer.benchmarks`, each with its own config.

Each benchmark is a module with a typed config dataclass and ``run(cfg)``; this module only maps
the name to them, importing the chosen one when asked (so ``jaxsteer bench --help`` stays fast).
"""

from __future__ import annotations

from collections.abc import Callable

from jaxsteer.errors import UserError


# Lazy on purpose: each loader imports its benchmark's module only when that one runs.
def _throughput():
    from jaxsteer.benchmarks import throughput
    return throughput.ThroughputBench, throughput.run


def _profile():
    from jaxsteer.benchmarks import profile
    return profile.ProfileBench, profile.run


def _survey():
    from jaxsteer.benchmarks import survey_throughput
    return survey_throughput.SurveyBench, survey_throughput.run


def _pca():
    from jaxsteer.benchmarks import decomposition
    return decomposition.PCABench, decomposition.run_pca


def _sae():
    from jaxsteer.benchmarks import decomposition
    return decomposition.SAEBench, decomposition.run_sae


def _sample():
    from jaxsteer.benchmarks import sampling
    return sampling.SampleBench, sampling.run


def _groundtruth():
    from jaxsteer.benchmarks import groundtruth
    return groundtruth.GroundTruthBench, groundtruth.run_bench


# name -> (one-line description, loader of (config class, run function)), as cli.COMMANDS.
BENCHMARKS: dict[str, tuple[str, Callable[[], tuple[type, Callable]]]] = {
    "throughput": ("gradients per second, memory, compile time, FLOPs and MFU of the kernel",
                   _throughput),
    "profile": ("where the kernel's device time goes (profiler trace by kernel category)",
                _profile),
    "survey": ("prompts per hour of a survey, projected to TPU slices", _survey),
    "sample": ("images per second of `jaxsteer sample` (and of a pool on disk) against PyTorch",
               _sample),
    "pca": ("PCA compile and steady-state time on planted data", _pca),
    "sae": ("SAE step and training time on planted data", _sae),
    "groundtruth": ("the method against the known factors of the shapes or scenes world",
                    _groundtruth),
}
DEFAULT = "throughput"


def usage(prog: str = "jaxsteer bench") -> str:
    lines = [f"usage: {prog} WHAT [--config FILE.yaml] [flags]", "", "benchmarks:"]
    lines += [f"  {name:<12} {text}" for name, (text, _) in BENCHMARKS.items()]
    lines += ["", f"`{prog} WHAT --help` lists a benchmark's flags; WHAT defaults to {DEFAULT}."]
    return "\n".join(lines)


def select(argv: list[str], prog: str = "jaxsteer bench"
           ) -> tuple[type, Callable, list[str], str]:
    """(config class, run function, the remaining argv, prog) of ``WHAT [flags]``.

    ``--help`` alone prints the list of benchmarks and exits; flags without a WHAT go to the
    default benchmark.
    """
    if argv and argv[0] in ("-h", "--help"):
        print(usage(prog))
        raise SystemExit(0)
    what, rest = (argv[0], argv[1:]) if argv and not argv[0].startswith("-") else (DEFAULT, argv)
    if what not in BENCHMARKS:
        raise UserError(f"unknown benchmark {what!r}: use one of {', '.join(BENCHMARKS)}")
    cls, run = BENCHMARKS[what][1]()
    return cls, run, rest, f"{prog} {what}"
