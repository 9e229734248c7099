"""napari-sam2: 3D segmentation of CT/MRI from a prompt on one slice, as a napari plugin and CLI.

This package must import without napari or Qt (the CLI is headless); GUI modules import
napari themselves.
"""

__version__ = "0.1.0"
