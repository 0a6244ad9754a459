"""`continuum`: the command line of the control plane (local runtime by default, `--aws` for SageMaker)."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, Sequence

from pipelines.config import DEMO_CONFIG_PATH, ConfigError, config_path_for


def build_parser() -> argparse.ArgumentParser:
    """The parser frame and global options; every subcommand comes from a module of `pipelines.commands`."""
    from pipelines.commands import command_modules

    parser = argparse.ArgumentParser(prog="continuum", description=__doc__)
    parser.add_argument("--home", help="local home (default $CONTINUUM_HOME or ./.continuum)")
    parser.add_argument("--verbose", action="store_true",
                        help="steps also print debug lines, library warnings and progress bars ($CONTINUUM_VERBOSE=1)")
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, handler: Any, help_text: str) -> argparse.ArgumentParser:
        child = sub.add_parser(name, help=help_text, description=help_text)
        child.add_argument("--config", help="config YAML (default: $CONTINUUM_CONFIG, else ./continuum.yaml, "
                                            "else the demo's)")
        child.set_defaults(handler=handler)
        return child

    for module in command_modules():
        module.register(command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.verbose:  # the steps' processes inherit it (train.py --verbose defaults to it)
        os.environ["CONTINUUM_VERBOSE"] = "1"
    if args.command not in ("demo", "init") and hasattr(args, "config"):
        args.config = str(config_path_for(args.config))
        if Path(args.config) == DEMO_CONFIG_PATH and args.command in ("run", "deploy"):
            print(f"using the demo's config ({DEMO_CONFIG_PATH.name}): no ./continuum.yaml here "
                  "(`continuum init DIR --data PATH` writes one for your data)", file=sys.stderr)
    try:
        return int(args.handler(args))
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 (one or two lines for people; the traceback with --verbose)
        if args.verbose:
            raise
        from pipelines.cli_support import describe_error

        print(f"error: {describe_error(exc)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
