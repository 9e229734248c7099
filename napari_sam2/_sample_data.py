"""npe2 sample data: the bundled CT (see sample_data/README.md for source and licence)."""

from __future__ import annotations

from napari_sam2.layers import scan_layer_data


def sample_ct() -> list:
    """The bundled sample CT as an image layer in physical units, soft-tissue window."""
    import scanio
    from sample_data import sample_ct_path

    scan = scanio.read_scan(sample_ct_path())
    return [scan_layer_data(scan, name="sample CT")]
