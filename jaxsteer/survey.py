"""Batch surveys (DESIGN.md sections 1.7 and 3): prompts -> gradients -> complexity, one record
each.

Each host takes ``prompts[process_index::process_count]``, builds a mesh over its local devices
(hosts never run collectives), and appends one JSON line per prompt to its own
``records-PPP.jsonl``. A record is appended and fsynced only when complete; on restart the done
line numbers are read back (a torn last line from a kill is dropped), so a killed survey restarted
ends with exactly one record per prompt. Bad lines (empty, too long, not UTF-8, no such word) go
to ``errors-PPP.jsonl`` with their line numbers and never stop the run.

Prompt file: one prompt per line, optionally ``prompt<TAB>word``; without a word, the prompt's
last word is the concept differentiated. Lines starting with '#' are comments.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxsteer import progress, records, runlock, sharding
from jaxsteer.collect import Collector, check_timestep, draw_pairs, every_row, pad_rows
from jaxsteer.complexity import NORMALIZATIONS, ComplexityConfig, estimate_all, normalize_rows
from jaxsteer.config import check_sections, flatten, opt, to_dict
from jaxsteer.errors import UserError
from jaxsteer.models import ModelConfig
from jaxsteer.pages.survey import SurveyResult  # shows the survey page in a notebook
from jaxsteer.recorded import recorded
from jaxsteer.records import append_line, read_records
from jaxsteer.sample import make_generator
from jaxsteer.sampling import SamplerConfig
from jaxsteer.store import versions
from jaxsteer.survey_summary import merge

MAX_LINE_CHARS = 1000
# Estimates of complexity.estimate_all that carry a bootstrap interval (--ci-estimator).
INTERVAL_ESTIMATES = ("subspace_size", "pca_90", "pca_95", "participation_ratio",
                      "parallel_analysis", "mle", "twonn", "vaease")


@dataclasses.dataclass(frozen=True)
class SurveyRun:
    sampler: SamplerConfig = opt(default_factory=SamplerConfig, help="sampler settings")
    model: ModelConfig = opt(default_factory=ModelConfig, help="which model, and how to load it")
    prompts_file: Path = opt(Path("prompts.txt"), "one prompt per line (optionally "
                             "'prompt<TAB>word')", positional=True)
    pairs: int = opt(256, "gradients per prompt (with --ci-width: the first round's)")
    ci_width: float = opt(0.0, "adaptive: keep doubling a prompt's gradients until the "
                          "--ci-estimator's bootstrap interval is at most this wide and its "
                          "value moved at most this much since the last round (or --max-pairs "
                          "is reached); 0 = a fixed --pairs per prompt")
    max_pairs: int = opt(4096, "adaptive: most gradients per prompt")
    ci_estimator: str = opt("subspace_size", "adaptive: the estimate whose interval is watched "
                            "(a key of complexity.estimate_all with an interval; "
                            "parallel_analysis is the ground-truth benchmark's headline)")
    pool: int = opt(0, "pool size per prompt (kept in memory; pairs drawn from it, one "
                    "denoiser call each); 0 = pool-free pairs of fresh generations")
    timestep: int | None = opt(None, "training timestep a pool image is noised to (collect's "
                               "--timestep); default: the first (noisiest) step. On both "
                               "ground-truth worlds' test splits 500 with --rows all "
                               "--normalize l2 ranked complexity, the default in reverse "
                               "(README, ground truth)")
    rows: str = opt("word", "token rows differentiated: word (the prompt's word) | all (every "
                    "row of the text embedding)", choices=("word", "all"))
    normalize: str = opt("none", "gradients before the estimates: none | l2 (unit norm each)",
                         choices=NORMALIZATIONS)
    batch: int = opt(32, "pairs per compiled call")
    seed: int = opt(0, "seed; prompt i uses fold_in(key(seed), line number)")
    devices: int = opt(-1, "local devices to use; -1 = all")
    keep_gradients: bool = opt(False, "also write each prompt's gradients to OUT/grads/")
    spectrum_head: int = opt(16, "explained-variance ratios kept in each record")
    complexity: ComplexityConfig = opt(default_factory=ComplexityConfig, help="estimators")
    out: Path = opt(Path("runs/survey"), "output folder (a rerun resumes)")

    def __post_init__(self):
        check_sections(self)
        if self.pairs < 4:
            raise UserError(f"--pairs must be >= 4 for the estimators, got {self.pairs}")
        if self.pool == 1 or self.pool < 0:
            raise UserError(f"--pool must be 0 (pool-free) or >= 2, got {self.pool}")
        check_timestep(self.timestep, self.pool > 0)   # here: before a model loads
        if self.rows not in ("word", "all") or self.normalize not in NORMALIZATIONS:
            raise UserError(f"--rows must be word | all and --normalize one of "
                            f"{' | '.join(NORMALIZATIONS)}, got {self.rows!r}, {self.normalize!r}")
        if self.ci_width < 0:
            raise UserError(f"--ci-width must be >= 0 (0 = fixed --pairs), got {self.ci_width}")
        if self.ci_width and self.max_pairs < 2 * self.pairs:
            raise UserError(f"--max-pairs ({self.max_pairs}) must be >= 2 x --pairs "
                            f"({self.pairs}): the adaptive stop compares two rounds")
        if self.ci_width and self.ci_estimator not in INTERVAL_ESTIMATES:
            raise UserError(f"--ci-estimator must be one of {', '.join(INTERVAL_ESTIMATES)}, "
                            f"got {self.ci_estimator!r}")
        if self.ci_width and self.ci_estimator == "vaease" and not self.complexity.vaease.enabled:
            raise UserError("--ci-estimator vaease needs --complexity.vaease.enabled")
        boots = ("n_boot_pa" if self.ci_estimator == "parallel_analysis" else "n_boot_spectral")
        if (self.ci_width and self.ci_estimator not in ("mle", "twonn", "vaease")
                and getattr(self.complexity, boots) < 2):
            raise UserError(f"--ci-estimator {self.ci_estimator} needs "
                            f"--complexity.{boots.replace('_', '-')} >= 2 (its interval)")

    def pair_counts(self) -> tuple[int, ...]:
        """Gradients per prompt after each round: --pairs, doubled up to --max-pairs (one round
        without --ci-width)."""
        if not self.ci_width:
            return (self.pairs,)
        counts = [self.pairs]
        while counts[-1] < self.max_pairs:
            counts.append(min(2 * counts[-1], self.max_pairs))
        return tuple(counts)


def read_prompts(path: Path) -> tuple[list[tuple[int, str, str | None]], list[dict]]:
    """(line number, prompt, word or None) for good lines, and error entries for bad ones."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise UserError(f"prompts file not found: {path}") from None
    good, bad = [], []
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":  # the file's final newline ends a line, it starts none
        lines = lines[:-1]
    for number, line in enumerate(lines, start=1):
        try:
            text = line.decode("utf-8").rstrip("\r")
        except UnicodeDecodeError as e:
            bad.append({"line": number, "error": f"not UTF-8 ({e.reason} at byte {e.start})"})
            continue
        if text.startswith("#"):
            continue
        prompt, _, word = text.partition("\t")
        if not prompt.strip():
            bad.append({"line": number, "error": "empty prompt"})
            continue
        if len(prompt) > MAX_LINE_CHARS:
            bad.append({"line": number, "error": f"longer than {MAX_LINE_CHARS} characters"})
            continue
        good.append((number, prompt.strip(), word.strip() or None))
    return good, bad


