"""The error type of the incentives package."""


class IncentiveError(ValueError):
    """Bad valuation, reward or ledger input; the message says what is wrong and allowed."""
