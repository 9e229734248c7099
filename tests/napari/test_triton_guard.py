"""torch must stay usable after napari's OpenGL canvas exists (Triton's LLVM clashes with Mesa's)."""

import subprocess
import sys
import textwrap

import pytest


@pytest.mark.gui
def test_torch_dynamo_import_after_viewer_does_not_crash():
    script = textwrap.dedent("""
        import numpy as np, napari
        viewer = napari.Viewer(show=True)
        viewer.add_image(np.zeros((4, 32, 32)))
        viewer.screenshot()
        import napari_sam2.widget  # installs the guard, as opening the dock widget does
        import torch
        with torch.device("meta"):  # this path imports torch._dynamo (and so Triton) lazily
            x = 1e-6 * torch.ones(4)
        print("alive", x.device)
        viewer.close()
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "alive meta" in result.stdout
