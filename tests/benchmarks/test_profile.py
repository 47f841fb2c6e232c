"""The profiling helper: a hand-made GPU trace summarized exactly, and a real CPU trace."""

import gzip
import json

import jax
import jax.numpy as jnp
import pytest

from jaxsteer.benchmarks.profile import categorize, format_profile, summarize, trace_calls

GEMM = "sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x128x64_warpgroupsize1x1x1"
SDPA = "cudnn_generated_fort_native_sdpa_sm90_flash_fprop_wgmma_f16_knob_7_64x64x128"
CONV = "nhwckrsc_fprop_implicit_gemm_bf16_sm90"
ADD = "loop_add_fusion"
REDUCE = "input_reduce_fusion"
CUTLASS = ("void cutlass::Kernel2<cutlass_80_tensorop_bf16_s16816gemm_relu_bf16_64x64_32x6_tn_"
           "align8>(cutlass_80_tensorop_bf16_s16816gemm_relu_bf16_64x64_32x6_tn_align8::Params)")

GPU, HOST = 1, 701
S13, S20, OVERHEAD, PY = 10, 11, 12, 20


def _meta(pid, name, tid=None):
    if tid is None:
        return {"ph": "M", "pid": pid, "name": "process_name", "args": {"name": name}}
    return {"ph": "M", "pid": pid, "tid": tid, "name": "thread_name", "args": {"name": name}}


def _x(pid, tid, name, ts, dur, **args):
    return {"ph": "X", "pid": pid, "tid": tid, "name": name, "ts": ts, "dur": dur, "args": args}


def _write(path, events):
    with gzip.open(path, "wt") as fp:
        json.dump({"displayTimeUnit": "ns", "traceEvents": events + [{}]}, fp)
    return path


def _gpu_trace(path):
    """Two calls, 1000 us apart. Per call: stream 13 runs GEMM [0, 400), SDPA [400, 700), ADD
    [700, 800); stream 20 runs CONV [500, 700) (under SDPA) and REDUCE [800, 850). The second call
    also runs CUTLASS [1850, 1900) on stream 20."""
    events = [_meta(GPU, "/device:GPU:0"), _meta(GPU, "Stream #13(Kernel)", S13),
              _meta(GPU, "Stream #20(Kernel,MemcpyD2D)", S20),
              _meta(GPU, "CUPTI overhead", OVERHEAD),
              _meta(HOST, "/host:CPU"), _meta(HOST, "python", PY)]
    for t0 in (0, 1000):
        events += [_x(GPU, S13, GEMM, t0 + 0, 400, correlation_id="1"),
                   _x(GPU, S13, SDPA, t0 + 400, 300), _x(GPU, S13, ADD, t0 + 700, 100),
                   _x(GPU, S20, CONV, t0 + 500, 200), _x(GPU, S20, REDUCE, t0 + 800, 50),
                   # Not kernels: CUPTI's own overhead, a zero-length marker.
                   _x(GPU, OVERHEAD, "CUPTI buffer flush", t0 + 100, 300),
                   _x(GPU, S13, "marker", t0 + 10, 0),
                   # Host side: Python frames, the runtime's op scopes (same names as kernels).
                   _x(HOST, PY, "$bench.py:10 step", t0 - 50, 900),
                   _x(HOST, PY, ADD, t0 + 10, 5000, hlo_op=ADD),
                   _x(HOST, PY, "PjitFunction(step)", t0 - 40, 30)]
    events.append(_x(GPU, S20, CUTLASS, 1850, 50))
    return _write(path, events)


