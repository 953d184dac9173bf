"""``%near_agent`` and ``%%near_agent``: parse arguments, call :mod:`nearnb.api`.

::

    %load_ext nearnb
    %near_agent examples/streaming-example "What is virtue?"

    %%near_agent examples/streaming-example [--thread ID | --new-thread] [--model M]
                 [--provider P] [--display widget|handle|plain] [--no-wait]
    What is virtue?

    %near_agent --attach http://127.0.0.1:8081/v1 --thread thread_... --run run_...

    %%near_agent agent-a agent-b [--model m1,m2] [--provider p1,p2]
    What is virtue?

Several agents, or a comma list of ``--model`` / ``--provider`` values, run
side by side (:func:`nearnb.compare`): one column per combination, each in a
new thread, and the cell's value is a :class:`~nearnb.comparing.Comparison`. In
the line form the leading words that name agent folders are the agents and
the rest is the message.

Behaviour lives in the public API (``nearnb.api.run_agent``); this module
only turns a magic line into its arguments, and keeps the one piece of
notebook state a magic owns: which thread each agent talked in last, so
consecutive cells with the same agent continue one conversation.

Mistakes (unknown option, missing agent, bad metadata) raise IPython's
``UsageError``, which IPython prints as one line with no traceback. A run that
fails *inside* the agent is not a mistake of the caller: it ends ``failed``,
the view shows its error, and the cell still returns the ``RunResult``.
"""

from __future__ import annotations

import argparse
import shlex
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class

from .view import DISPLAY_MODES

USAGE_HINT = "see %near_agent --help"


class _HelpShown(Exception):
    """argparse printed --help; the magic returns nothing."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports errors as one ``UsageError`` line, never exits."""

    def error(self, message: str) -> Any:
        raise UsageError(f"%near_agent: {message} ({USAGE_HINT})")

    def exit(self, status: int = 0, message: str | None = None) -> Any:
        if status:
            raise UsageError(f"%near_agent: {(message or 'invalid arguments').strip()}")
        raise _HelpShown


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="%near_agent",
        # given explicitly ("%%" is argparse's escape): the generated one would
        # be %-formatted with the "%n" of the prog name inside it
        usage=(
            '%%near_agent AGENT "message" [options]\n'
            "       %%%%near_agent AGENT [options]   (the cell body is the message)\n"
            "       %%near_agent --attach URL [--thread ID] [--run ID]\n"
            "       %%%%near_agent AGENT_A AGENT_B ... [--model M1,M2] [--provider P1,P2]"
        ),
        description=(
            "Run a NEAR-style agent and stream it into this cell. Line magic: "
            '%near_agent AGENT "message". Cell magic: %%near_agent AGENT [options], '
            "with the cell body as the message. The cell's value is the RunResult. "
            "Several agents, or comma lists of models or providers, run side by side in "
            "columns (one per combination, each in a new thread); the value is then a "
            "Comparison."
        ),
        epilog=(
            "Consecutive cells with the same agent continue the same thread. "
            "Stop a run with the view's Stop button or by interrupting the kernel."
        ),
    )
    parser.add_argument(
        "agent",
        nargs="?",
        metavar="AGENT",
        help="agent folder, or the name of a folder under the configured agents dirs "
        "($NEARNB_AGENTS_DIR, [agents] dirs in $NEARNB_HOME/config.toml)",
    )
    parser.add_argument(
        "message", nargs="*", metavar="MESSAGE", help="the user message (line magic only)"
    )
    thread = parser.add_mutually_exclusive_group()
    thread.add_argument("--thread", metavar="ID", help="continue this thread")
    thread.add_argument(
        "--new-thread",
        action="store_true",
        help="start a new thread instead of continuing the agent's last one",
    )
    parser.add_argument(
        "--model",
        metavar="M",
        help="model, e.g. gpt-4o-mini or local::smollm2; a comma list runs one column each",
    )
    parser.add_argument(
        "--provider",
        metavar="P",
        help="provider name (openai, fireworks, local, ...); a comma list runs one column each",
    )
    parser.add_argument(
        "--display",
        choices=[m for m in DISPLAY_MODES if m != "terminal"],
        help="view: live widget, display handle, or the final result only "
        "(default: $NEARNB_DISPLAY, else widget)",
    )
    parser.add_argument(
        "--no-wait",
        action="store_true",
        help="return the RunHandle (side by side: the ComparisonRun) at once; the view "
        "keeps streaming",
    )
    parser.add_argument(
        "--attach", metavar="URL", help="follow a run on a hub instead (with --thread and --run)"
    )
    parser.add_argument("--run", metavar="ID", help="run id to attach to (with --attach)")
    return parser


