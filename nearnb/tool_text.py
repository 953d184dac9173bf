"""Tool calls written as text: the prompt NEAR gave llama models, and reading the answers.

Not every model returns structured ``tool_calls``. NEAR told llama-family
models (a model name containing ``llama``) in a system message how to call a
function - ``<function=name>{"arg": "value"}</function>``, one call a line -
and parsed that from the answer's text. Hermes-style models (Qwen, SmolLM)
write ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` instead;
both are read here, so an agent gets the same tool calls whichever way the
model wrote them.
"""

from __future__ import annotations

import json
import re
from typing import Any

_TOOL_CALL_TAG = re.compile(r"<tool_call>\s*(.*?)\s*</tool_call>", re.DOTALL)
_FUNCTION_TAG = re.compile(r"<function=([\w.-]+)>")
_FUNCTION_END = "</function>"
_DECODER = json.JSONDecoder()


def is_llama_model(model: str) -> bool:
    """Whether NEAR would have prompted ``model`` for text tool calls.

    NEAR tested ``"llama" in model``; case is ignored here, so names such as
    ``Meta-Llama-3.1-8B-Instruct`` count too.
    """
    return "llama" in model.lower()


def llama_tool_prompt(tools: list[dict[str, Any]]) -> str:
    """The system message telling a llama model how to call ``tools`` in text.

    Same contract as NEAR's prompt (the ``<function=...>`` format, JSON
    arguments, one call a line), in nearnb's words.
    """
    return (
        "Answer the user's question, using the functions below when they help. "
        "If none of them fits, say so.\n"
        f"The functions, in JSON: {json.dumps(tools)}\n"
        "Think carefully before calling a function. To call one, reply ONLY with the call, "
        "with nothing before or after it, in this format:\n"
        '<function=example_function_name>{"example_name": "example_value"}</function>\n'
        "Rules:\n"
        "- a call starts with <function= and ends with </function>\n"
        "- the arguments are a JSON object with double quotes\n"
        "- give every required parameter\n"
        "- several calls may go in one reply, each on its own line\n"
        "- write each whole call on one line\n"
    )


def parse_text_tool_calls(text: str) -> tuple[str, list[tuple[str, str]]]:
    """Tool calls a model wrote as text, and the text without them.

    Understands ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``
    (also a JSON list) and llama's ``<function=name>{...}</function>``, where
    the closing tag may be missing (NEAR accepted that too; the arguments
    then end with their JSON object, else with the line). Returns
    ``(text_without_calls, [(name, arguments_json), ...])``.
    """
    calls: list[tuple[str, str]] = []
    for body in _TOOL_CALL_TAG.findall(text):
        try:
            parsed = json.loads(body)
        except json.JSONDecodeError:
            continue
        for item in parsed if isinstance(parsed, list) else [parsed]:
            if isinstance(item, dict) and "name" in item:
                args = item.get("arguments", item.get("parameters", {}))
                calls.append(
                    (str(item["name"]), args if isinstance(args, str) else json.dumps(args))
                )
    rest, function_calls = _function_calls(_TOOL_CALL_TAG.sub("", text))
    return rest.strip(), calls + function_calls


def _function_calls(text: str) -> tuple[str, list[tuple[str, str]]]:
    """``<function=name>args[</function>]`` calls in ``text``, and the text around them."""
    calls: list[tuple[str, str]] = []
    kept: list[str] = []
    pos = 0
    for tag in _FUNCTION_TAG.finditer(text):
        if tag.start() < pos:
            continue  # inside the previous call's arguments
        kept.append(text[pos : tag.start()])
        following = _FUNCTION_TAG.search(text, tag.end())
        limit = following.start() if following else len(text)
        args, pos = _arguments_after(text, tag.end(), limit)
        calls.append((tag.group(1), args or "{}"))
    kept.append(text[pos:])
    return "".join(kept), calls


def _arguments_after(text: str, start: int, limit: int) -> tuple[str, int]:
    """The arguments that start at ``start``, and where the call ends."""
    begin = start + len(text[start:limit]) - len(text[start:limit].lstrip())
    if text.startswith("{", begin):
        try:
            _, end = _DECODER.raw_decode(text, begin)
        except json.JSONDecodeError:
            pass
        else:
            after = end + len(text[end:limit]) - len(text[end:limit].lstrip())
            if text.startswith(_FUNCTION_END, after):
                return text[begin:end], after + len(_FUNCTION_END)
            return text[begin:end], end
    close = text.find(_FUNCTION_END, start, limit)
    if close != -1:
        return text[start:close].strip(), close + len(_FUNCTION_END)
    newline = text.find("\n", start, limit)
    end = newline if newline != -1 else limit
    return text[start:end].strip(), end
