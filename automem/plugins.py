"""Extension points: built-in targets merged with a Python entry-point group, loaded by name.

A game or an engine from another package is an entry point (``name = "module:attr"``), not an
edit of an if/elif chain; the built-ins are listed too so a checkout never pip-installed works.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import import_module
from importlib.metadata import entry_points
from typing import Any


def registered(group: str, builtin: Mapping[str, str]) -> dict[str, str]:
    """name -> "module:attr" for the built-ins and everything installed under ``group``."""
    targets = dict(builtin)
    for ep in entry_points(group=group):
        targets[ep.name] = ep.value
    return targets


def load(target: str) -> Any:
    """Import ``module:attr`` and return the attribute."""
    module, _, attr = target.partition(":")
    return getattr(import_module(module), attr)
