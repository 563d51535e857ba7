"""Memory operations as data: the verbs, one operation, and what executing it returned.

Kept free of I/O so the parser, the grammar builder, the store and the UI can share them.
"""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass, field, fields
from enum import Enum
from typing import Any


class Verb(str, Enum):
    VIEW = "view"
    TAIL = "tail"
    SEARCH = "search"
    COUNT = "count"
    APPEND = "append"
    WRITE = "write"
    CREATE = "create"
    STR_REPLACE = "str_replace"
    INSERT = "insert"
    DELETE = "delete"
    RENAME = "rename"
    UPSERT = "upsert"

    def __str__(self) -> str:  # "view", not "Verb.VIEW", wherever a verb is shown
        return self.value


READ_VERBS: frozenset[Verb] = frozenset({Verb.VIEW, Verb.TAIL, Verb.SEARCH, Verb.COUNT})
WRITE_VERBS: frozenset[Verb] = frozenset(Verb) - READ_VERBS

#: the optional fields of an Operation, in the order they are stored
ARG_FIELDS = ("text", "old", "new", "start", "end", "n", "query", "line", "key", "new_path")


@dataclass(frozen=True)
class Operation:
    """One memory command. Only the fields its verb uses are set; the others stay None.

    ``text``/``old``/``new`` hold real newlines (the command line spells them as backslash-n).
    """

    verb: Verb
    path: str
    text: str | None = None
    old: str | None = None
    new: str | None = None
    start: int | None = None
    end: int | None = None
    n: int | None = None
    query: str | None = None
    line: int | None = None
    key: str | None = None
    new_path: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.verb, Verb):  # accept "append" as well as Verb.APPEND
            object.__setattr__(self, "verb", Verb(self.verb))

    def __repr__(self) -> str:  # only the fields in use, so test failures and logs stay readable
        extra = "".join(f", {k}={v!r}" for k, v in self.to_args().items())
        return f"Operation({self.verb.value!r}, {self.path!r}{extra})"

    def to_args(self) -> dict[str, Any]:
        """The verb's arguments (set fields besides verb and path), JSON-ready."""
        return {name: getattr(self, name) for name in ARG_FIELDS if getattr(self, name) is not None}

    def to_dict(self) -> dict[str, Any]:
        return {"verb": self.verb.value, "path": self.path, **self.to_args()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Operation:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["verb"] = Verb(values["verb"])
        return cls(**values)


@dataclass
class OpResult:
    """What one operation did. ``message`` is exactly what the agent sees.

    For writes ``before``/``after`` are the file's contents around the operation (None where the
    file did not exist / no longer exists); for rename they are the content under the old and the
    new path. Reads leave both None.
    """

    ok: bool
    message: str
    verb: Verb | None
    path: str
    args: dict[str, Any] = field(default_factory=dict)
    before: str | None = None
    after: str | None = None
    changed_lines: list[int] = field(default_factory=list)  # 1-based line numbers in ``after``

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["verb"] = self.verb.value if self.verb is not None else None
        return data


def split_lines(content: str) -> list[str]:
    """The lines of a file's content: split on newline only, a final newline ends the last line.

    (Not ``str.splitlines``, which also splits on form feeds, U+2028 and friends.)
    """
    body = content[:-1] if content.endswith("\n") else content
    return body.split("\n") if body else []


def changed_line_numbers(before: str | None, after: str | None) -> list[int]:
    """1-based numbers of the lines of ``after`` that are new or replaced relative to ``before``."""
    if not after:
        return []
    new = split_lines(after)
    old = split_lines(before) if before else []
    # Trim the common head and tail first: most edits touch one spot, so difflib then only sees
    # the few lines in between (keeps an op well under a millisecond on a full file).
    head = 0
    limit = min(len(old), len(new))
    while head < limit and old[head] == new[head]:
        head += 1
    tail = 0
    while tail < limit - head and old[-1 - tail] == new[-1 - tail]:
        tail += 1
    old_mid = old[head : len(old) - tail]
    new_mid = new[head : len(new) - tail]
    if not new_mid:
        return []
    if not old_mid:
        return list(range(head + 1, head + len(new_mid) + 1))
    out: list[int] = []
    matcher = difflib.SequenceMatcher(None, old_mid, new_mid, autojunk=False)
    for tag, _i1, _i2, j1, j2 in matcher.get_opcodes():
        if tag in ("replace", "insert"):
            out.extend(range(head + j1 + 1, head + j2 + 1))
    return out


#: writes that add text to a file rather than replace it: redundant when that text is already there
ADDING_VERBS = frozenset({"append", "insert", "upsert"})


def added_lines_present(verb: str, args: dict[str, Any], before: str | None) -> bool:
    """Whether an append/insert/upsert only added lines the file already held (a redundant write)."""
    if verb not in ADDING_VERBS or not before:
        return False
    text = str(args.get("text") or "")
    if verb == "upsert":
        value = text.strip()
        added = [f"{args.get('key')}: {value}" if value else f"{args.get('key')}:"]
    else:
        added = [line.strip() for line in split_lines(text) if line.strip()]
    if not added:
        return False
    held = {line.strip() for line in split_lines(before)}
    return all(line in held for line in added)


#: how the folder words a look-up that found nothing (kept here so the metrics read what it writes)
EMPTY_FILE = "{path} is empty"
NO_MATCH = "no lines match {query!r} in {where}"


def empty_lookup(verb: str, ok: bool, message: str | None) -> bool:
    """A successful look-up that returned nothing: a search without a match, or an empty file shown."""
    if not ok or verb not in {v.value for v in READ_VERBS} or not message:
        return False
    return message.startswith("no lines match ") or (message.endswith(" is empty") and "\n" not in message)
