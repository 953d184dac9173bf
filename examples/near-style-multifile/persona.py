"""The tutor's persona: the system prompt shipped with the agent, read by relative path.

On NEAR the agent ran in a copy of its folder, so a module could open its
files by relative path at import time; nearnb keeps that working without
changing the process's working directory.
"""

with open("prompts/system.txt", encoding="utf-8") as prompt_file:
    SYSTEM_PROMPT = prompt_file.read().strip()


def system_message() -> dict:
    return {"role": "system", "content": SYSTEM_PROMPT}
