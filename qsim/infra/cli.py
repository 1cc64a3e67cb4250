"""The ``qsim`` command line: ``qsim vmc|vqe|hypernet|flow|plot ...``.

Each sub-command lives beside its package and exposes ``register(subparsers)``; the packages declare
them in the ``qsim.commands`` entry-point group of pyproject.toml, so this module names no application.
They are loaded when the parser is built, and one broken optional package never breaks the rest.
Common options (``--out``, ``--seed``, ``--config FILE.toml`` and dotted ``key=value`` overrides)
come from :func:`add_common_arguments` and :func:`resolve_config`; so does the device switch
(``--devices N`` and the multi-host flags, see :mod:`qsim.infra.meshes`), which :func:`main` turns into
the mesh the sub-command runs under.
"""

from __future__ import annotations

import argparse
import ast
import logging
import sys
import tomllib
from importlib import metadata
from typing import Any, Sequence

import os

from qsim.infra import meshes as distributed
from qsim.infra.driver import NonFiniteError, interruptible
from qsim.infra.meshes import add_arguments as add_device_arguments
from qsim.infra.validation import merge

__all__ = ["main", "add_common_arguments", "resolve_config", "COMMANDS_GROUP", "build_parser"]

COMMANDS_GROUP = "qsim.commands"  # entry points: name = "module:register"
_log = logging.getLogger(__name__)


def add_common_arguments(parser: argparse.ArgumentParser, default_out: str | None = None) -> None:
    parser.add_argument("--out", default=default_out, help="run directory (config, metrics, summary, "
                        "checkpoints, figures); an existing one of the same run resumes")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default 0, or the config file's)")
    parser.add_argument("--config", default=None, help="TOML file with configuration values")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress display (a bar on a terminal, else a line every 30 s)")
    parser.add_argument("overrides", nargs="*", default=[],
                        help="dotted overrides key=value (e.g. network.width=64)")

    add_device_arguments(parser)


def _parse_value(text: str) -> Any:
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _set_dotted(cfg: dict, key: str, value: Any, known: dict) -> None:
    parts = key.split(".")
    node, ref = cfg, known
    for i, p in enumerate(parts):
        if not isinstance(ref, dict) or p not in ref:
            raise ValueError(f"unknown configuration key {key!r}; known keys: {sorted(_flat_keys(known))}")
        if i == len(parts) - 1:
            node[p] = value
        else:
            node = node.setdefault(p, {})
            ref = ref[p]


def _flat_keys(d: dict, prefix: str = "") -> list[str]:
    out = []
    for k, v in d.items():
        if isinstance(v, dict):
            out += _flat_keys(v, prefix + k + ".")
        else:
            out.append(prefix + k)
    return out


def resolve_config(defaults: dict, args: argparse.Namespace, cli_keys: Sequence[str] = ()) -> dict:
    """defaults <- TOML file <- explicit command-line options (``cli_keys``) <- dotted overrides.

    Unknown keys are an error naming the key. ``seed`` is always included.
    """
    cfg = merge(defaults, {})
    cfg.setdefault("seed", 0)
    if getattr(args, "config", None):
        with open(args.config, "rb") as f:
            cfg = merge(cfg, tomllib.load(f), where=str(args.config))
    for key in cli_keys:
        val = getattr(args, key.replace(".", "_").replace("-", "_"), None)
        if val is not None:
            _set_dotted(cfg, key, val, cfg)
    if getattr(args, "seed", None) is not None:
        cfg["seed"] = args.seed
    for item in getattr(args, "overrides", []) or []:
        if "=" not in item:
            raise ValueError(f"override {item!r} is not of the form key=value")
        k, v = item.split("=", 1)
        _set_dotted(cfg, k.strip(), _parse_value(v.strip()), cfg)
    return cfg


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qsim", description="qsim: neural quantum Monte Carlo, quantum "
                                     "machine learning and quantum simulation on one JAX core")
    parser.add_argument("--version", action="version", version=f"qsim {metadata.version('qsim')}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    found = sorted(metadata.entry_points(group=COMMANDS_GROUP), key=lambda ep: ep.name)
    if not found:
        raise RuntimeError(f"no qsim sub-commands are installed (entry-point group {COMMANDS_GROUP!r} is empty); "
                           "reinstall the package: pip install -e .")
    for ep in found:
        if ep.name in sub.choices:
            continue  # the same distribution seen twice on sys.path
        try:
            register = ep.load()
        except ImportError as e:  # an optional package that is not installed
            _log.warning("qsim %s is unavailable: %s", ep.name, e)
            continue
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        parser = build_parser()
    except RuntimeError as e:
        print(f"qsim: error: {e}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        with interruptible():  # SIGTERM ends a command like Ctrl-C: status "interrupted", exit 130
            return _run_command(args)
    except (ValueError, TypeError, FileNotFoundError) as e:
        print(f"qsim {args.command}: error: {e}", file=sys.stderr)
        return 2
    except NonFiniteError as e:  # the driver's NaN guard stopped the training; the run dir says "failed"
        print(f"qsim {args.command}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"qsim {args.command}: interrupted; the run directory keeps the last checkpoint",
              file=sys.stderr)
        return 130


def _run_command(args: argparse.Namespace) -> int:
    if hasattr(args, "devices"):  # sub-commands with the common arguments
        # before JAX starts its backends (GPU memory is allocated as needed, not up front)
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
        with distributed.using(distributed.setup(args)):
            return int(args.func(args) or 0)
    return int(args.func(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
