"""scanio package (being written)."""
