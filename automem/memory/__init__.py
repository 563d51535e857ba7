"""The memory layer: operations as data, the one-line command language, the sandboxed folder that
executes operations, and the GBNF grammar that makes a model's output valid by construction."""

from __future__ import annotations

from automem.memory.folder import FileLimits, MemoryFolder, MemoryLimits
from automem.memory.grammar import build_grammar, gbnf_literal
from automem.memory.ops import (
    READ_VERBS,
    WRITE_VERBS,
    Operation,
    OpResult,
    Verb,
    changed_line_numbers,
    split_lines,
)
from automem.memory.syntax import (
    USAGE,
    Act,
    Command,
    Done,
    Parsed,
    ParseError,
    decode_text,
    encode_text,
    format_command,
    parse_command,
)

__all__ = [
    "READ_VERBS",
    "USAGE",
    "WRITE_VERBS",
    "Act",
    "Command",
    "Done",
    "FileLimits",
    "MemoryFolder",
    "MemoryLimits",
    "OpResult",
    "Operation",
    "ParseError",
    "Parsed",
    "Verb",
    "build_grammar",
    "changed_line_numbers",
    "decode_text",
    "encode_text",
    "format_command",
    "gbnf_literal",
    "parse_command",
    "split_lines",
]