def parse(line: str) -> argparse.Namespace | None:
    """Parse a magic line; None when ``--help`` was shown."""
    try:
        argv = shlex.split(line)
    except ValueError as exc:  # unbalanced quotes
        raise UsageError(f"%near_agent: {exc} ({USAGE_HINT})") from None
    try:
        return build_parser().parse_intermixed_args(argv)
    except _HelpShown:
        return None


@magics_class
class NearAgentMagics(Magics):
    """The ``%near_agent`` magics; remembers each agent's last thread."""

    def __init__(self, shell: Any = None) -> None:
        super().__init__(shell)
        #: resolved agent folder -> the thread its last cell used
        self.threads: dict[str, str] = {}

    @line_cell_magic
    def near_agent(self, line: str, cell: str | None = None) -> Any:
        """Run a NEAR-style agent live in this cell (``%near_agent --help``)."""
        args = parse(line)
        if args is None:
            return None
        if args.attach:
            return self._attach(args)
        if args.run:
            raise UsageError(f"%near_agent: --run needs --attach ({USAGE_HINT})")
        if not args.agent:
            raise UsageError(f"%near_agent: missing AGENT, a folder or agent name ({USAGE_HINT})")
        # Words after AGENT that name agent folders are more agents (columns side by side).
        agents, words = [args.agent], list(args.message)
        while words and _names_agent(words[0]):
            agents.append(words.pop(0))
        if cell is not None and words:
            raise UsageError(
                f"%%near_agent: {words[0]!r} is not an agent folder; put the message in the "
                f"cell body, not after AGENT ({USAGE_HINT})"
            )
        message = (cell if cell is not None else " ".join(words)).strip() or None
        if len(agents) > 1 or "," in (args.model or "") or "," in (args.provider or ""):
            return self._compare(args, agents, message)
        return self._run(args, message)

    def _compare(self, args: argparse.Namespace, agents: list[str], message: str | None) -> Any:
        from .agents import AgentError, find_agent
        from .comparing import compare
        from .store import StoreError

        if args.thread:
            raise UsageError(
                "%near_agent: --thread cannot be used side by side: each column runs in a "
                f"new thread ({USAGE_HINT})"
            )
        try:
            folders = [find_agent(agent) for agent in agents]
        except AgentError as exc:
            raise UsageError(f"%near_agent: {exc}") from None
        try:
            return compare(
                folders,
                message,
                model=args.model,
                provider=args.provider,
                display=args.display,
                wait=not args.no_wait,
            )
        except (ValueError, StoreError) as exc:  # AgentError, too many columns, bad display
            raise UsageError(f"%near_agent: {_one_line(exc)}") from None

    def _run(self, args: argparse.Namespace, message: str | None) -> Any:
        from .agents import AgentError, find_agent
        from .api import run_agent
        from .store import StoreError

        try:
            folder = find_agent(args.agent)
        except AgentError as exc:
            raise UsageError(f"%near_agent: {exc}") from None
        key = str(folder)
        thread_id = args.thread or (None if args.new_thread else self.threads.get(key))
        try:
            outcome = run_agent(
                folder,
                message,
                thread_id=thread_id,
                model=args.model,
                provider=args.provider,
                display=args.display,
                wait=not args.no_wait,
            )
        except (ValueError, StoreError) as exc:  # AgentError, ConfigError, bad display
            raise UsageError(f"%near_agent: {_one_line(exc)}") from None
        self.threads[key] = outcome.thread_id
        return outcome

    def _attach(self, args: argparse.Namespace) -> Any:
        if args.agent or args.message:
            raise UsageError(f"%near_agent: --attach takes a URL, not AGENT ({USAGE_HINT})")
        from .hub import client

        return client.attach(
            args.attach, thread_id=args.thread, run_id=args.run, display=args.display or "auto"
        )


def _names_agent(word: str) -> bool:
    """True when ``word`` (in the line form, after AGENT) names another agent folder,
    so ``%near_agent a b What is virtue?`` compares a and b on "What is virtue?"."""
    from .agents import AgentError, find_agent

    if word.startswith("-"):
        return False
    try:
        folder = find_agent(word)
    except (AgentError, OSError, ValueError):
        return False
    return (folder / "metadata.json").is_file() and (folder / "agent.py").is_file()


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext nearnb``: register the magics (RunResult's repr is its own)."""
    ipython.register_magics(NearAgentMagics(ipython))
