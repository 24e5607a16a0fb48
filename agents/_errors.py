"""Typed errors of the agents package: each subclasses ``ValueError`` and names what was wrong."""

from __future__ import annotations


class AgentError(ValueError):
    """Bad input to an agent: the message names the argument and what is allowed."""


class ModelNotFoundError(AgentError):
    """A model name or path that is neither built in nor present on this machine."""


class BudgetExhaustedError(AgentError):
    """The agent's (or a sensitive domain's) privacy budget cannot pay for the request."""
