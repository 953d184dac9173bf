"""A NEAR agent written the way public NEAR agents were: several files, relative paths.

* ``persona.py`` (imported as a top-level module) reads ``prompts/system.txt``;
* ``settings.json`` is opened by relative path here;
* the answer is written to the thread and a note of it saved as a file.

Runs unchanged on NEAR AI and on nearnb.
"""

import json

from nearai.agents.environment import Environment
from persona import system_message

with open("settings.json", encoding="utf-8") as settings_file:
    SETTINGS = json.load(settings_file)


class Agent:
    def __init__(self, env: Environment):
        self.env = env

    def run(self):
        history = self.env.list_messages()[-SETTINGS["history"] :]
        reply = self.env.completion(
            [system_message()] + history, temperature=SETTINGS["temperature"]
        )
        self.env.add_reply(reply)
        with open("last_answer.txt", "w", encoding="utf-8") as note:  # lands in the thread's files
            note.write(reply)


if globals().get("env", None):
    Agent(globals().get("env")).run()
