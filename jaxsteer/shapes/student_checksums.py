"""sha256 of each file of the bundled shapes-student model (written by assets.write_checksums)."""

SHA256 = {
    "model_index.json":
        "babc0d2fbe08663e4d093dfa40942710a8bf1c64832dd5e5f3bfc47e9d56eab0",
    "scheduler/scheduler_config.json":
        "2ebf93098b30ca0904686544986b0e8245999b1097b9095a51278a93c263fd82",
    "training.json":
        "e91aa3f31faf976fb000994a47bbc5092f5a1f0b25b008428c7ab3e860c63758",
    "unet/config.json":
        "87e59c5870fc8f54a37642fad86e22db6a731bf4d49505c9bd0b919db0a4fa9e",
    "unet/diffusion_flax_model.msgpack":
        "87e62b6c5226a5a1429c40289842e3320b64ffc0d61ea6f10ceb4b6e13b087e0",
}
