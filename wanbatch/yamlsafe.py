"""YAML read within bounds, and values checked before anyone relies on them. Pure.

``yaml.SafeLoader`` alone lets a manifest crash or stall whoever reads it: an alias bomb (a few
lines whose aliases expand to a billion values), a recursive alias (``jobs: &a [*a]``), nesting
deep enough to exhaust the stack, and values no request can carry (dates, ``!!binary``,
``!!set``, ``.nan``, lone surrogates). Here:

- ``load`` composes with ``BoundedLoader``: an alias to a node still being built is refused
  ("refers to itself"); the values reached through aliases may add at most
  ``MAX_ALIAS_EXPANSION`` plus ``ALIAS_FACTOR`` times the values written out, so every later walk
  of the document is linear in the file's size; nesting stops at ``MAX_DEPTH``. Each refusal is a
  ``yaml.MarkedYAMLError`` carrying the line.
- Dates, times, ``!!binary``, ``!!set``, ``!!omap`` and ``!!pairs`` are not built: they become
  ``Refused`` placeholders that remember what they were and their line.
- ``bad_values`` walks the loaded value and yields ``(dotted key, line or None, message)`` for
  each placeholder, each float that is not finite, each integer past ``MAX_INT_BITS`` bits
  (Python cannot even print one of 5,000 digits), and each string or key that is not valid
  UTF-8 (a lone surrogate). Keys in what it yields are printable (surrogates escaped).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError

MAX_DEPTH = 64  # lists and mappings inside each other
MAX_ALIAS_EXPANSION = 100_000  # values an alias may bring in, on top of ALIAS_FACTOR x written
ALIAS_FACTOR = 10
MAX_INT_BITS = 64  # 0x fff... with 5,000 digits loads, but no field (or JSON reader) takes it

_REFUSED_TAGS = {
    "tag:yaml.org,2002:timestamp": "a date or time (put it in quotes to make it text)",
    "tag:yaml.org,2002:binary": "binary data (!!binary)",
    "tag:yaml.org,2002:set": "a set (!!set); use a list",
    "tag:yaml.org,2002:omap": "an ordered mapping (!!omap); use a mapping",
    "tag:yaml.org,2002:pairs": "a list of pairs (!!pairs); use a mapping",
}


class BoundsError(ComposerError):
    """A document beyond the loader's bounds; ``key`` is the dotted key where it was found."""

    def __init__(self, key: str, problem: str, mark: Any) -> None:
        super().__init__(None, None, problem, mark)
        self.key = key if len(key) <= 80 else key[:77] + "..."


@dataclass(frozen=True, slots=True)
class Refused:
    """Stands in for a value the manifest may not hold: what it was, and its line (1-based)."""

    what: str
    line: int


class BoundedLoader(yaml.SafeLoader):
    """``SafeLoader`` with bounded aliases and depth, and refused tags built as ``Refused``."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._open_anchors: set[str] = set()
        self._sizes: dict[int, int] = {}  # id(node) -> values in it, aliases expanded
        self._written = 0  # nodes written out in the text
        self._expanded = 0  # nodes brought in again by aliases
        # (parent, index) of each node being composed, outermost first: its key, when needed
        self._where: list[tuple[yaml.Node | None, Any]] = []

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event: Any = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, yaml.AliasEvent):
            name = str(event.anchor)
            if name in self._open_anchors:
                raise BoundsError(
                    self._key(parent, index),
                    f"the alias *{name} refers to itself",
                    event.start_mark,
                )
            node = super().compose_node(parent, index)
            self._expanded += self._sizes.get(id(node), 1)
            allowed = MAX_ALIAS_EXPANSION + ALIAS_FACTOR * self._written
            if self._expanded > allowed:
                raise BoundsError(
                    self._key(parent, index),
                    f"aliases expand this document past {allowed:,} values (an alias bomb?)",
                    event.start_mark,
                )
            return node
        if len(self._where) >= MAX_DEPTH:
            raise BoundsError(
                self._key(parent, index),
                f"values nested more than {MAX_DEPTH} levels deep",
                event.start_mark,
            )
        anchor: str | None = getattr(event, "anchor", None)
        if anchor is not None:
            self._open_anchors.add(anchor)
        self._where.append((parent, index))
        try:
            node = super().compose_node(parent, index)
        finally:
            self._where.pop()
            if anchor is not None:
                self._open_anchors.discard(anchor)
        self._written += 1
        size = 1
        for child in _children(node):
            size += self._sizes.get(id(child), 1)
        self._sizes[id(node)] = size
        return node

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, TypeError, OverflowError) as exc:  # !!int abc, 5,000-digit numbers
            raise ConstructorError(None, None, str(exc), node.start_mark) from exc

    def _key(self, parent: yaml.Node | None, index: Any) -> str:
        """The dotted key of the node about to be composed at ``index`` of ``parent``."""
        key = ""
        for outer, at in [*self._where, (parent, index)]:
            if isinstance(outer, yaml.MappingNode) and isinstance(at, yaml.ScalarNode):
                name = printable(str(at.value))
                key = f"{key}.{name}" if key else name
            elif isinstance(outer, yaml.SequenceNode) and isinstance(at, int):
                key = f"{key}[{at}]"
        return key


def _children(node: yaml.Node | None) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _refuse(what: str) -> Any:
    def construct(loader: yaml.SafeLoader, node: yaml.Node) -> Refused:
        return Refused(what, node.start_mark.line + 1)

    return construct


for _tag, _what in _REFUSED_TAGS.items():
    BoundedLoader.add_constructor(_tag, _refuse(_what))


def compose(text: str) -> tuple[BoundedLoader, yaml.Node | None]:
    """The document's node tree, within bounds; raises ``yaml.YAMLError`` (marked when it can)."""
    loader = BoundedLoader(text)
    try:
        return loader, loader.get_single_node()
    except BaseException:
        loader.dispose()
        raise


def printable(text: str) -> str:
    """``text`` with anything UTF-8 cannot carry escaped, so that a message can be printed."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def bad_values(value: Any, path: str = "") -> Iterator[tuple[str, int | None, str]]:
    """Every value a manifest may not hold, with its dotted key and, when known, its line."""
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        item, where = stack.pop()
        problem = _scalar_problem(item)
        if problem is not None:
            yield where, (item.line if isinstance(item, Refused) else None), problem
        elif isinstance(item, dict):
            children: list[tuple[Any, str]] = []
            for key, child in item.items():
                key_problem = _scalar_problem(key)
                if key_problem is not None:
                    line = key.line if isinstance(key, Refused) else None
                    yield where, line, f"has a key that {key_problem}"
                    continue
                name = printable(str(key))
                children.append((child, f"{where}.{name}" if where else name))
            stack.extend(reversed(children))
        elif isinstance(item, list):
            stack.extend(reversed([(child, f"{where}[{i}]") for i, child in enumerate(item)]))


def _scalar_problem(value: Any) -> str | None:
    if isinstance(value, Refused):
        return f"is {value.what}, which a manifest may not hold"
    if isinstance(value, float) and not math.isfinite(value):
        return f"must be a finite number, not {value}"
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:  # never printed whole
        return f"is a number of {value.bit_length()} bits; no field takes more than {MAX_INT_BITS}"
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            shown = printable(repr(value if len(value) <= 40 else value[:40] + "..."))
            return f"is not valid UTF-8 text ({shown} holds a lone surrogate)"
    return None
