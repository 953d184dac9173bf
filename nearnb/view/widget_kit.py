"""The widget view's building blocks, each one counting what it sends.

Why count: the throttle bounds *wire messages* per second (jupyter_server
drops iopub traffic above its limit, and a dropped widget update desyncs the
view for good), so every refresh reports how many comm messages it caused.
All widget creation, trait changes and closes of the view go through one
:class:`WidgetKit`, which knows the cost of each: a new widget is one
``comm_open`` per model (its own layout/style models included - shared ones
are not re-created), a trait change is one ``update`` (several traits of one
widget under ``hold_sync`` are still one), an unchanged trait is nothing,
a close is one ``comm_close``. The view tests compare this count with what
the recording comm saw.

:class:`AppendTree` keeps appends O(1) in bytes; :class:`LiveSlot` is the
message being streamed: frozen Markdown blocks, then a raw tail.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import ipywidgets as widgets
from ipywidgets.widgets.widget_string import HTMLStyle

from .blocks import freeze_point, tail_html


class WidgetKit:
    """Creates, changes and closes widgets, and counts the messages that costs."""

    def __init__(self) -> None:
        self.sent = 0
        self.created: list[widgets.Widget] = []
        self._known: set[int] = set()
        self.layout = self.track(widgets.Layout())  # shared by every child
        self.html_style = self.track(HTMLStyle())  # shared by every HTML widget

    def track(self, widget: Any) -> Any:
        """Register a new widget (and its own layout/style models); count the opens."""
        for name in ("layout", "style"):
            part = getattr(widget, name, None)
            if isinstance(part, widgets.Widget) and id(part) not in self._known:
                self._register(part)
        self._register(widget)
        return widget

    def _register(self, widget: widgets.Widget) -> None:
        self._known.add(id(widget))
        self.created.append(widget)
        self.sent += 1

    def vbox(
        self, children: Iterable[widgets.Widget] = (), css_class: str | None = None
    ) -> widgets.VBox:
        return self.track(widgets.VBox(tuple(children), layout=self.layout, **_classes(css_class)))

    def html(self, value: str = "", css_class: str | None = None) -> widgets.HTML:
        return self.track(
            widgets.HTML(value, layout=self.layout, style=self.html_style, **_classes(css_class))
        )

    def markdown(self, texts: Iterable[str]) -> widgets.Output:
        """A static Markdown child (one output per text): created with its
        content, sent once, never updated."""
        outputs = tuple(
            {"output_type": "display_data", "data": {"text/markdown": text}, "metadata": {}}
            for text in texts
        )
        return self.track(widgets.Output(outputs=outputs, layout=self.layout))

    def set(self, widget: widgets.Widget, **traits: Any) -> None:
        """Change traits; one message if anything changed, none otherwise."""
        changed = {k: v for k, v in traits.items() if getattr(widget, k) != v}
        if not changed:
            return
        with widget.hold_sync():
            for name, value in changed.items():
                setattr(widget, name, value)
        self.sent += 1

    def close(self, widget: widgets.Widget) -> None:
        """Close one model (not its layout/style: those are tracked on their own)."""
        if getattr(widget, "comm", None) is not None:
            widget.close()
            self.sent += 1


def _classes(css_class: str | None) -> dict[str, Any]:
    """CSS classes given at construction travel with the ``comm_open``; an
    ``add_class`` afterwards would be one more message."""
    return {"_dom_classes": (css_class,)} if css_class else {}


class AppendTree:
    """A vertical box you only append to, kept as a tree of boxes.

    Appending the k-th child to one flat ``VBox`` re-sends all k child ids
    (O(k^2) over a stream); here an append re-sends at most ``fanout`` ids,
    plus one more level every ``fanout`` appends. The root never changes
    (a full root pushes its children down into a new box), so whoever holds
    it need not be told.
    """

    def __init__(self, kit: WidgetKit, root: widgets.Box | None = None, fanout: int = 8) -> None:
        self.kit = kit
        self.fanout = fanout
        self.root = root if root is not None else kit.vbox()
        self._path: list[tuple[widgets.Box, list[widgets.Widget]]] = [
            (self.root, list(self.root.children))
        ]
        self.boxes: list[widgets.Box] = [self.root]
        self.count = 0

    def append(self, child: widgets.Widget) -> None:
        self.extend((child,))

    def extend(self, children: Iterable[widgets.Widget]) -> None:
        """Append in order; each box that changed is sent once."""
        dirty: dict[int, tuple[widgets.Box, list[widgets.Widget]]] = {}
        for child in children:
            self._add(child, dirty)
        for box, kids in dirty.values():
            self.kit.set(box, children=tuple(kids))

    def _add(
        self, child: widgets.Widget, dirty: dict[int, tuple[widgets.Box, list[widgets.Widget]]]
    ) -> None:
        def touch(level: tuple[widgets.Box, list[widgets.Widget]]) -> None:
            dirty[id(level[0])] = level

        depth = len(self._path) - 1
        level = depth
        while level >= 0 and len(self._path[level][1]) >= self.fanout:
            level -= 1
        if level < 0:  # every level is full: push the root's children down a level
            root, kids = self._path[0]
            pushed = (self._box(), kids)
            self._path.insert(1, pushed)
            self._path[0] = (root, [pushed[0]])
            touch(pushed)
            touch(self._path[0])
            level = 0
            depth += 1
        for below in range(level + 1, depth + 1):  # fresh boxes down to the leaves
            parent = self._path[below - 1]
            fresh: tuple[widgets.Box, list[widgets.Widget]] = (self._box(), [])
            parent[1].append(fresh[0])
            touch(parent)
            self._path[below] = fresh
        leaf = self._path[depth]
        leaf[1].append(child)
        touch(leaf)
        self.count += 1

    def _box(self) -> widgets.Box:
        box = self.kit.vbox()
        self.boxes.append(box)
        return box


class LiveSlot:
    """Where the message being streamed is shown: frozen Markdown blocks (a
    per-message :class:`AppendTree`, made at the first freeze), then a raw tail.

    The slot outlives one message: when an answer ends, its blocks move to
    the transcript and the slot is reset for the next one, so a stream of
    short messages opens no widgets per message. A streamed draft (a hidden
    message) is dropped instead, so its widgets can be closed.
    """

    def __init__(self, kit: WidgetKit) -> None:
        self.kit = kit
        self.tail = kit.html(css_class="nearnb-tail")
        self.box = kit.vbox((self.tail,), css_class="nearnb-message")
        self.tree: AppendTree | None = None
        self.blocks: list[widgets.Widget] = []
        self.key: str | None = None
        self.hidden = False
        self.frozen = 0
        self.frozen_text = ""

    def update(self, text: str) -> None:
        cut = freeze_point(text, self.frozen)
        if cut > self.frozen:
            self._freeze(text[self.frozen : cut])
            self.frozen = cut
        self.kit.set(self.tail, value=tail_html(text[self.frozen :]))

    def _freeze(self, chunk: str) -> None:
        block = self.kit.markdown((chunk.strip(),))
        self.blocks.append(block)
        if self.tree is None:
            self.tree = AppendTree(self.kit)
            self.tree.append(block)
            self.kit.set(self.box, children=(self.tree.root, self.tail))
        else:
            self.tree.append(block)
        self.frozen_text += chunk

    def take_tree(self, rest: str) -> widgets.Box:
        """The message ended: its frozen blocks plus the ``rest`` Markdown, as
        one box for the transcript. The slot is reset for the next message."""
        tree, self.tree = self.tree, None
        assert tree is not None, "take_tree needs frozen blocks"
        if rest.strip():
            tree.append(self.kit.markdown((rest.strip(),)))
        self.kit.set(self.box, children=(self.tail,))
        self.blocks = []
        self.reset()
        return tree.root

    def discard_tree(self) -> list[widgets.Widget]:
        """Forget the frozen blocks (the final text is not what streamed);
        the widgets to close."""
        tree, self.tree = self.tree, None
        blocks, self.blocks = self.blocks, []
        self.reset()
        if tree is None:
            return []
        self.kit.set(self.box, children=(self.tail,))
        return [*tree.boxes, *blocks]

    def reset(self) -> None:
        self.key, self.hidden, self.frozen, self.frozen_text = None, False, 0, ""
        self.kit.set(self.tail, value="")

    def widgets(self) -> list[widgets.Widget]:
        """Everything this slot opened (to close it when dropped)."""
        return [self.box, self.tail, *(self.tree.boxes if self.tree else ()), *self.blocks]
