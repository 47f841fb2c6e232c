"""Concept complexity: dimension estimates of a gradient cloud ``[n, d]`` (DESIGN.md section 1.7).

Pure ``jnp`` functions on any matrix (no model code is imported here):

- ``spectral``: the authors' subspace size (explained-variance ratio > 2.5 / D), components
  for 90% / 95% of variance, the participation ratio, Horn's parallel analysis;
- ``local``: Levina–Bickel MLE (MacKay–Ghahramani average) and TwoNN;
- ``vaease``: per-sample active dimensions of a VAEase model;
- ``bootstrap``: percentile intervals with explicit keys;
- ``estimate_all``: all of them, JSON-ready, for the survey.
"""

from jaxsteer.complexity.estimate import NORMALIZATIONS as NORMALIZATIONS
from jaxsteer.complexity.estimate import ComplexityConfig as ComplexityConfig
from jaxsteer.complexity.estimate import estimate_all as estimate_all
from jaxsteer.complexity.estimate import estimate_one as estimate_one
from jaxsteer.complexity.estimate import estimator_names as estimator_names
from jaxsteer.complexity.estimate import normalize_rows as normalize_rows
from jaxsteer.complexity.intervals import bootstrap as bootstrap
from jaxsteer.complexity.intervals import bootstrap_values as bootstrap_values
from jaxsteer.complexity.intervals import percentile_interval as percentile_interval
from jaxsteer.complexity.local import knn_distances as knn_distances
from jaxsteer.complexity.local import mle_dimension as mle_dimension
from jaxsteer.complexity.local import twonn_dimension as twonn_dimension
from jaxsteer.complexity.spectral import components_for_variance as components_for_variance
from jaxsteer.complexity.spectral import explained_variance_ratio as explained_variance_ratio
from jaxsteer.complexity.spectral import parallel_analysis as parallel_analysis
from jaxsteer.complexity.spectral import participation_ratio as participation_ratio
from jaxsteer.complexity.spectral import pca_variances as pca_variances
from jaxsteer.complexity.spectral import subspace_size as subspace_size
from jaxsteer.complexity.vaease import VAEaseConfig as VAEaseConfig
from jaxsteer.complexity.vaease import two_group_split as two_group_split
from jaxsteer.complexity.vaease import vaease_active_dims as vaease_active_dims