def _repair(path: Path) -> None:
    """Rewrites a part file without a torn last line, so appends start on a fresh line."""
    if path.exists() and path.read_bytes()[-1:] not in (b"", b"\n"):
        kept = read_records(path)
        records.atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in kept))


def target_word(prompt: str, word: str | None) -> str:
    """The word differentiated: the one given, else the prompt's last word without punctuation."""
    return word or prompt.split()[-1].strip(".,!?;:")


def row_bucket(model, prompts: list[tuple[int, str, str | None]]) -> int:
    """The token-row count every prompt of a survey is padded to: the power of two at or above
    the longest word's row count over ``prompts``. With one bucket per survey, words of any
    token count share one compiled kernel. Prompts that do not tokenize are skipped here (the
    survey logs them as errors when it reaches them)."""

    longest = 1
    for _, prompt, word in prompts:
        try:
            longest = max(longest, len(model.tokenize(prompt).rows(target_word(prompt, word))))
        except UserError:
            continue
    return len(pad_rows(tuple(range(longest))))


class Worker:
    """Collects one prompt's gradients; its compiled programs are built once per survey.

    ``row_bucket``: token rows every prompt is padded to (`row_bucket`); None pads each prompt
    to its own power of two (one program per bucket).
    """

    def __init__(self, cfg: SurveyRun, bundle, mesh, row_bucket: int | None = None):
        self.cfg, self.bundle, self.mesh, self.row_bucket = cfg, bundle, mesh, row_bucket
        sampler = cfg.sampler
        self.collector = Collector(bundle, sampler, mesh, pool=cfg.pool > 0,
                                   timestep=cfg.timestep)
        self.generator = make_generator(bundle.model, sampler, mesh) if cfg.pool else None

    def prepare(self, prompt: str, word: str):
        """Tokenizes and encodes on the host: `PromptInputs` (UserError for a bad word); with
        ``--rows all`` every row of the embedding instead of the word's."""
        inputs = self.collector.prepare(prompt, word, self.row_bucket)
        return every_row(inputs, self.bundle.model.max_tokens) if self.cfg.rows == "all" \
            else inputs

    def pool(self, inputs, key: jax.Array) -> np.ndarray | None:
        """The prompt's pool of ``--pool`` generated latents (None when pool-free)."""
        if self.generator is None:
            return None
        cfg = self.cfg
        idx = sharding.pad_batch(np.arange(cfg.pool), sharding.data_size(self.mesh))
        keys = jax.vmap(jax.random.fold_in, (None, 0))(jax.random.fold_in(key, 1),
                                                      jnp.asarray(idx))
        return np.asarray(self.generator(self.collector.params, inputs.cond, inputs.uncond,
                                         sharding.put_batch(self.mesh, keys)))[: cfg.pool]

    def gradients(self, inputs, key: jax.Array, pool: np.ndarray | None = None,
                  start: int = 0, stop: int | None = None) -> np.ndarray:
        """``[stop - start, num_rows * d]`` gradients of pairs ``start..stop`` of one prompt (its
        `PromptInputs`; default: all ``--pairs``). Pair j depends only on the key and j (and
        the pool), so the gradients of a longer run extend those of a shorter one."""
        cfg = self.cfg
        stop = cfg.pairs if stop is None else stop
        if self.generator is not None and pool is None:
            pool = self.pool(inputs, key)
        pairs = None
        if pool is not None:  # prefix-stable: pair j is the same however many are drawn
            pairs = draw_pairs(int(jax.random.randint(key, (), 0, 2**30)), stop, cfg.pool)
        grads = self.collector.gradients(inputs, np.arange(start, stop), key, pool, pairs,
                                         batch=cfg.batch)
        return grads.reshape(stop - start, -1)


