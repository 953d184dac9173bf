"""``python -m nearnb.hub [--host H] [--port P] [--agents DIR]... [--token T] [--max-body N]``.

The same as ``nearnb hub``; tests use it to run a hub in a separate process.
"""

from __future__ import annotations

import argparse
import sys

from .cli import add_hub_commands


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nearnb.hub")
    commands = parser.add_subparsers(dest="command", required=True)
    add_hub_commands(commands)
    args = parser.parse_args(["hub", *(sys.argv[1:] if argv is None else argv)])
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
