"""graphs package (see shared/DESIGN.md)."""
