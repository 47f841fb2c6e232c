"""`jaxsteer bench profile`: where the device time of a benchmark goes, a profiler trace
summarized by kernel category.

`run` traces the collector's kernel of each run (`jaxsteer.benchmarks.common`). As a library::

    from jaxsteer.benchmarks.profile import trace_calls, summarize, format_profile

    path = trace_calls(step, (params, batch), Path("prof/sd-turbo-1"), calls=3)
    summary = summarize(path, calls=3)
    print(format_profile(summary, "sd-turbo-1, batch 32"))

`trace_calls` warms ``fn`` up once (compile, autotuning) outside the trace, then runs it ``calls``
times inside `jax.profiler.trace` and returns the ``perfetto_trace.json.gz`` that jax writes
under ``out_dir/plugins/profile/<run>/`` (the same directory also holds ``*.xplane.pb`` for
TensorBoard/XProf and can be opened in https://ui.perfetto.dev). Use a fresh ``out_dir`` per
trace: run directories are named by the second they were written in.

`summarize` reads that Chrome-trace JSON with the standard library only. The device's kernels
are the complete (``ph == "X"``) events of the processes named ``/device:GPU:N`` (one thread a
CUDA stream, ``Stream #N(...)``) or ``/device:TPU:N`` (its ``XLA Ops`` line); the ``/host:CPU``
process (Python frames, the XLA runtime, TraceMe annotations) is left out. A CPU backend has no
device process: then the XLA ops the host's threads ran (events with an ``hlo_op`` argument) are
used instead, best effort, and the summary says ``"device_events": False``.

Kernel time is grouped by category, by regular expression on the kernel name (case-insensitive,
first match wins, in this order):

- ``attention``: fused attention kernels (cuDNN flash / SDPA, FMHA);
- ``conv``: convolutions (cuDNN fprop / dgrad / wgrad, implicit GEMM, Winograd);
- ``matmul``: GEMMs (cuBLAS / cuBLASLt ``xmma`` / ``nvjet``, CUTLASS, Triton GEMM fusions);
- ``norm/reduce``: reductions, so group/layer norms, softmax statistics, means;
- ``transpose/copy``: data movement (transposes, copies, memcpy / memset, pads, concats, slices);
- ``elementwise fusion``: XLA's other fusions (``loop_*``, Triton), i.e. elementwise epilogues;
- ``other``: the rest.

Times in the summary are per call (the trace's totals divided by ``calls``):

- ``wall_ms_per_call``: first device event's start to last device event's end, over ``calls``;
  approximate: it includes the gaps between calls but not host work before the first kernel;
- ``busy_ms_per_call``: the union of the device events' intervals (time at least one kernel
  runs; with several devices in the trace, the union over all of them);
- ``idle_share``: ``1 - busy / wall``, the device waiting on the host (launches, syncs);
- ``kernel_ms_per_call``: the sum of all kernels' durations. Kernels on different streams can
  overlap, so it can exceed ``busy_ms_per_call``; category and kernel shares are of this sum.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import re
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax

from jaxsteer import records, sharding
from jaxsteer.benchmarks import common, text_table
from jaxsteer.config import opt, to_dict
from jaxsteer.errors import UserError

# (category, pattern); the order matters (first match wins): cuDNN attention kernels also say
# "fprop", XLA's GEMM fusions also say "fusion", a conv's implicit GEMM also says "gemm".
CATEGORIES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern, re.IGNORECASE)) for name, pattern in (
        # cuDNN's flash backward also runs helper kernels (dO.O row sums, dQ cast to 16 bits,
        # seen on the H100) that would otherwise count as a GEMM ("dot") and a cast.
        ("attention", r"flash|fmha|sdpa|cudnn.*(attn|attention)|fused_attention"
                      r"|compute_dot_do_o|convert_dq_to_16bits"),
        # "conv" but not "convert": XLA names dtype casts loop_convert_fusion (elementwise).
        ("conv", r"conv(?!ert)|fprop|dgrad|wgrad|implicit_gemm|winograd"),
        ("matmul", r"gemm|cublas|cutlass|xmma|nvjet|matmul|dot|triton_gemm"),
        ("norm/reduce", r"reduce|reduction|norm|mean|variance"),
        ("transpose/copy", r"transpose|copy|memcpy|memset|pad|concatenate|slice"),
        ("elementwise fusion", r"fusion|loop_|elementwise|triton"),
    ))
OTHER = "other"
TOP_KERNELS = 25
NAME_CHARS = 80

DEVICE_PROCESS = re.compile(r"/device:(GPU|TPU)", re.IGNORECASE)


def categorize(name: str) -> str:
    """The category of a kernel name (see the module docstring)."""
    for category, pattern in CATEGORIES:
        if pattern.search(name):
            return category
    return OTHER


def trace_calls(fn: Callable[..., Any], args: Sequence[Any], out_dir: Path,
                calls: int = 3) -> Path:
    """Profiles ``calls`` calls of ``fn(*args)`` after one untraced warm-up call.

    Returns the ``perfetto_trace.json.gz`` written under ``out_dir/plugins/profile/<run>/``.
    """
    out_dir = Path(out_dir)
    # Warm-up outside the trace: compilation and autotuning would otherwise dominate it.
    jax.block_until_ready(fn(*args))
    started = time.time()
    with jax.profiler.trace(str(out_dir), create_perfetto_trace=True):
        out = None
        for _ in range(calls):
            out = fn(*args)
        # Inside the trace: calls are dispatched asynchronously, the kernels run after the loop.
        jax.block_until_ready(out)
    traces = sorted(out_dir.glob("plugins/profile/*/perfetto_trace.json.gz"),
                    key=lambda p: p.stat().st_mtime)
    # A newest file older than this trace would be a previous run's (jax failed to write ours).
    if not traces or traces[-1].stat().st_mtime < started - 1.0:
        raise FileNotFoundError(f"no new perfetto_trace.json.gz under {out_dir}/plugins/profile")
    return traces[-1]


def _load_events(trace_path: Path) -> list[dict]:
    opener = gzip.open if str(trace_path).endswith(".gz") else open
    with opener(trace_path, "rt", encoding="utf-8") as fp:
        trace = json.load(fp)
    return trace["traceEvents"] if isinstance(trace, dict) else trace


def _leaves(events: list[dict]) -> list[dict]:
    """Drops events that contain another event of their thread (host scopes around XLA ops, a
    CUDA graph around its kernels), so that no time is counted twice on one thread."""
    by_thread: dict[tuple, list[dict]] = defaultdict(list)
    for e in events:
        by_thread[(e.get("pid"), e.get("tid"))].append(e)
    containers: set[int] = set()
    for thread in by_thread.values():
        thread.sort(key=lambda e: (e["ts"], -e["dur"]))
        stack: list[dict] = []
        for e in thread:
            end = e["ts"] + e["dur"]
            while stack and stack[-1]["ts"] + stack[-1]["dur"] <= e["ts"]:
                stack.pop()
            # Strict containment only: back-to-back kernels of a stream may overlap by clock
            # jitter without one holding the other.
            if stack and end <= stack[-1]["ts"] + stack[-1]["dur"]:
                containers.add(id(stack[-1]))
            stack.append(e)
    return [e for e in events if id(e) not in containers]


def _select(events: list[dict]) -> tuple[list[dict], bool, list[str]]:
    """The device's kernel events, whether they are real device events, the processes used."""
    processes: dict[Any, str] = {}
    threads: dict[tuple, str] = {}
    for e in events:
        if e.get("ph") != "M":
            continue
        name = str(e.get("args", {}).get("name", ""))
        if e.get("name") == "process_name":
            processes[e.get("pid")] = name
        elif e.get("name") == "thread_name":
            threads[(e.get("pid"), e.get("tid"))] = name
    # Zero-length events are markers (counters, threadpool records); they hold no time.
    complete = [e for e in events if e.get("ph") == "X" and e.get("dur", 0) > 0 and "ts" in e]

    device_pids = {pid for pid, name in processes.items() if DEVICE_PROCESS.search(name)}
    if device_pids:
        chosen = []
        for pid in sorted(device_pids, key=str):
            names = {tid: n for (p, tid), n in threads.items() if p == pid}
            # GPU: one line a CUDA stream, next to "CUPTI overhead" and counter lines. TPU: the
            # "XLA Ops" line, next to derived lines (XLA Modules, Steps, ...) that repeat it.
            keep = ({t for t, n in names.items() if n.startswith("Stream")}
                    or {t for t, n in names.items() if n == "XLA Ops"})
            chosen += [e for e in complete
                       if e.get("pid") == pid and (not keep or e.get("tid") in keep)]
        return _leaves(chosen), True, sorted(processes[p] for p in device_pids)

    # No device process (CPU backend): the XLA ops that the host's threads executed.
    ops = [e for e in complete if "hlo_op" in (e.get("args") or {})]
    if not ops:
        # Older runtimes: whatever non-Python events ran off the Python thread, minus markers.
        ops = [e for e in complete
               if threads.get((e.get("pid"), e.get("tid"))) != "python"
               and not str(e.get("name", "")).startswith(("$", "end: ", "ThreadpoolListener"))]
    return _leaves(ops), False, sorted(set(processes.values()))


