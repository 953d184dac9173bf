"""The ``nearnb`` command: the same public API as the notebook, in a terminal.

``nearnb run AGENT "message" [--stream]`` and ``nearnb agent interactive
AGENT`` run agents in-process; ``nearnb hub`` serves runs over SSE,
``nearnb attach URL`` replays one and ``nearnb export RUN_ID -o FILE`` writes a
stored run as a recorded-run file. Argument parsing lives here; behaviour
lives in the library.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from .agents import Agent, AgentError, load_agent
from .dburl import DatabaseError
from .runs import RunResult, start_run


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--thread", metavar="ID", help="continue this thread (default: a new one)")
    parser.add_argument("--model", metavar="M", help="model, or provider::model")
    parser.add_argument(
        "--provider", metavar="P", help="provider name (openai, fireworks, local, ...)"
    )
    parser.add_argument(
        "--stream", action="store_true", help="print the text as it arrives, not only at the end"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nearnb", description="Run NEAR-AI-style agents with streaming, locally."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run an agent once on a message")
    run.add_argument("agent", help="agent folder (agent.py + metadata.json) or agent name")
    run.add_argument("message", help="the user message")
    _add_run_options(run)
    run.set_defaults(func=_cmd_run)

    agent = commands.add_parser("agent", help="agent commands")
    agent_commands = agent.add_subparsers(dest="agent_command", required=True, metavar="SUBCOMMAND")
    interactive = agent_commands.add_parser("interactive", help="chat with an agent in a REPL")
    interactive.add_argument("agent", help="agent folder or agent name")
    _add_run_options(interactive)
    interactive.set_defaults(func=_cmd_interactive)

    export = commands.add_parser(
        "export", help="write a stored run as a JSON Lines file (replay it, re-run it offline)"
    )
    export.add_argument("run_id", metavar="RUN_ID", help="the run (run_...)")
    export.add_argument("-o", "--output", metavar="FILE", help="where to write (default: stdout)")
    export.set_defaults(func=_cmd_export)

    try:
        from .hub.cli import add_hub_commands
    except ImportError:  # the hub extra is part of the base install; tolerate partial checkouts
        pass
    else:
        add_hub_commands(commands)
    return parser


def _stdout() -> TextIO:
    """Standard output that a reader may stop reading (``| head``): see ``ReaderSafe``."""
    from .view.terminal import ReaderSafe

    return ReaderSafe(sys.stdout)  # type: ignore[return-value]


def _run_once(
    args: argparse.Namespace, message: str, thread_id: str | None, out: TextIO
) -> RunResult:
    renderer: Callable | None = None
    agent = args.agent if isinstance(args.agent, Agent) else load_agent(args.agent)
    if args.stream:
        from .view.terminal import TerminalRenderer

        # Unlike NEAR's CLI we honour show_streaming_message: an agent that marks
        # its intermediate completions as not user-facing gets only its answers.
        renderer = TerminalRenderer(stream=out, show_streaming_message=agent.show_streaming_message)
    handle = start_run(
        agent, message, thread_id=thread_id, model=args.model, provider=args.provider
    )
    followed: list[Any] = []
    if renderer is not None:  # the run, and each sub-agent run as its step names it
        from .api import Follow

        handle.subscribe(Follow(handle, renderer, followed), replay=True)
    result = handle.wait()
    if followed:
        for child in followed:
            child.wait(10.0)  # their views take their last events
        result = handle.result()
    if renderer is not None:
        renderer.finish(result)
    else:
        if result.notice:
            print(f"note: {result.notice}", file=sys.stderr)
        for message_ in result.messages:
            print(message_.text, file=out)
            print(file=out)
    return result


def _report_failure(result: RunResult) -> int:
    if result.status == "completed":
        return 0
    print(
        f"nearnb: run {result.run_id} {result.status}: {result.error or ''}".rstrip(),
        file=sys.stderr,
    )
    if result.traceback:
        print(result.traceback.rstrip(), file=sys.stderr)
    return 1 if result.status == "failed" else 130


def _cmd_run(args: argparse.Namespace) -> int:
    result = _run_once(args, args.message, args.thread, _stdout())
    return _report_failure(result)


def _cmd_export(args: argparse.Namespace) -> int:
    from .export import export_lines, export_run
    from .store import default_store

    if args.output and args.output != "-":
        path = export_run(args.run_id, args.output)
        print(f"nearnb: wrote run {args.run_id} to {path}", file=sys.stderr)
    else:
        _stdout().writelines(export_lines(default_store(), args.run_id))
    return 0


def _cmd_interactive(args: argparse.Namespace) -> int:
    agent = load_agent(args.agent)
    print(f"=== Interactive session with agent: {agent.identifier} ===")
    print("Type 'exit' to quit.")
    if agent.welcome_title:
        print(agent.welcome_title)
    if agent.welcome_description:
        print(agent.welcome_description)
    thread_id = args.thread
    args.agent = agent
    while True:
        try:
            line = input("> ")
        except EOFError:
            print()
            return 0
        if line.strip() == "exit":
            return 0
        if not line.strip():
            continue
        result = _run_once(args, line, thread_id, _stdout())
        thread_id = result.thread_id
        if result.status != "completed":
            _report_failure(result)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (AgentError, DatabaseError) as exc:  # DatabaseError: a bad $NEARNB_DATABASE_URL
        print(f"nearnb: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except LookupError as exc:  # unknown thread / run
        print(f"nearnb: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
