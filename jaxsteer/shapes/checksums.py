"""sha256 of each file of the bundled shapes model (written by assets.write_checksums)."""

SHA256 = {
    "evaluation.json":
        "96d41c372329f8288996da9c9a8353a4fa95d0c7bdbde57d5b3aa54867e3fff6",
    "model_index.json":
        "babc0d2fbe08663e4d093dfa40942710a8bf1c64832dd5e5f3bfc47e9d56eab0",
    "scheduler/scheduler_config.json":
        "a99e48c6154996cadca1aecb3ce6c8bffa6c50b81394152529ebc5108ff2df5f",
    "text_encoder/config.json":
        "90eab62d9be99fe73e78adcd341e4aeb917a5ef97672369b0a2e631b412c641f",
    "text_encoder/flax_model.msgpack":
        "c4c49922705295f8351ae8625a8ae1a366ef8dcfdc7d8e1e63ea3f0ea7f321cf",
    "tokenizer/merges.txt":
        "5afb8d803231d257c2f59f242a5c54f92b3344e8333b500774f1104a673a92ec",
    "tokenizer/special_tokens_map.json":
        "694221b88faf9be7a3a565f749a706b287d3e11d1654c3ed19fad50d1e0784cf",
    "tokenizer/tokenizer_config.json":
        "2649821323e21bf4b2b304db46d6f9fd4298dfaff6a2b5b31345b1baf6d6b827",
    "tokenizer/vocab.json":
        "58e66dd988782e681c07f2091a2fa3b7e15fb57d118ce49c646487ec0deb2f4a",
    "training.json":
        "7650a74fe4b1ed3071f06ddf60c23bdf486d37e6a47eaea456a31ed2d872f490",
    "unet/config.json":
        "87e59c5870fc8f54a37642fad86e22db6a731bf4d49505c9bd0b919db0a4fa9e",
    "unet/diffusion_flax_model.msgpack":
        "2926f612d6be99295646f3e11b442ee348d805026a318c4f2b2b505eb1fbda82",
}