def test_summarize_gpu_trace_by_category_and_kernel(tmp_path):
    s = summarize(_gpu_trace(tmp_path / "perfetto_trace.json.gz"), calls=2)
    assert s["device_events"] is True and s["processes"] == ["/device:GPU:0"]
    # Kernel time: 2 x (400 + 300 + 100 + 200 + 50) + 50 = 2150 us over 2 calls.
    assert s["kernel_ms_per_call"] == pytest.approx(1.075)
    # Busy: [0, 850) then [1000, 1900): CONV hides under SDPA, so busy < kernel time.
    assert s["busy_ms_per_call"] == pytest.approx(1.750 / 2)
    assert s["wall_ms_per_call"] == pytest.approx(1.900 / 2)
    assert s["idle_share"] == pytest.approx(1 - 1750 / 1900)

    cats = [(c["category"], c["ms_per_call"], c["kernels"]) for c in s["categories"]]
    assert cats == [("matmul", pytest.approx(0.425), 2), ("attention", pytest.approx(0.3), 1),
                    ("conv", pytest.approx(0.2), 1), ("elementwise fusion", pytest.approx(0.1), 1),
                    ("norm/reduce", pytest.approx(0.05), 1)]
    assert [c["share"] for c in s["categories"]] == pytest.approx(
        [850 / 2150, 600 / 2150, 400 / 2150, 200 / 2150, 100 / 2150])

    top = s["top"]
    assert [k["name"] for k in top[:5]] == [GEMM, SDPA, CONV, ADD, REDUCE]
    assert [k["category"] for k in top] == ["matmul", "attention", "conv", "elementwise fusion",
                                            "norm/reduce", "matmul"]
    assert [k["ms_per_call"] for k in top] == pytest.approx([0.4, 0.3, 0.2, 0.1, 0.05, 0.025])
    assert [k["count_per_call"] for k in top] == [1, 1, 1, 1, 1, 0.5]
    assert top[0]["share"] == pytest.approx(800 / 2150)
    # Long (demangled) names are cut to 80 characters.
    assert len(top[5]["name"]) == 80 and top[5]["name"].startswith("void cutlass::Kernel2<")

    text = format_profile(s, "synthetic")
    assert "synthetic" in text and "device kernels" in text
    assert text.index("matmul") < text.index("attention") < text.index(GEMM)


def test_container_events_and_tpu_ops_line(tmp_path):
    # A CUDA-graph-like event around two kernels of its stream: only the kernels count.
    events = [_meta(GPU, "/device:GPU:0"), _meta(GPU, "Stream #7", S13),
              _x(GPU, S13, "graph launch", 0, 100), _x(GPU, S13, GEMM, 10, 30),
              _x(GPU, S13, ADD, 40, 20)]
    s = summarize(_write(tmp_path / "gpu.json.gz", events), calls=1)
    assert [k["name"] for k in s["top"]] == [GEMM, ADD]
    assert s["kernel_ms_per_call"] == pytest.approx(0.05)
    assert s["wall_ms_per_call"] == pytest.approx(0.05)
    # TPU: the "XLA Ops" line only, not the module line that spans it.
    events = [_meta(3, "/device:TPU:0"), _meta(3, "XLA Modules", 1), _meta(3, "XLA Ops", 2),
              _x(3, 1, "jit_step(123)", 0, 100), _x(3, 2, "convolution.3", 0, 60),
              _x(3, 2, "fusion.7", 60, 40)]
    s = summarize(_write(tmp_path / "tpu.json.gz", events), calls=1)
    assert [(c["category"], c["ms_per_call"]) for c in s["categories"]] == [
        ("conv", pytest.approx(0.06)), ("elementwise fusion", pytest.approx(0.04))]


@pytest.mark.parametrize("name, category", [
    ("loop_convert_fusion", "elementwise fusion"),  # a dtype cast, not a convolution
    ("cudnn_generated_fort_native_sdpa_sm90_knob_7", "attention"),
    ("sm90_xmma_fprop_implicit_gemm_bf16", "conv"),
    ("triton_gemm_dot_fusion", "matmul"), ("nvjet_tst_128x256_64x4_1x2_h_bz_coopA_TNT", "matmul"),
    ("input_reduce_fusion_3", "norm/reduce"), ("loop_transpose_fusion", "transpose/copy"),
    ("MemcpyH2D", "transpose/copy"), ("triton_softmax_fusion", "elementwise fusion"),
    ("rng_bit_generator", "other"),
    ("void cudnn::fusion::compute_dot_do_o_specialized<true, 64>(void const*)", "attention"),
    ("void cudnn::fusion::convert_dq_to_16bits<true>(void const*, void*)", "attention"),
])
def test_categorize(name, category):
    assert categorize(name) == category


def test_trace_calls_on_cpu(tmp_path):
    @jax.jit
    def f(a, b):
        return jnp.tanh(a @ b) @ b.T + a.sum()

    a = jnp.ones((128, 128), jnp.float32)
    path = trace_calls(f, (a, a), tmp_path / "prof", calls=3)
    assert path.name == "perfetto_trace.json.gz" and path.is_file()
    assert path.parent.parent == tmp_path / "prof" / "plugins" / "profile"
    s = summarize(path, calls=3)
    assert s["device_events"] is False and "/host:CPU" in s["processes"]
    assert s["wall_ms_per_call"] > 0 and s["kernel_ms_per_call"] > 0 and s["top"]
    assert 0.0 <= s["idle_share"] < 1.0
    text = format_profile(s, "tiny matmuls")
    assert "tiny matmuls" in text and "category" in text and "host-side XLA ops" in text
    assert all(c["category"] in text for c in s["categories"])
