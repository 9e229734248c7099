"""`napari-sam2 cache info|clear`: the on-disk store of image embeddings (see sam2core.predictor.embedding_store)."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    """Register `cache` and its two subcommands."""
    parser = subparsers.add_parser(
        "cache",
        help="show or clear the stored image embeddings",
        description="Image embeddings are kept on disk so a scan is encoded once "
        "(NAPARI_SAM2_EMBEDDINGS_DIR overrides the folder, NAPARI_SAM2_EMBEDDINGS_MAX_GB the size limit; "
        "the least recently used scans are evicted first).",
    )
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])
    sub = parser.add_subparsers(dest="cache_command", metavar="ACTION")
    info = sub.add_parser("info", help="folder, scans, slices and size of the embedding store")
    info.add_argument("--dir", help="another store folder")
    info.set_defaults(func=_info)
    clear = sub.add_parser("clear", help="delete every stored embedding")
    clear.add_argument("--dir", help="another store folder")
    clear.set_defaults(func=_clear)


def _store(args: argparse.Namespace):
    from sam2core.predictor.embedding_store import EmbeddingStore

    return EmbeddingStore(args.dir) if args.dir else EmbeddingStore()


def _info(args: argparse.Namespace) -> int:
    from sam2core.store.download import size_text

    info = _store(args).info()
    print(f"folder: {info.root}")
    print(f"scans:  {info.groups}")
    print(f"slices: {info.slices}")
    print(f"size:   {size_text(info.bytes)} (limit {size_text(info.max_bytes)})")
    return 0


def _clear(args: argparse.Namespace) -> int:
    from sam2core.store.download import size_text

    store = _store(args)
    freed = store.clear()
    print(f"cleared {store.root}: {size_text(freed)} freed")
    return 0
