"""`napari-sam2 models list|download|verify`: what weights exist, fetch them, check them."""

from __future__ import annotations

import argparse
import sys


def add_parser(subparsers) -> None:
    """Register `models` and its three subcommands."""
    parser = subparsers.add_parser(
        "models",
        help="list, download and verify model checkpoints",
        description="Model checkpoints: list what is known and cached, download into the per-user "
        "cache (NAPARI_SAM2_HOME overrides its place), verify sizes and sha256.",
    )
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])
    sub = parser.add_subparsers(dest="models_command", metavar="ACTION")

    list_parser = sub.add_parser("list", help="known models: size, cached?, where")
    list_parser.set_defaults(func=_list)

    download_parser = sub.add_parser("download", help="download a checkpoint into the cache")
    download_parser.add_argument("name", nargs="+", help="model name(s), see `napari-sam2 models list`")
    download_parser.add_argument("--force", action="store_true",
                                 help="download again even if a valid file is cached")
    download_parser.set_defaults(func=_download)

    verify_parser = sub.add_parser("verify", help="re-check size and sha256 of cached checkpoints")
    verify_parser.add_argument("name", nargs="?", help="one model (default: all)")
    verify_parser.set_defaults(func=_verify)


def _list(args: argparse.Namespace) -> int:
    from sam2core.store import cache_dir, list_registry, model_status
    from sam2core.store.download import size_text

    rows = []
    for entry in list_registry():
        status = model_status(entry.name)
        size = size_text(entry.size_bytes if entry.size_bytes is not None else entry.approx_size_bytes)
        if entry.size_bytes is None:
            size = "~" + size
        rows.append((entry.name, size, status.state, str(status.where) if status.where else "-"))
    header = ("NAME", "SIZE", "STATUS", "WHERE")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(3)]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths)) + "  " + row[3])
    print(f"\ncache: {cache_dir()}  (set NAPARI_SAM2_HOME to change it)")
    return 0


def _download(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from sam2core.errors import Sam2CoreError, UnknownModelError
    from sam2core.store import download_model, get_entry

    exit_code = 0
    for name in args.name:
        try:
            entry = get_entry(name)
        except UnknownModelError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        bar = tqdm(total=entry.size_bytes or entry.approx_size_bytes, unit="B", unit_scale=True,
                   unit_divisor=1024, desc=name, file=sys.stderr)

        def progress(done: int, total, bar=bar) -> None:
            if total and bar.total != total:
                bar.total = total
            bar.update(done - bar.n)

        try:
            path = download_model(name, progress=progress, force=args.force)
        except Sam2CoreError as exc:
            bar.close()
            print(f"error: {exc}", file=sys.stderr)
            exit_code = 1
            continue
        except KeyboardInterrupt:
            bar.close()
            print("\ninterrupted; run the same command again to resume", file=sys.stderr)
            return 130
        bar.close()
        print(f"{name}: {path}")
    return exit_code


def _verify(args: argparse.Namespace) -> int:
    from sam2core.errors import UnknownModelError
    from sam2core.store import verify_cached
    from sam2core.store.verify import CORRUPT, MISSING

    from tqdm import tqdm

    bars: dict[str, tqdm] = {}

    def progress(name: str, done: int, total: int) -> None:
        bar = bars.get(name)
        if bar is None:
            bar = bars[name] = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024,
                                    desc=f"hashing {name}", file=sys.stderr, leave=False)
        bar.update(done - bar.n)

    try:
        results = verify_cached(args.name, progress=progress)
    except UnknownModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        for bar in bars.values():
            bar.close()
    bad = False
    for result in results:
        status = "not downloaded" if result.status == MISSING else result.status
        print(f"{result.name:24s} {status:14s} {result.message if result.status != MISSING else ''}".rstrip())
        bad |= result.status == CORRUPT or (args.name is not None and not result.ok)
    return 1 if bad else 0
