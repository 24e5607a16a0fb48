"""agents package (see shared/DESIGN.md)."""
