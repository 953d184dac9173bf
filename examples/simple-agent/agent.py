"""A NEAR agent that does not stream: one completion, one reply.

Under `nearnb run --stream` (and in the notebook view) its final message is
still shown; NEAR's CLI showed nothing for non-streaming agents.
"""

from nearai.agents.environment import Environment


def run(env: Environment) -> None:
    prompt = {"role": "system", "content": "You are a helpful assistant. Answer in one or two sentences."}
    reply = env.completion([prompt] + env.list_messages())
    env.add_reply(reply)


if globals().get("env", None):
    run(globals()["env"])
