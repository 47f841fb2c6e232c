"""The one exception type for bad input: the CLI prints it as one line and exits non-zero."""


class UserError(ValueError):
    """Input the user can fix (bad prompt, bad flag, wrong folder). Never a bug of ours."""
