"""The one-line command language a model answers in, and its canonical form.

One parser covers the whole vocabulary (DONE, ACT <action>, the memory verbs). It never raises:
anything a model emits comes back as a command or a ParseError whose message the agent can show.
Paths are not checked here; the memory folder refuses bad ones with its own message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from automem.memory.ops import Operation, Verb


@dataclass(frozen=True)
class Done:
    """End the LOG phase."""


@dataclass(frozen=True)
class Act:
    """Commit a game action (a name from the game's vocabulary, possibly with spaces)."""

    action: str


@dataclass(frozen=True)
class ParseError:
    message: str


Command = Done | Act | Operation
Parsed = Done | Act | Operation | ParseError

#: how each verb is written; the agent can show these in prompts
USAGE: dict[Verb, str] = {
    Verb.VIEW: "view <path> [<start>-<end>]",
    Verb.TAIL: "tail <path> [<n>]",
    Verb.SEARCH: "search <path|*> <query>",
    Verb.COUNT: "count <path|*>",
    Verb.APPEND: "append <path>: <text>",
    Verb.WRITE: "write <path>: <text>",
    Verb.CREATE: "create <path>: <text>",
    Verb.STR_REPLACE: "str_replace <path>: <old> => <new>",
    Verb.INSERT: "insert <path> <line>: <text>",
    Verb.DELETE: "delete <path>",
    Verb.RENAME: "rename <path> <new_path>",
    Verb.UPSERT: "upsert <path> <key>: <text>",
}

_ALIASES = {"read": Verb.VIEW}
_KEYWORDS = {"done", "act"} | {v.value for v in Verb} | set(_ALIASES)
# Chatty prefixes small models put before the command ("Command: view x", "> view x", "$ view x").
_PREFIX = re.compile(r"^(?:(?:command|cmd|answer)\s*:\s*|>+\s*|\$\s+)", re.IGNORECASE)
_KEYWORD = re.compile(r"([A-Za-z_]+)(.*)$", re.DOTALL)
_PATH = re.compile(r"[^\s:]+")
_NUMBER_DIGITS = 9  # int() of a huge digit string is slow or refused; no file is that long
_QUOTES = "\"'`"


def _unwrap(s: str) -> str:
    """Drop one pair of matching quotes or backticks around the whole string."""
    if len(s) >= 2 and s[0] == s[-1] and s[0] in _QUOTES:
        return s[1:-1].strip()
    return s


def _clean_line(raw: str) -> str | None:
    """One output line without fences, backticks and chatty prefixes; None if nothing is left."""
    line = raw.strip()
    if line.startswith("```"):
        inner = line.lstrip("`")
        if inner.endswith("```"):  # ```view map.md``` on one line
            line = inner.rstrip("`").strip()
        else:
            inner = inner.strip()
            # an opening fence with a language tag ("```text") or a closing fence: not a command
            if not inner or (" " not in inner and inner.lower() not in _KEYWORDS):
                return None
            line = inner
    while True:
        before = line
        if line.startswith("`"):
            line = line.strip("`").strip()
        line = _unwrap(line)
        m = _PREFIX.match(line)
        if m:
            line = line[m.end() :].strip()
        if line == before:
            break
    return line or None


def _first_line(text: str) -> str | None:
    for raw in text.split("\n"):
        line = _clean_line(raw)
        if line is not None:
            return line
    return None


def decode_text(s: str) -> str:
    r"""Turn the two characters ``\n`` into a newline and ``\\`` into one backslash."""
    if "\\" not in s:
        return s
    return re.sub(r"\\([\\n])", lambda m: "\n" if m.group(1) == "n" else "\\", s)


def encode_text(s: str) -> str:
    r"""Inverse of decode_text: a newline becomes ``\n``, a backslash ``\\``."""
    return s.replace("\\", "\\\\").replace("\n", "\\n")


def _number(token: str) -> int | None:
    if not token.isdigit() or not token.isascii() or len(token) > _NUMBER_DIGITS:
        return None
    return int(token)


def _take_path(rest: str) -> tuple[str, str] | None:
    """Split ``rest`` into the path token and what follows it (a ':' ends the path)."""
    s = rest.lstrip()
    if s.startswith(":"):  # "view: map.md"
        s = s[1:].lstrip()
    m = _PATH.match(s)
    if m is None:
        return None
    path = m.group(0).strip(_QUOTES)
    if not path:
        return None
    return path, s[m.end() :]


def _after_colon(s: str) -> str:
    """The text after an optional ':' separator, trimmed."""
    s = s.strip()
    if s.startswith(":"):
        s = s[1:].strip()
    return s


def _usage_error(verb: Verb, problem: str) -> ParseError:
    return ParseError(f"{problem}; usage: {USAGE[verb]}")


def parse_command(text: str) -> Parsed:
    """Parse the first non-empty line of a model's output into a command. Never raises."""
    if not isinstance(text, str):
        return ParseError("expected text")
    line = _first_line(text)
    if line is None:
        return ParseError("empty answer; expected one command, e.g. ACT <action>")
    m = _KEYWORD.match(line)
    word = m.group(1).lower() if m else ""
    rest = m.group(2) if m else ""
    if word == "done" and not rest.strip(" \t.!:"):  # "DONE", "done.", "Done!"
        return Done()
    if not m or word not in _KEYWORDS or (rest and not (rest[0].isspace() or rest[0] == ":")):
        shown = line.split()[0][:40]
        return ParseError(f"unknown command {shown!r}; expected DONE, ACT <action> or a memory verb")
    if word == "done":
        return ParseError("DONE takes nothing after it")
    if word == "act":
        action = _unwrap(_after_colon(rest))
        action = " ".join(action.split())  # "far  east" -> "far east"
        if not action:
            return ParseError("ACT needs an action, e.g. ACT <action>")
        return Act(action)
    verb = _ALIASES.get(word) or Verb(word)
    return _parse_operation(verb, rest)


def _parse_operation(verb: Verb, rest: str) -> Operation | ParseError:
    taken = _take_path(rest)
    if taken is None:
        return _usage_error(verb, f"{verb} needs a path")
    path, rest = taken

    if verb is Verb.VIEW:
        s = _after_colon(rest)
        if not s:
            return Operation(verb, path)
        m = re.fullmatch(r"(\d+)\s*(?:-\s*(\d*))?", s)
        start = _number(m.group(1)) if m else None
        end = _number(m.group(2)) if m and m.group(2) else None
        if start is None or (m and m.group(2) and end is None):
            return _usage_error(verb, "bad line range")
        return Operation(verb, path, start=start, end=end)

    if verb is Verb.TAIL:
        s = _after_colon(rest)
        if not s:
            return Operation(verb, path)
        n = _number(s)
        if n is None:
            return _usage_error(verb, "bad line count")
        return Operation(verb, path, n=n)

    if verb is Verb.SEARCH:
        query = _unwrap(_after_colon(rest))
        if not query:
            return _usage_error(verb, "search needs a query")
        return Operation(verb, path, query=query)

    if verb in (Verb.COUNT, Verb.DELETE):
        if _after_colon(rest):
            return _usage_error(verb, f"{verb} takes only a path")
        return Operation(verb, path)

    if verb in (Verb.APPEND, Verb.WRITE, Verb.CREATE):
        return Operation(verb, path, text=decode_text(_after_colon(rest)))

    if verb is Verb.STR_REPLACE:
        s = _after_colon(rest)
        cut = s.find("=>")
        if cut < 0:
            return _usage_error(verb, "missing '=>'")
        old = decode_text(s[:cut].strip())
        if not old:
            return _usage_error(verb, "the old text is empty")
        return Operation(verb, path, old=old, new=decode_text(s[cut + 2 :].strip()))

    if verb is Verb.INSERT:
        m = re.match(r"(\d+)\s*(.*)$", _after_colon(rest), re.DOTALL)
        line = _number(m.group(1)) if m else None
        if m is None or line is None:
            return _usage_error(verb, "insert needs a line number")
        return Operation(verb, path, line=line, text=decode_text(_after_colon(m.group(2))))

    if verb is Verb.RENAME:
        tokens = _after_colon(rest).split()
        if len(tokens) == 2 and tokens[0] in ("->", "=>", "to"):  # "rename a -> b"
            tokens = tokens[1:]
        if len(tokens) != 1 or not tokens[0].strip(_QUOTES + ":"):
            return _usage_error(verb, "rename needs one new path")
        return Operation(verb, path, new_path=tokens[0].strip(_QUOTES).rstrip(":"))

    # UPSERT
    s = _after_colon(rest)
    if ":" in s:
        cut = s.index(":")
        key, text = s[:cut].strip(), s[cut + 1 :].strip()
        if not key:
            return _usage_error(verb, "missing key")
        if any(c.isspace() for c in key):
            return _usage_error(verb, "the key must be one word (no spaces)")
    else:
        parts = s.split(None, 1)
        if len(parts) < 2:
            return _usage_error(verb, "missing '<key>: <text>'")
        key, text = parts[0], parts[1].strip()
    return Operation(verb, path, key=key, text=decode_text(text))


def _format_operation(op: Operation) -> str:
    verb, path = Verb(op.verb), op.path
    if verb is Verb.VIEW:
        if op.start is None:
            return f"view {path}"
        return f"view {path} {op.start}" + (f"-{op.end}" if op.end is not None else "")
    if verb is Verb.TAIL:
        return f"tail {path}" + (f" {op.n}" if op.n is not None else "")
    if verb is Verb.SEARCH:
        return f"search {path} {op.query}"
    if verb in (Verb.COUNT, Verb.DELETE):
        return f"{verb} {path}"
    if verb in (Verb.APPEND, Verb.WRITE, Verb.CREATE):
        return f"{verb} {path}: {encode_text(op.text or '')}".rstrip()
    if verb is Verb.STR_REPLACE:
        return f"str_replace {path}: {encode_text(op.old or '')} => {encode_text(op.new or '')}".rstrip()
    if verb is Verb.INSERT:
        return f"insert {path} {op.line}: {encode_text(op.text or '')}".rstrip()
    if verb is Verb.RENAME:
        return f"rename {path} {op.new_path}"
    return f"upsert {path} {op.key}: {encode_text(op.text or '')}".rstrip()


def format_command(command: Command) -> str:
    """The canonical one-line form; ``parse_command(format_command(c)) == c``.

    Raises ValueError for a command no line can express (a path with a space, an old text that
    contains '=>', text with surrounding whitespace, ...), so nothing ambiguous is ever stored.
    """
    if isinstance(command, Done):
        line = "DONE"
    elif isinstance(command, Act):
        line = f"ACT {command.action}"
    elif isinstance(command, Operation):
        line = _format_operation(command)
    else:
        raise TypeError(f"not a command: {command!r}")
    if parse_command(line) != command:
        raise ValueError(f"cannot be written as one command line: {command!r}")
    return line
