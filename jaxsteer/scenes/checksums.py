"""sha256 of each file of the bundled scenes model (written by assets.write_checksums)."""

SHA256 = {
    "model_index.json":
        "c8654f5fd3274196fbbf15d8c8c33be8aaddd4f70dccbd3043f1b9bdb299afe8",
    "scheduler/scheduler_config.json":
        "a99e48c6154996cadca1aecb3ce6c8bffa6c50b81394152529ebc5108ff2df5f",
    "text_encoder/config.json":
        "679a69fd762723003c2525eaeebd150f8e31b9ae763c56073ab832325aaf8a3f",
    "text_encoder/flax_model.msgpack":
        "f817828252d404915f2eebe46d9dc7fbd5acda7ceb5ee69ca7bb5841918457ea",
    "tokenizer/merges.txt":
        "6472625e2d3c77dde70eb2872a6e46147a58abb3e7413b15aee3fa6b31372149",
    "tokenizer/special_tokens_map.json":
        "694221b88faf9be7a3a565f749a706b287d3e11d1654c3ed19fad50d1e0784cf",
    "tokenizer/tokenizer_config.json":
        "2f5a8f8ba3c4c0c2ebce89180e22ef171631131736c7a8b6d15c7fa67532c4ce",
    "tokenizer/vocab.json":
        "96c7f39bfec2f5dd2eb43d30acd65513a03d0779d007c87bc5dd148d0add601a",
    "training.json":
        "7aee44d805a4237adef8e1c0873aa62e7251e9ec9064f86acc165961deb5c3c8",
    "unet/config.json":
        "d72327e405dfe933aefddc7f288ec5e2a2dc79b3b6dc09488f2048b04dd86742",
    "unet/diffusion_flax_model.msgpack":
        "47c80090e221e92c569e5cfdbd9444f9edb8711b2c58f20ad56097e4c2cac9fa",
    "vae/config.json":
        "87feb9cf3c0e26a378f24fe59e5b8886f9932f39f808bf2fc31ba2ccdaa292cd",
    "vae/diffusion_flax_model.msgpack":
        "6619850ca9e2e5b028d0f34a0792583ea2e2afa8363ae4eab1f2bdb205c99d2e",
}
