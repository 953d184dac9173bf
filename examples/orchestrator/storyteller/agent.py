"""A sub-agent that streams its answer (a child run of the orchestrator)."""

from nearai.agents.environment import Environment


class Agent:
    def __init__(self, env: Environment):
        self.env = env

    def run(self):
        prompt = {"role": "system", "content": "Answer in two short sentences, like a storyteller."}
        stream = self.env.completion([prompt] + self.env.list_messages(), stream=True)
        self.env.add_reply(stream)


if globals().get("env", None):
    Agent(globals().get("env")).run()
