"""YAML text -> a value, with the line of every key and list item remembered. Pure.

YAML is read within bounds and its values checked by ``yamlsafe``; duplicate keys are refused.
"""

from __future__ import annotations

from typing import Any

import yaml

from wanbatch import yamlsafe
from wanbatch.manifest.problems import Problems

_MERGE_TAG = "tag:yaml.org,2002:merge"


def load_yaml(text: str, problems: Problems, prefix: str = "") -> Any:
    """The document's value, or None with problems added: syntax, bounds (``yamlsafe``) and
    values a manifest may not hold, each with its line and key."""
    try:
        loader, node = yamlsafe.compose(text)
        try:
            if node is not None:  # before construction, which folds merge keys into mappings
                _record_lines(node, prefix, problems)
            value = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yamlsafe.BoundsError as exc:
        key = f"{prefix}.{exc.key}" if prefix and exc.key else prefix or exc.key
        mark = exc.problem_mark
        problems.add(key, str(exc.problem), line=mark.line + 1 if mark else None)
        return None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problems.add(prefix, f"YAML syntax: {exc.problem or exc}", line=line)
        return None
    except (yaml.YAMLError, RecursionError, ValueError, TypeError) as exc:
        problems.add(prefix, f"YAML cannot be read: {exc}")
        return None
    before = len(problems.found)
    for key, line, message in yamlsafe.bad_values(value, prefix):
        problems.add(key, message, line=line)
    return None if len(problems.found) != before else value


def _record_lines(node: yaml.Node, path: str, problems: Problems) -> None:
    """Remember the line of every key and list item; flag duplicate keys. The keys a merge key
    (``<<: *base``) brings in come after the mapping's own, which win over them."""
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        merged: list[yaml.Node] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                merged += (
                    value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
                )
                continue
            key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else "?"
            child = f"{path}.{key}" if path else key
            line = key_node.start_mark.line + 1
            if key in seen:
                problems.add(child, "duplicate key", line=line)
            seen.add(key)
            problems.lines.setdefault(child, line)
            _record_lines(value_node, child, problems)
        for source in merged:
            if isinstance(source, yaml.MappingNode):
                _record_lines(source, path, problems)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            child = f"{path}[{index}]"
            problems.lines.setdefault(child, item.start_mark.line + 1)
            _record_lines(item, child, problems)
