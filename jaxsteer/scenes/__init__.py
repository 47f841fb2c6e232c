"""The scenes world: a 64 x 64 latent-space sibling of the shapes world (issue #16 item 7).

One shape (type, hue, x, y, size, as in `jaxsteer.shapes`) that is solid or striped, on a
black, grey or white background, with or without a small dot: eight known factors. Its caption
grammar names a free factor with a free phrase of the same length as the factor's values, and
adds content-free fillers, so prompt length no longer follows the free-factor count. The model
is a latent-space SD pipeline (its own small AutoencoderKL, a latent UNet, a CLIP text encoder)
built from jaxsteer's networks.

Modules: `captions` (grammar, split), `prompts` (training draw, benchmark prompt lists),
`render`, `probe`, `tokenizer`, `model` (configs, pipeline folder), `train` (VAE then latent
UNet, resumable: `jaxsteer train-scenes`), `evaluate` (probe-based quality), `assets` (the
bundled model, `jaxsteer.models.load("scenes")`).
"""
