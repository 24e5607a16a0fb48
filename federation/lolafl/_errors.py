"""The error type of LoLaFL."""


class LoLaFLError(ValueError):
    """Bad LoLaFL input: the message names the argument and what is allowed."""
