"""The napari-sam2 dock widget, split into small parts (see `dock.SegmentationWidget`)."""
