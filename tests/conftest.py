"""Test-wide JAX set-up: 8 fake CPU devices, rank promotion raises, a persistent compile cache."""

import os
import warnings

os.environ.setdefault("JAX_PLATFORMS", "cpu")
warnings.filterwarnings("ignore", message="Flax classes are deprecated")

import jax  # noqa: E402

jax.config.update("jax_num_cpu_devices", 8)
jax.config.update("jax_threefry_partitionable", True)