def _union_length(intervals: list[tuple[float, float]]) -> float:
    total, cur_start, cur_end = 0.0, None, None
    for start, end in sorted(intervals):
        if cur_end is None or start > cur_end:
            if cur_end is not None:
                total += cur_end - cur_start
            cur_start, cur_end = start, end
        else:
            cur_end = max(cur_end, end)
    if cur_end is not None:
        total += cur_end - cur_start
    return total


def _short(name: str) -> str:
    return name if len(name) <= NAME_CHARS else name[:NAME_CHARS - 3] + "..."


def summarize(trace_path: Path, calls: int) -> dict:
    """Device time per call of a traced run, by kernel category and by kernel (see the module
    docstring for the fields)."""
    events, device_events, processes = _select(_load_events(Path(trace_path)))
    per_ms = 1e-3 / calls  # trace times are microseconds over all calls
    if events:
        wall = max(e["ts"] + e["dur"] for e in events) - min(e["ts"] for e in events)
        busy = _union_length([(e["ts"], e["ts"] + e["dur"]) for e in events])
    else:
        wall = busy = 0.0
    kernel_total = sum(e["dur"] for e in events)

    by_name: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    for e in events:
        acc = by_name[str(e.get("name", ""))]
        acc[0] += e["dur"]
        acc[1] += 1
    by_category: dict[str, list] = defaultdict(lambda: [0.0, 0])
    for name, (dur, _) in by_name.items():
        acc = by_category[categorize(name)]
        acc[0] += dur
        acc[1] += 1

    def share(dur: float) -> float:
        return dur / kernel_total if kernel_total else 0.0

    categories = [{"category": c, "ms_per_call": dur * per_ms, "share": share(dur), "kernels": n}
                  for c, (dur, n) in sorted(by_category.items(), key=lambda kv: -kv[1][0])]
    top = [{"name": _short(name), "category": categorize(name), "ms_per_call": dur * per_ms,
            "count_per_call": count / calls, "share": share(dur)}
           for name, (dur, count) in sorted(by_name.items(), key=lambda kv: -kv[1][0])
           [:TOP_KERNELS]]
    return {
        "calls": calls,
        "wall_ms_per_call": wall * per_ms,
        "busy_ms_per_call": busy * per_ms,
        "idle_share": 1.0 - busy / wall if wall else 0.0,
        "kernel_ms_per_call": kernel_total * per_ms,
        "categories": categories,
        "top": top,
        "device_events": device_events,
        "processes": processes,
    }


