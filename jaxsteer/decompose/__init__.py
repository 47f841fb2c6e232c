"""Decomposition of gradient matrices into steering directions: PCA and a TopK sparse autoencoder.

    ds = jaxsteer.decompose.pca(grads_nd, k=16)          # DirectionSet
    ds, state = jaxsteer.decompose.train_sae(grads_nd)   # DirectionSet, SAEState

Both return a `DirectionSet`; `jaxsteer.checkpoint` saves and loads it.
"""

from jaxsteer.decompose.directions import DirectionSet as DirectionSet
from jaxsteer.decompose.directions import significant_count as significant_count
from jaxsteer.decompose.directions import unit_rows as unit_rows
from jaxsteer.decompose.pca import pca as pca
from jaxsteer.decompose.pca import spectrum_png as spectrum_png
from jaxsteer.decompose.pca import write_spectrum_png as write_spectrum_png
from jaxsteer.decompose.sae import SAEConfig as SAEConfig
from jaxsteer.decompose.sae import SAEParams as SAEParams
from jaxsteer.decompose.sae import SAEState as SAEState
from jaxsteer.decompose.sae import sae_directions as sae_directions
from jaxsteer.decompose.sae import sae_step as sae_step
from jaxsteer.decompose.sae import train_sae as train_sae

__all__ = [
    "DirectionSet", "SAEConfig", "SAEParams", "SAEState", "pca", "sae_directions", "sae_step",
    "significant_count", "spectrum_png", "train_sae", "unit_rows", "write_spectrum_png",
]
