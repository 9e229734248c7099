"""Make the README screenshots from the current code: a real napari viewer, the sample CT, LiteMedSAM.

    xvfb-run -a .venv/bin/python docs/screenshots.py            # writes docs/images/*.png

One box around the liver on the middle slice (placed from the sample's reference labels),
propagation in both directions with the dock widget, then three pictures: the window with the
widget and a 2D slice (`widget_2d.png`); a 3D view of the segmentation (`view_3d.png`); and a
correction — part of the liver erased with the paint tool on one slice, propagated again, the
mask before the correction shown as an outline (`correction_2d.png`).
Takes 1-20 minutes on a CPU (20 LiteMedSAM encodes), seconds on a GPU.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

IMAGES = Path(__file__).resolve().parent / "images"
LIVER = 5


def _wait(widget, app, timeout_s: float) -> None:
    start = time.monotonic()
    while widget.is_running():
        app.processEvents()
        time.sleep(0.05)
        if time.monotonic() - start > timeout_s:
            raise TimeoutError(f"propagation still running after {timeout_s:.0f} s")
    for _ in range(20):
        app.processEvents()
        time.sleep(0.02)


def _save_small(rgba: np.ndarray, path: Path, max_width: int) -> None:
    """PNG, downscaled to `max_width` pixels wide, palette-quantised to keep the file small."""
    from PIL import Image

    image = Image.fromarray(np.asarray(rgba)[..., :3])
    if image.width > max_width:
        image = image.resize((max_width, round(image.height * max_width / image.width)), Image.LANCZOS)
    image.quantize(colors=192, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    print(f"wrote {path} ({path.stat().st_size // 1024} KiB, {image.width}x{image.height})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=IMAGES)
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16"))
    parser.add_argument("--timeout-s", type=float, default=3600)
    args = parser.parse_args()

    import napari
    import scanio
    from napari.utils.colormaps import DirectLabelColormap
    from qtpy.QtWidgets import QApplication
    from sample_data import sample_ct_path, sample_labels_path

    args.out.mkdir(parents=True, exist_ok=True)
    viewer = napari.Viewer(show=True, title="napari-sam2")
    viewer.window._qt_window.resize(1400, 900)
    [image] = viewer.open_sample("napari-sam2", "sample_ct")
    _, widget = viewer.window.add_plugin_dock_widget("napari-sam2", "SAM 2 3D segmentation")
    app = QApplication.instance()
    widget.model_panel.precision_combo.setCurrentText(args.precision)

    scan = image.metadata["napari_sam2_scan"]
    reference = scanio.resample_like(scanio.read_scan(sample_labels_path()), like=scan, is_label=True)
    middle = scan.shape[0] // 2
    ys, xs = np.nonzero(reference.array[middle] == LIVER)
    liver = widget.objects.add_object("liver")
    widget.ensure_prompt_layers().add_box(liver.obj_id, 0, middle, (ys.min(), xs.min()), (ys.max(), xs.max()))

    started = time.perf_counter()
    widget.propagate(direction="both directions")
    _wait(widget, app, args.timeout_s)
    print(f"propagation: {time.perf_counter() - started:.1f} s; {widget.status.text()}")
    if not np.any(widget.labels_layer.data):
        raise SystemExit(f"no segmentation to show: {widget.status.text()} ({sample_ct_path()})")

    # 2D: the prompted slice with its box, the labels and the widget
    viewer.dims.ndisplay = 2
    viewer.dims.set_point(0, image.data_to_world((middle, 0, 0))[0])
    viewer.layers.selection.active = widget.labels_layer
    viewer.reset_view()
    for _ in range(10):
        app.processEvents()
    _save_small(viewer.screenshot(canvas_only=False, flash=False), args.out / "widget_2d.png", 1200)

    # 3D: the segmented liver as a surface among the bones (CT shown as a MIP in a bone window)
    labels_opacity, labels_rendering = widget.labels_layer.opacity, widget.labels_layer.rendering
    image_rendering, image_limits, image_opacity = image.rendering, image.contrast_limits, image.opacity
    for layer in (widget.prompt_layers.points, widget.prompt_layers.boxes):
        layer.visible = False
    viewer.dims.ndisplay = 3
    widget.labels_layer.opacity = 1.0
    widget.labels_layer.rendering = "iso_categorical"
    image.rendering = "mip"
    image.contrast_limits = (150.0, 1200.0)
    image.opacity = 0.6
    viewer.reset_view()  # resets the camera: set the angles after it
    camera = viewer.scene.camera if hasattr(viewer, "scene") else viewer.camera
    camera.angles = (-60.0, 20.0, 160.0)
    camera.zoom *= 1.4
    for _ in range(10):
        app.processEvents()
    _save_small(viewer.screenshot(canvas_only=True, flash=False), args.out / "view_3d.png", 900)

    # back to the 2D slice view for the correction
    viewer.dims.ndisplay = 2
    widget.labels_layer.opacity = labels_opacity
    widget.labels_layer.rendering = labels_rendering
    image.rendering, image.contrast_limits, image.opacity = image_rendering, image_limits, image_opacity
    for layer in (widget.prompt_layers.points, widget.prompt_layers.boxes):
        layer.visible = True

    # a correction: erase the liver's lateral third on a slice with the brush, propagate again; the
    # mask before the correction stays on screen as an outline, the paint tool stays selected
    corrected = middle + 3
    before = np.asarray(widget.labels_layer.data) == liver.obj_id
    plane = np.asarray(widget.labels_layer.data[corrected])
    cols = np.flatnonzero((plane == liver.obj_id).any(axis=0))
    cut = int(cols[0] + (cols[-1] - cols[0]) * 2 // 3)
    rr, cc = np.nonzero(plane[:, cut:] == liver.obj_id)
    widget.use_paint_tool()
    widget.labels_layer.data_setitem((np.full(rr.shape, corrected), rr, cc + cut), 0)  # as a stroke would
    _wait(widget, app, args.timeout_s)
    widget.propagate(direction="both directions")
    _wait(widget, app, args.timeout_s)
    print(f"correction: {widget.status.text()}")
    outline = viewer.add_labels(before.astype(np.uint8), name="before the correction",
                                scale=widget.labels_layer.scale, translate=widget.labels_layer.translate)
    outline.colormap = DirectLabelColormap(color_dict={None: (0, 0, 0, 0), 1: (0.2, 0.9, 1.0, 1.0)})
    outline.contour, outline.opacity = 2, 1.0
    viewer.layers.selection.active = widget.labels_layer
    widget.labels_layer.mode = "erase"
    viewer.dims.set_point(0, image.data_to_world((corrected, 0, 0))[0])
    viewer.reset_view()
    for _ in range(10):
        app.processEvents()
    _save_small(viewer.screenshot(canvas_only=False, flash=False), args.out / "correction_2d.png", 1200)
    viewer.close()


if __name__ == "__main__":
    main()
