"""Bundled sample scans (see sample_data/README.md for source and licence)."""
