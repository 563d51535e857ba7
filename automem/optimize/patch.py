"""A small patch language for structures, so a critic can revise one without rewriting all of it.

A patch is a list of ``{"path": ..., "value": ...}``. Paths are dotted field names; list items are
picked by their natural key in brackets (``files[map.md]``, ``phases[LOG]``, ``helpers[stuck_detector]``)
or by index (``files[0]``); ``files[+]`` appends the value as a new item; a value of ``null`` on an
item removes it. Examples::

    {"path": "files[map.md].max_lines", "value": 40}
    {"path": "files[map.md].overflow", "value": "drop_oldest"}
    {"path": "operations.enabled", "value": ["view", "append", "upsert"]}
    {"path": "phases[LOG].budget", "value": 1}
    {"path": "helpers[+]", "value": {"name": "stuck_detector", "params": {"window": 6}}}
    {"path": "files[encounters.md]", "value": null}
"""

from __future__ import annotations

import copy
import re
from typing import Any

from automem.errors import AutomemError

_TOKEN = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)|\[([^\]]+)\]|(\.)")
#: the field that names a list item, per list
_ITEM_KEYS = {"files": "path", "phases": "kind", "helpers": "name"}


class PatchError(AutomemError, ValueError):
    """A patch entry that does not apply; the message names the entry and why."""


def parse_path(path: str) -> list[str | tuple[str]]:
    """``files[map.md].max_lines`` -> ["files", ("map.md",), "max_lines"]; brackets become 1-tuples."""
    parts: list[str | tuple[str]] = []
    pos = 0
    text = path.strip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise PatchError(f"cannot read path {path!r} at {text[pos:]!r}")
        name, selector, _dot = match.groups()
        if name is not None:
            parts.append(name)
        elif selector is not None:
            parts.append((selector.strip(),))
        pos = match.end()
    if not parts or not isinstance(parts[0], str):
        raise PatchError(f"path {path!r} must start with a field name")
    return parts


def _index(items: list[Any], list_name: str, selector: str, path: str) -> int:
    if selector.isdigit():
        index = int(selector)
        if index >= len(items):
            raise PatchError(f"{path}: {list_name} has {len(items)} items, no index {index}")
        return index
    key = _ITEM_KEYS.get(list_name)
    for index, item in enumerate(items):
        if isinstance(item, dict) and key is not None and item.get(key) == selector:
            return index
    known = ", ".join(str(i.get(key)) for i in items if isinstance(i, dict) and key) or "none"
    raise PatchError(f"{path}: no {list_name} item {selector!r} (there are: {known})")


def apply_patch(data: dict[str, Any], changes: list[dict[str, Any]]) -> dict[str, Any]:
    """A copy of ``data`` (a structure as JSON) with ``changes`` applied; raises PatchError."""
    out = copy.deepcopy(data)
    for number, change in enumerate(changes, start=1):
        if not isinstance(change, dict) or "path" not in change or "value" not in change:
            raise PatchError(f"change {number}: needs a 'path' and a 'value'")
        path = str(change["path"])
        parts = parse_path(path)
        node: Any = out
        for depth, part in enumerate(parts):
            last = depth == len(parts) - 1
            if isinstance(part, tuple):
                list_name = parts[depth - 1] if depth else ""
                if not isinstance(node, list):
                    raise PatchError(f"{path}: {list_name} is not a list")
                selector = part[0]
                if selector == "+":
                    if not last:
                        raise PatchError(f"{path}: [+] adds an item and must end the path")
                    node.append(change["value"])
                    break
                index = _index(node, str(list_name), selector, path)
                if last:
                    if change["value"] is None:
                        del node[index]
                    else:
                        node[index] = change["value"]
                    break
                node = node[index]
                continue
            if not isinstance(node, dict):
                raise PatchError(
                    f"{path}: {part} is inside something that is not a mapping (a file is files[PATH], e.g. "
                    "files[map.md].max_lines)"
                )
            if last:
                node[part] = change["value"]
                break
            if part not in node or node[part] is None:
                known = ", ".join(k for k in node if node[k] is not None)
                hint = " (a file is files[PATH], e.g. files[map.md].max_lines)" if depth == 0 else ""
                raise PatchError(f"{path}: no field {part}; fields here: {known}{hint}")
            node = node[part]
    return out
