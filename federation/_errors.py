"""The error type of the federation package."""


class FederationError(ValueError):
    """Bad federation config or input: the message names the key and what is allowed."""
