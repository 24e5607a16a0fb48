"""Typed errors of the edge node."""

from __future__ import annotations


class EdgeError(ValueError):
    """A node cannot start or serve as asked (bad folder, store, model or request)."""


class UnknownUserError(EdgeError, KeyError):
    """A decision was asked for a user the node does not host (users come with their first
    event)."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class UnknownAdError(EdgeError, KeyError):
    """A decision named an ad id the node's catalogue does not hold; ``index`` is its position
    in the request's ``ad_ids``."""

    def __init__(self, message: str, index: int) -> None:
        super().__init__(message)
        self.index = index

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""
