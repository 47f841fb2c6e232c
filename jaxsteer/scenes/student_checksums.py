"""sha256 of each file of the bundled scenes-student model (written by assets.write_checksums)."""

SHA256 = {
    "model_index.json":
        "c8654f5fd3274196fbbf15d8c8c33be8aaddd4f70dccbd3043f1b9bdb299afe8",
    "scheduler/scheduler_config.json":
        "2ebf93098b30ca0904686544986b0e8245999b1097b9095a51278a93c263fd82",
    "training.json":
        "967a90f2f2b732d5ae9846fcd1e1f8b59a1bd3bd2d66f1d4a1b563c9ee5ca48e",
    "unet/config.json":
        "d72327e405dfe933aefddc7f288ec5e2a2dc79b3b6dc09488f2048b04dd86742",
    "unet/diffusion_flax_model.msgpack":
        "74a936622664192aa9f926b9b72824fbdacd8d4b64a905a1bcfac7f6e6c4a149",
}
