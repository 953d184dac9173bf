"""Splitting a growing message into frozen Markdown blocks and a live tail.

Why: a widget trait (or a display update) always carries its *whole* value.
Re-sending a whole answer on every refresh costs O(n^2) bytes over a stream
(jupyter-widgets/ipywidgets#2385). Instead the text that can no longer change
shape - complete paragraphs - is frozen into immutable children, sent once,
and only the short tail after the last paragraph break is re-sent. Bytes
then grow O(n): each character is sent once in a frozen block plus a bounded
number of times in the tail.

Cuts must not change how the Markdown renders, so they happen only at blank
lines outside fenced code blocks. A tail that grows past ``max_tail`` with no
such point (one huge paragraph) is cut at a line break outside a fence; a
huge fenced block is never cut (the tail is then bounded by that block).
"""

from __future__ import annotations

import html
import re

#: Tail length (chars) before anything is frozen: a block smaller than this
#: would cost more in widget overhead (~0.5 kB per child) than it saves.
MIN_BLOCK = 384
#: A tail longer than this is cut at a single line break if no blank line helps.
MAX_TAIL = 2048

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")


def freeze_point(
    text: str, start: int, *, min_block: int = MIN_BLOCK, max_tail: int = MAX_TAIL
) -> int:
    """The offset up to which ``text`` may be frozen, given ``text[:start]`` is.

    Returns ``start`` when nothing should be frozen yet. ``text[:start]`` must
    end outside a code fence (true for every value this function returns).
    The returned cut lies after a newline, so the frozen part ends with one.
    """
    if len(text) - start < min_block:
        return start
    in_fence = False
    fence = ""
    last_blank = -1  # end offset (exclusive) of the last blank line outside a fence
    last_line = -1  # end offset of the last line break outside a fence
    pos = start
    while True:
        nl = text.find("\n", pos)
        if nl < 0:
            break  # the unterminated last line is still being written
        line = text[pos:nl]
        match = _FENCE.match(line)
        if not in_fence:
            if match:
                in_fence, fence = True, match.group(1)
            else:
                if not line.strip() and pos > start:
                    last_blank = nl + 1
                last_line = nl + 1
        elif match and match.group(1).startswith(fence) and line.strip() == match.group(1):
            in_fence = False  # a closing fence: same character, at least as long
            last_line = nl + 1
        pos = nl + 1
    if last_blank - start >= min_block:
        return last_blank
    if len(text) - start > max_tail and last_line - start >= min_block:
        return last_line
    return start


#: CSS for the live tail, sent once in the header (not with every refresh).
TAIL_CSS = ".nearnb-tail{white-space:pre-wrap;overflow-wrap:anywhere}"


def tail_html(text: str) -> str:
    """The live tail as HTML: just the escaped text.

    The tail is shown raw (not Markdown) because half a Markdown construct
    (an open ``**`` or fence) renders wrongly and would flicker. Its line
    breaks are kept by the ``nearnb-tail`` class (:data:`TAIL_CSS`), not by
    inline markup, because this string is re-sent on every refresh.
    """
    return html.escape(text, quote=False)
