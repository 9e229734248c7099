import sys

from napari_sam2.cli import main

sys.exit(main())
