"""incentives package (see shared/DESIGN.md)."""
