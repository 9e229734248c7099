"""Test suite; `tests.<pkg>.<helper>` modules are importable (pytest pythonpath = ".")."""
