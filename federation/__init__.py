"""federation package (see shared/DESIGN.md)."""
