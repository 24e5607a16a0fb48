"""The error type of this package."""


class GraphError(ValueError):
    """Bad graph input: the message names the argument and what is allowed."""
