"""``python benchmarks/run.py [NAME ...] [--quick] [--list]``: run the benchmark scripts of this checkout.

Each script in ``benchmarks/`` compares qsim with its peer side by side in one run and writes
``benchmarks/results/<name>.json``; this runner finds them and runs them in turn.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

__all__ = ["main", "find_benchmarks"]


def find_benchmarks() -> dict[str, Path]:
    """name -> script of every benchmark in this folder (files starting with ``_`` are helpers)."""
    root = Path(__file__).resolve().parent
    return {p.stem: p for p in sorted(root.glob("*.py")) if not p.stem.startswith("_") and p.stem != "run"}


def _run(args) -> int:
    found = find_benchmarks()
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


def main(argv=None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="benchmarks/run.py", description=__doc__.splitlines()[0])
    p.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    p.add_argument("--quick", action="store_true", help="short versions")
    p.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = p.parse_args(argv)
    if args.list:
        print("\n".join(find_benchmarks()))
        return 0
    return _run(args)


if __name__ == "__main__":
    sys.exit(main())
