"""The napari-sam2 dock widget, split into small parts (see `dock.SegmentationWidget`)."""

from napari_sam2._triton_guard import block_triton_without_cuda

block_triton_without_cuda()  # before any torch code runs next to napari's OpenGL canvas
