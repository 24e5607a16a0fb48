"""The error type of this package."""


class LoLaFLError(ValueError):
    """Bad LoLaFL input: the message names the argument and what is allowed."""
