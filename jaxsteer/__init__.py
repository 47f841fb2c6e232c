"""jaxsteer: ELROND steering directions for text-to-image diffusion models, in JAX."""

__version__ = "0.1.0"
