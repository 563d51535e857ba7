"""The one base of every error automem reports to a person.

Each layer raises its own subclass (EngineError, StructureError, SeedError, ...), whose message is
one line saying what is wrong and what to do. The command line catches ``AutomemError`` once and
exits with the error's ``exit_code``: 2 for bad input (arguments, files, settings, as Typer's own
usage errors), 1 for work that failed (a model that will not load, a server that stays down).
"""

from __future__ import annotations


class AutomemError(Exception):
    #: what ``automem`` exits with when this error ends a command
    exit_code: int = 2
