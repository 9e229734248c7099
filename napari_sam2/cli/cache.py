"""`napari-sam2 cache info|clear`: the on-disk store of image embeddings (see sam2core.predictor.embedding_store),
the PACS download cache of series fetched over DICOMweb (see scanio.dicomweb.cache) and the LiteMedSAM
graphs exported for the CPU engines (see sam2core.lite_medsam.engines.export)."""

from __future__ import annotations

import argparse

ONLY = ("embeddings", "pacs", "engines")


def add_parser(subparsers) -> None:
    """Register `cache` and its two subcommands."""
    parser = subparsers.add_parser(
        "cache",
        help="show or clear the stored image embeddings and PACS downloads",
        description="Image embeddings are kept on disk so a scan is encoded once "
        "(NAPARI_SAM2_EMBEDDINGS_DIR overrides the folder, NAPARI_SAM2_EMBEDDINGS_MAX_GB the size limit; "
        "the least recently used scans are evicted first). Series fetched from a PACS (DICOMweb) are kept "
        "so a second fetch gets only what is missing (NAPARI_SAM2_DICOMWEB_CACHE overrides the folder). "
        "LiteMedSAM's graphs exported for ONNX Runtime/OpenVINO are rebuilt on next use when cleared.",
    )
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])
    sub = parser.add_subparsers(dest="cache_command", metavar="ACTION")
    info = sub.add_parser("info", help="folder, scans, slices and size of the embedding store; "
                                       "series, files and size of the PACS downloads; exported engine graphs")
    clear = sub.add_parser("clear", help="delete every stored embedding, every fetched PACS series "
                                         "(SEGs waiting to be sent are kept) and the exported engine graphs")
    for action, func in ((info, _info), (clear, _clear)):
        action.add_argument("--dir", help="another embedding store folder")
        action.add_argument("--pacs-dir", help="another PACS download folder")
        action.add_argument("--only", choices=ONLY, help="only the embedding store, the PACS downloads or "
                                                         "the exported engine graphs")
        action.set_defaults(func=func)


def _store(args: argparse.Namespace):
    from sam2core.predictor.embedding_store import EmbeddingStore

    return EmbeddingStore(args.dir) if args.dir else EmbeddingStore()


def _wanted(args: argparse.Namespace, what: str) -> bool:
    return getattr(args, "only", None) in (None, what)


def _info(args: argparse.Namespace) -> int:
    from sam2core.store.download import size_text

    if _wanted(args, "embeddings"):
        info = _store(args).info()
        print(f"folder: {info.root}")
        print(f"scans:  {info.groups}")
        print(f"slices: {info.slices}")
        print(f"size:   {size_text(info.bytes)} (limit {size_text(info.max_bytes)})")
    if _wanted(args, "pacs"):
        from scanio.dicomweb.cache import cache_info

        pacs = cache_info(getattr(args, "pacs_dir", None))
        print("PACS downloads (DICOMweb):")
        print(f"  folder: {pacs.root}")
        print(f"  series: {pacs.series}")
        print(f"  files:  {pacs.files}")
        print(f"  size:   {size_text(pacs.bytes)}")
        if pacs.outbox_files:
            print(f"  SEGs not yet sent: {pacs.outbox_files} ({size_text(pacs.outbox_bytes)}; "
                  "kept by cache clear)")
    if _wanted(args, "engines"):
        from sam2core.lite_medsam.engines.export import default_cache_root, export_folders, folder_bytes

        folders = export_folders()
        print("LiteMedSAM engine exports (ONNX/OpenVINO):")
        print(f"  folder:  {default_cache_root() / 'lite_medsam'}")
        print(f"  exports: {len(folders)} (one per weights, export and torch version)")
        print(f"  size:    {size_text(sum(folder_bytes(f) for f in folders))}")
    return 0


def _clear(args: argparse.Namespace) -> int:
    from sam2core.store.download import size_text

    if _wanted(args, "embeddings"):
        store = _store(args)
        freed = store.clear()
        print(f"cleared {store.root}: {size_text(freed)} freed")
    if _wanted(args, "pacs"):
        from scanio.dicomweb.cache import clear_cache
        from scanio.dicomweb.errors import DicomWebCacheError

        try:
            done = clear_cache(getattr(args, "pacs_dir", None))
        except DicomWebCacheError as error:
            print(f"PACS downloads not cleared: {error}")
            return 2
        print(f"cleared {done.root}: {done.series} series, {done.files} files, {size_text(done.bytes)} freed")
        if done.busy:
            print(f"  kept {len(done.busy)} series being fetched now: {', '.join(done.busy)}")
        if done.outbox_files:
            print(f"  kept {done.outbox_files} SEG file(s) not yet sent in {done.root / 'seg-outbox'}")
    if _wanted(args, "engines"):
        from sam2core.lite_medsam.engines.export import clear_exports, default_cache_root

        folders, freed = clear_exports()
        print(f"cleared {default_cache_root() / 'lite_medsam'}: {folders} export(s), {size_text(freed)} freed "
              "(rebuilt on next use)")
    return 0
