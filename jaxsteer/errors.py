"""The one exception type for bad input: the CLI prints it as one line and exits non-zero."""


class UserError(ValueError):
    """Input the user can fix (bad prompt, bad flag, wrong folder). Never a bug of ours."""


def is_device_oom(e: BaseException) -> bool:
    """Whether ``e`` is XLA running out of accelerator memory (compile-time or run-time)."""
    text = str(e)
    return "RESOURCE_EXHAUSTED" in text or "out of memory" in text.lower()


OOM_ADVICE = ("lower --batch, or keep less for the backward pass: --remat-policy matmuls (about "
              "half the activation memory of none) or full, and --remat true for chains of "
              "several steps")
