"""A sub-agent that calls a tool through env.completion_and_run_tools.

The model is shown one worked example of the tool-call format, so even the
small embedded model writes the call (nearnb reads <tool_call> tags from
text when a model has no native tool calls). The tool's call and output are
a run step of this run's stream, shown apart from the answer.
"""

from nearai.agents.environment import Environment

EXAMPLE = '<tool_call>{"name": "add", "arguments": {"a": 1, "b": 1}}</tool_call>'


def add(a: int, b: int) -> int:
    """Add two whole numbers.

    a: the first number
    b: the second number
    """
    return a + b


class Agent:
    def __init__(self, env: Environment):
        self.env = env

    def run(self):
        registry = self.env.get_tool_registry()
        registry.register_tool(add)
        messages = [
            {"role": "system", "content": "You call tools. Reply with one line: " + EXAMPLE},
            {"role": "user", "content": "What is 1 plus 1?"},
            {"role": "assistant", "content": EXAMPLE},
            *self.env.list_messages(),
        ]
        self.env.completion_and_run_tools(
            messages, tools=registry.get_all_tool_definitions(), temperature=0.0, max_tokens=40
        )
        call, result = messages[-2], messages[-1]  # the tool call and its output, appended
        if result["role"] == "tool":
            args = call["tool_calls"][0]["function"]["arguments"]
            self.env.add_reply(f"add({args}) = {result['content']}")
        else:
            self.env.add_reply("I could not call the tool.")


if globals().get("env", None):
    Agent(globals().get("env")).run()
