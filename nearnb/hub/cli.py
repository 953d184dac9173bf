"""``nearnb hub`` and ``nearnb attach``: argument parsing only; behaviour is in server/client.

``nearnb/cli.py`` calls :func:`add_hub_commands` with its subparsers.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from .guard import DEFAULT_MAX_BODY, MAX_BODY_ENV
from .server import DEFAULT_HOST, DEFAULT_PORT, MIN_TOKEN_LENGTH

TOKEN_ENV = "NEARNB_HUB_TOKEN"


def add_hub_commands(commands: Any) -> None:
    """Register ``hub`` and ``attach`` on an ``add_subparsers()`` object."""
    hub = commands.add_parser(
        "hub", help="serve threads, runs and their SSE streams (OpenAI Assistants API)"
    )
    hub.add_argument(
        "--host", default=DEFAULT_HOST, help=f"address to bind (default {DEFAULT_HOST})"
    )
    hub.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"default {DEFAULT_PORT}")
    hub.add_argument(
        "--agents",
        metavar="DIR",
        action="append",
        help="a folder of agents that runs may name (repeat for several); "
        "$NEARNB_HOME/agents is always served, the working directory never",
    )
    hub.add_argument(
        "--token",
        default=os.environ.get(TOKEN_ENV),
        help=f"require 'Authorization: Bearer TOKEN' (default ${TOKEN_ENV}); "
        f"needed to bind a non-loopback address, then at least {MIN_TOKEN_LENGTH} characters",
    )
    hub.add_argument(
        "--generate-token",
        action="store_true",
        help="without --token: make a random token and print it once on stderr",
    )
    hub.add_argument(
        "--max-body",
        metavar="BYTES",
        type=_positive_int,
        help=f"largest request body; larger ones get 413 (default ${MAX_BODY_ENV}, "
        f"else {DEFAULT_MAX_BODY})",
    )
    hub.add_argument(
        "--database",
        metavar="URL",
        help="store of record shared with other hubs and kernels: postgresql://USER:PASSWORD@"
        "HOST:PORT/DB (default $NEARNB_DATABASE_URL; unset: $NEARNB_HOME/nearnb.db)",
    )
    hub.add_argument(
        "--bus",
        metavar="URL",
        default=os.environ.get("NEARNB_BUS"),
        help="event bus shared with other hubs and run processes: redis://HOST:PORT/DB "
        "(default $NEARNB_BUS; unset: the store itself, polled)",
    )
    hub.set_defaults(func=_cmd_hub)

    attach = commands.add_parser("attach", help="follow or replay a run from a hub")
    attach.add_argument(
        "url",
        nargs="+",
        help="…/v1/threads/<tid>/stream/<rid>, or a hub URL with --thread/--run; "
        "several hubs sharing a bus: the next is tried when one fails",
    )
    attach.add_argument("--thread", metavar="ID")
    attach.add_argument("--run", metavar="ID")
    attach.add_argument("--token", default=os.environ.get(TOKEN_ENV))
    attach.add_argument(
        "--speed", type=float, help="replay a finished run at this speed (1 = original pace)"
    )
    attach.add_argument(
        "--cancel",
        action="store_true",
        help="Ctrl-C cancels the run (wherever it executes) and shows it end; "
        "a second Ctrl-C stops watching",
    )
    attach.set_defaults(func=_cmd_attach)


def _positive_int(raw: str) -> int:
    if not raw.isascii() or not raw.isdigit() or int(raw) < 1:
        raise argparse.ArgumentTypeError(f"must be a positive number of bytes, not {raw!r}")
    return int(raw)


def _cmd_hub(args: argparse.Namespace) -> int:
    from ..store import DATABASE_URL_ENV, DatabaseError
    from .server import HubError, serve

    if args.database:  # the hub's store, and that of the runs it executes
        os.environ[DATABASE_URL_ENV] = args.database
    try:
        serve(
            args.host,
            args.port,
            args.agents,
            args.token,
            max_body=args.max_body,
            generate_token=args.generate_token,
            bus=args.bus,
        )
    except (HubError, DatabaseError) as exc:
        print(f"nearnb hub: {exc}", file=sys.stderr)
        return 2
    return 0


def _cmd_attach(args: argparse.Namespace) -> int:
    from .client import AttachError, attach

    renderer: Any = None
    try:
        from ..view.terminal import ReaderSafe, TerminalRenderer

        renderer = TerminalRenderer(stream=ReaderSafe(sys.stdout))  # type: ignore[arg-type]
    except ImportError:
        pass
    try:
        result = attach(
            args.url[0] if len(args.url) == 1 else args.url,
            thread_id=args.thread,
            run_id=args.run,
            token=args.token,
            speed=args.speed,
            display=renderer,
            cancel=args.cancel or None,  # None: no Stop button here; Ctrl-C watches only
        )
    except (AttachError, ValueError) as exc:
        print(f"nearnb attach: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    if renderer is None:
        for message in result.messages:
            print(message.text, end="\n\n")
    if result.status == "completed":
        return 0
    print(
        f"nearnb attach: run {result.run_id} {result.status}: {result.error or ''}".rstrip(),
        file=sys.stderr,
    )
    return 1