def converged(rounds: list[dict], width: float) -> bool:
    """The adaptive stop: the last round's interval is at most ``width`` wide and its value
    within ``width`` of the round before. The interval alone is not enough: it resamples the
    gradients a round has, so it cannot see an estimate that still grows with N (at timestep
    500 on the shapes model the subspace size is N - 1 at 32 gradients, with a 7-wide interval,
    and ~60 at 256)."""
    if len(rounds) < 2 or rounds[-1]["ci_width"] > width:
        return False
    return abs(rounds[-1]["value"] - rounds[-2]["value"]) <= width


def interval_width(estimates: dict, name: str) -> float:
    """Width of one estimate's interval together with its value (inf where it has none): an
    interval that misses its own estimate (`complexity.estimate._entry`) is stretched to it,
    so a biased narrow interval cannot stop a prompt early."""
    entry = estimates.get(name) or {}
    if entry.get("ci") is None:
        return float("inf")
    lo, hi = entry["ci"]
    return float(max(hi, entry["value"]) - min(lo, entry["value"]))


def measure_prompt(worker: Worker, inputs, key: jax.Array,
                   estimate_key: jax.Array) -> tuple[dict, np.ndarray]:
    """One prompt's work once it is tokenized: gradients, every estimate, and the record's body.

    `run` and the survey benchmark (`jaxsteer.benchmarks.survey_throughput`) both call this, so
    the benchmark times what a survey does.

    Returns:
      (body, grads): body holds ``token_rows``, ``pairs``, ``estimates``, ``spectrum_head`` and
      ``seconds`` (collect, estimate); grads is ``[pairs, num_rows * d]``.
    """
    cfg = worker.cfg
    t0 = time.perf_counter()
    pool = worker.pool(inputs, key)
    seconds = {"collect": time.perf_counter() - t0, "estimate": 0.0}   # the pool is collect's
    chunks, rounds, done = [], [], 0
    for n in cfg.pair_counts():
        t0 = time.perf_counter()
        chunks.append(worker.gradients(inputs, key, pool, done, n))
        grads = np.concatenate(chunks) if len(chunks) > 1 else chunks[0]
        t1 = time.perf_counter()
        # The same key every round: the last round's estimates are what a fixed-N run of that
        # many gradients would record.
        estimates = estimate_all(normalize_rows(jnp.asarray(grads), cfg.normalize),
                                 estimate_key, cfg.complexity, ratio_head=cfg.spectrum_head)
        seconds["collect"] += t1 - t0
        seconds["estimate"] += time.perf_counter() - t1
        done = n
        if not cfg.ci_width:
            break
        width = interval_width(estimates, cfg.ci_estimator)
        rounds.append({"pairs": n, "value": estimates[cfg.ci_estimator]["value"],
                       "ci_width": width})
        if converged(rounds, cfg.ci_width):
            break
    head = estimates.pop("explained_variance_ratio", [])
    body = {"token_rows": [int(r) for r in inputs.rows_r[: inputs.num_rows]], "pairs": done,
            "estimates": estimates, "spectrum_head": [round(float(v), 6) for v in head],
            "seconds": seconds}
    if cfg.ci_width:
        body["adaptive"] = {"estimator": cfg.ci_estimator, "target_width": cfg.ci_width,
                            "reached": converged(rounds, cfg.ci_width), "rounds": rounds}
    return body, grads