def format_profile(summary: dict, title: str) -> str:
    """The summary as plain text: totals, the category table, the top kernels table."""
    s = summary
    source = ("device kernels" if s["device_events"]
              else "host-side XLA ops (no device events in the trace: CPU backend)")
    lines = [
        f"Profile: {title} ({source}, {s['calls']} traced calls)",
        (f"wall {s['wall_ms_per_call']:.3f} ms/call, busy {s['busy_ms_per_call']:.3f} ms/call "
         f"(idle {100 * s['idle_share']:.1f}%), kernel time {s['kernel_ms_per_call']:.3f} ms/call "
         "(kernels overlapping on several streams count once each)"),
        "",
        text_table(["category", "ms/call", "share", "kernels"],
                   [[c["category"], f"{c['ms_per_call']:.3f}", f"{100 * c['share']:.1f}%",
                     str(c["kernels"])] for c in s["categories"]]),
        "",
        text_table(["kernel", "category", "ms/call", "count/call", "share"],
                   [[k["name"], k["category"], f"{k['ms_per_call']:.3f}",
                     f"{k['count_per_call']:g}", f"{100 * k['share']:.1f}%"] for k in s["top"]],
                   left=2),
    ]
    return "\n".join(lines)


@dataclasses.dataclass(frozen=True)
class ProfileBench(common.KernelBench):
    """`jaxsteer bench profile` (default run: sd-turbo-1)."""

    profile_calls: int = opt(3, "traced calls per run (after one warm-up call)")


