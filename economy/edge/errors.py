"""Typed errors of the edge node."""

from __future__ import annotations


class EdgeError(ValueError):
    """A node cannot start or serve as asked (bad folder, store, model or request)."""


class UnknownUserError(EdgeError, KeyError):
    """A decision was asked for a user the node does not host (users come with their first
    event)."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""