def run(cfg: SurveyRun) -> dict:
    records.check_out(cfg.out)
    prompts, bad = read_prompts(cfg.prompts_file)
    proc = jax.process_index()
    bundle = cfg.model.load_model()
    # One writer per part file: each host locks its own, so hosts of one survey run side by side
    # and a second survey started on the same folder is refused.
    with runlock.hold(cfg.out, f"{runlock.PREFIX}-survey-{proc:03d}.lock"):
        return _survey(cfg, bundle, prompts, bad)


def _survey(cfg: SurveyRun, bundle, prompts: list, bad: list[dict]) -> dict:
    """The survey proper; the caller holds this process's lock on ``cfg.out``."""
    proc, nproc = jax.process_index(), jax.process_count()
    mine = sharding.host_split(prompts, proc, nproc)
    header_path = cfg.out / "survey.json"
    header = {"config": to_dict(cfg), "model_info": bundle.info, "versions": versions(),
              "processes": nproc}
    if header_path.exists():
        old = records.read_json(header_path)
        keep = ("model.name", "pairs", "pool", "sampler.steps", "sampler.guidance", "seed",
                "sampler.scheduler", "ci_width", "max_pairs", "ci_estimator", "timestep", "rows",
                "normalize")
        # surveys written before --timestep, --rows and --normalize existed ran their defaults
        was = {"timestep": None, "rows": "word", "normalize": "none",
               **flatten(recorded(old["config"]))}
        now = flatten(header["config"])
        diff = [k for k in keep if was.get(k) != now.get(k)]
        if diff:
            raise UserError(f"{cfg.out} holds a survey with other settings ({', '.join(diff)}): "
                            "choose another --out")
    elif proc == 0:
        records.write_json(header_path, header)
    part = cfg.out / f"records-{proc:03d}.jsonl"
    errors = cfg.out / f"errors-{proc:03d}.jsonl"
    _repair(part)
    done = {r["line"] for r in read_records(part)}
    logged = {e["line"] for e in read_records(errors)}
    for e in bad if proc == 0 else []:
        if e["line"] not in logged:
            append_line(errors, e)
            logged.add(e["line"])
    todo = [p for p in mine if p[0] not in done and p[0] not in logged]
    # The bucket comes from every prompt of the file, not this host's unfinished ones: every host
    # and every restart then run the same program (and hit the persistent compile cache).
    worker = Worker(cfg, bundle, sharding.local_mesh(cfg.devices),
                    row_bucket(bundle.model, prompts))
    # Named streams, then the line number folded in: a prompt's numbers do not depend on which
    # host ran it or on what ran before it.
    collect_key, estimate_key = jax.random.split(jax.random.key(cfg.seed))
    for line, prompt, word in progress.bar(todo, desc=f"survey (process {proc})", unit="prompt"):
        word = target_word(prompt, word)
        t0 = time.perf_counter()
        try:
            inputs = worker.prepare(prompt, word)
            t1 = time.perf_counter()
            body, grads = measure_prompt(worker, inputs, jax.random.fold_in(collect_key, line),
                                         jax.random.fold_in(estimate_key, line))
        except UserError as e:
            append_line(errors, {"line": line, "prompt": prompt, "error": str(e)})
            continue
        body["seconds"]["prepare"] = t1 - t0
        if cfg.keep_gradients:
            records.save_arrays(cfg.out / "grads" / f"{line:07d}.safetensors", {"grads": grads})
        append_line(part, {"line": line, "prompt": prompt, "token": word, **body,
                           "model": cfg.model.name, "versions": header["versions"]})
    if nproc > 1:
        from jax.experimental import multihost_utils
        multihost_utils.sync_global_devices("jaxsteer-survey-done")
    summary = merge(cfg.out) if proc == 0 else {}
    # Counted from the file, so the number is what a reader of errors-PPP.jsonl finds (process
    # 0's merged summary counts every process's file).
    logged = {e["line"] for e in read_records(errors)}
    return SurveyResult({"out": str(cfg.out), "prompts": len(prompts), "this_process": len(mine),
                         "done_now": len(todo), "errors": len(logged), "errors_file": str(errors),
                         **summary})