def run(cfg: ProfileBench) -> dict:
    """Where the device time of each run's kernel goes (first batch of each run; default
    sd-turbo-1): a profiler trace per run under ``<out folder>/traces/``, summarised by kernel
    category (`jaxsteer.benchmarks.profile`), tables printed, summaries in ``--out``."""
    records.check_out(cfg.out, file=True)
    if cfg.profile_calls < 1:
        raise UserError(f"--profile-calls must be positive, got {cfg.profile_calls}")
    jobs = cfg.jobs(("sd-turbo-1",))
    mesh = sharding.make_mesh()
    models = common.Models(cfg.seed, mesh, cfg.scan_layers)
    result: dict[str, Any] = {"config": to_dict(cfg), "runs": []}
    for job in jobs:
        batch = job.batches[0]
        name = f"{job.config}-{job.attention}-{job.remat}-b{batch}"
        collector = common.collector(models, job.config, cfg.dtype, job.attention, job.remat, mesh)
        inputs, placed = common.kernel_inputs(collector, job.config, batch, cfg.seed)
        # Lower + compile as a fresh process does it: with warm caches, the cold start's cost.
        cache = jax.config.jax_compilation_cache_dir
        before, t0 = common.cache_entries(cache), time.perf_counter()
        compiled = collector.kernel.lower(collector.params, inputs, placed).compile()
        compile_s = time.perf_counter() - t0
        cache_hit = bool(cache) and common.cache_entries(cache) == before
        path = trace_calls(compiled, (collector.params, inputs, placed),
                           cfg.out.parent / "traces" / name, calls=cfg.profile_calls)
        summary = summarize(path, cfg.profile_calls)
        summary.update(run=name, batch=batch, trace=str(path), compile_s=compile_s,
                       compile_cache_hit=cache_hit,
                       grads_per_s=batch / (summary["wall_ms_per_call"] / 1e3))
        result["runs"].append(summary)
        common.write_json(cfg.out, result)
        print(format_profile(summary, f"{name}: {summary['grads_per_s']:.1f} grads/s in the "
                             f"trace; lower + compile {compile_s:.1f} s "
                             f"({'from the caches' if cache_hit else 'cold'})"), flush=True)
    return {"out": str(cfg.out), "runs": [r["run"] for r in result["runs"]]}


