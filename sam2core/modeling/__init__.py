"""SAM 2 / SAM 2.1 building blocks (and the SAM-1-style prompt encoder and mask decoder).

One concept a file; parameter names follow the official checkpoints so that their
state dicts load with `strict=True`.
"""
