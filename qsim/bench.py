"""``qsim bench [NAME ...] [--quick]``: run the benchmark scripts of a source checkout.

Each script in ``benchmarks/`` compares qsim with its peer side by side in one run and writes
``benchmarks/results/<name>.json``; this sub-command finds them and runs them in turn.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

__all__ = ["register", "find_benchmarks"]


def find_benchmarks() -> dict[str, Path]:
    """name -> script for the ``benchmarks/`` folder beside the installed package (source checkouts)."""
    root = Path(__file__).resolve().parent.parent / "benchmarks"
    if not root.is_dir():
        return {}
    return {p.stem: p for p in sorted(root.glob("*.py")) if not p.stem.startswith("_")}


def _run(args) -> int:
    found = find_benchmarks()
    if not found:
        raise FileNotFoundError("no benchmarks/ folder next to this qsim installation; run from a source "
                                "checkout (pip install -e .)")
    names = args.names or sorted(found)
    unknown = [n for n in names if n not in found]
    if unknown:
        raise ValueError(f"unknown benchmark(s) {unknown}; available: {sorted(found)}")
    for name in names:
        print(f"== benchmark {name} ==", flush=True)
        argv = sys.argv
        try:
            sys.argv = [str(found[name])] + (["--quick"] if args.quick else [])
            runpy.run_path(str(found[name]), run_name="__main__")
        finally:
            sys.argv = argv
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("bench", help="run benchmark scripts (side-by-side with peers)",
                              description=__doc__.splitlines()[0])
    p.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    p.add_argument("--quick", action="store_true", help="short versions")
    p.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    p.set_defaults(func=lambda a: (print("\n".join(find_benchmarks())) or 0) if a.list else _run(a))
