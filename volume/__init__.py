"""volume package (being written)."""
