"""Helpers a Structure switches on: code that reads the game's typed state, adds notes to the
prompt and may keep memory files (every write recorded as a memory operation with source ``helper``).

Layer: helpers use games (the typed state) and memory (the folder's trusted path); the agent uses
helpers; the Structure model asks the catalogue (lazily) to validate names and parameters.
"""

from automem.helpers.base import Helper, HelperContext, HelperMemory, HelperParams
from automem.helpers.registry import (
    GROUP,
    HelperError,
    HelperInfo,
    ParamInfo,
    catalogue,
    check_helper,
    helper_class,
    helper_info,
    helper_names,
    make_helpers,
    parse_params,
    refresh,
)

__all__ = [
    "GROUP",
    "Helper",
    "HelperContext",
    "HelperError",
    "HelperInfo",
    "HelperMemory",
    "HelperParams",
    "ParamInfo",
    "catalogue",
    "check_helper",
    "helper_class",
    "helper_info",
    "helper_names",
    "make_helpers",
    "parse_params",
    "refresh",
]
