"""An orchestrator: hands a question to two sub-agents and writes its own progress.

Each sub-agent is a run of its own (its own thread, event log and stream at
/threads/{thread}/stream/{run}); this run's stream carries one run step per
sub-agent that names it, so the notebook view nests each one, live, under
that step. The progress lines are deltas this agent writes itself
(env.stream_reply), not model output.
"""

from pathlib import Path

from nearai.agents.environment import Environment
from nearai.shared.models import ThreadMode

HERE = Path(__file__).parent


class Agent:
    def __init__(self, env: Environment):
        self.env = env

    def ask(self, name: str, query: str) -> str:
        """Run the sub-agent in folder ``name`` on a thread of its own; its last answer."""
        with self.env.stream_reply() as progress:
            progress.write(f"Asking the {name}…")
        folder = str(HERE / name)
        thread_id = self.env.run_agent(folder, query=query, thread_mode=ThreadMode.CHILD)
        messages = self.env.list_messages(thread_id=thread_id)
        replies = [m for m in messages if m["role"] == "assistant"]
        return replies[-1]["content"] if replies else f"(the {name} said nothing)"

    def run(self):
        question = self.env.get_last_message()["content"]
        plan = ("Plan: ", "the storyteller answers in words, ", "the calculator adds with a tool.")
        with self.env.stream_reply() as progress:
            for piece in plan:
                progress.write(piece)
        story = self.ask("storyteller", question)
        total = self.ask("calculator", "What is 19 plus 23?")
        # A reply streamed from any iterable of strings: each piece is a delta.
        self.env.add_reply(iter(["Storyteller: ", story.strip(), "\n\nCalculator: ", total]))


if globals().get("env", None):
    Agent(globals().get("env")).run()
