"""An agent whose first completion is internal: it drafts, then answers.

The draft is streamed (its deltas are counted) but never passed to
`add_reply`, so it stays an intermediate, hidden message. With
`show_streaming_message: false` in metadata.json the view shows only the
counter while it streams, and the final answer once it is done.
"""

from nearai.agents.environment import Environment


def run(env: Environment) -> None:
    messages = env.list_messages()
    question = messages[-1]["content"] if messages else "Say hello."

    # Intermediate, non-user-facing completion: consumed here, never replied.
    draft = env.completion(
        [{"role": "system", "content": "List two key facts needed to answer. Be brief."}] + messages,
        stream=True,
        max_tokens=48,
    )
    notes = "".join(chunk.choices[0].delta.content or "" for chunk in draft if chunk.choices)

    answer = env.completion(
        [
            {"role": "system", "content": "Answer the question in two sentences using these notes:\n" + notes},
            {"role": "user", "content": question},
        ],
        stream=True,
        max_tokens=96,
    )
    env.add_reply(answer)


if globals().get("env", None):
    run(globals()["env"])
