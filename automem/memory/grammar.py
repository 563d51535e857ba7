"""GBNF grammars (llama.cpp's format) whose sentences are valid one-line commands.

The language is a subset of what ``syntax.parse_command`` accepts, written in canonical form:
only the enabled verbs, known paths (plus safe new names when allowed), exactly one of the game's
actions after ACT, bounded numbers and bounded text. Text is printable ASCII with ``\\n`` as the
only escape; it never starts with a space, so what the model writes is what gets parsed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from automem.memory.ops import Operation, Verb
from automem.memory.syntax import Act, parse_command

#: pattern of a new file name when new paths are allowed (also what prompts can tell the model)
NEW_PATH_CHARS = 24
NEW_PATH_SUFFIXES = (".md", ".txt")
KEY_CHARS = 24
NUMBER_DIGITS = 3

_PRINTABLE = {chr(c) for c in range(0x20, 0x7F)}
_TEXT = _PRINTABLE - {"\\"}  # a backslash only comes as the \n escape
_KEY = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_,.+#()-")
_NEW_NAME = set("abcdefghijklmnopqrstuvwxyz0123456789_")


def gbnf_literal(s: str) -> str:
    """``s`` as a GBNF string literal: quotes, backslashes and control characters escaped."""
    out = []
    for ch in s:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def gbnf_class(chars: set[str]) -> str:
    """A GBNF character class for a set of ASCII characters, as hex-escaped ranges."""
    codes = sorted(ord(c) for c in chars)
    if not codes or codes[-1] > 0x7F:
        raise ValueError("gbnf_class takes a non-empty set of ASCII characters")
    ranges: list[tuple[int, int]] = []
    for c in codes:
        if ranges and c == ranges[-1][1] + 1:
            ranges[-1] = (ranges[-1][0], c)
        else:
            ranges.append((c, c))
    parts = [f"\\x{a:02X}" if a == b else f"\\x{a:02X}-\\x{b:02X}" for a, b in ranges]
    return "[" + "".join(parts) + "]"


def _alternatives(items: list[str]) -> str:
    return " | ".join(gbnf_literal(s) for s in items)


def _repeat(rule: str, low: int, high: int) -> str:
    """``rule{low,high}``, omitted when high is 0."""
    if high <= 0:
        return ""
    return f" {rule}{{{low},{high}}}"


def number_up_to(high: int) -> str:
    """A GBNF expression for the numbers 1..``high`` written without leading zeros (``high`` at
    least 1 and at most NUMBER_DIGITS digits): the shorter numbers, then digit by digit those of
    ``high``'s length that stay at or below it."""
    top = str(high)
    if not 1 <= high < 10**NUMBER_DIGITS:
        raise ValueError(f"high must be 1-{10**NUMBER_DIGITS - 1}, got {high}")
    alternatives = ["[1-9]" + "[0-9]" * (length - 1) for length in range(1, len(top))]
    for i, digit in enumerate(top):
        low, below = (1 if i == 0 else 0), int(digit) - 1
        if below >= low:
            head = f"{gbnf_literal(top[:i])} " if i else ""
            tail = "[0-9]" * (len(top) - i - 1)
            digits = f"[{low}-{below}]" if below > low else gbnf_literal(str(low))
            alternatives.append(f"{head}{digits}{tail}")
    alternatives.append(gbnf_literal(top))
    return "(" + " | ".join(alternatives) + ")"


def _check_path(path: str) -> None:
    if parse_command(f"delete {path}") != Operation(Verb.DELETE, path) or path == "*":
        raise ValueError(f"path {path!r} cannot appear in a command line")


def _check_action(action: str) -> None:
    if parse_command(f"ACT {action}") != Act(action):
        raise ValueError(f"action {action!r} cannot appear in a command line (spaces, newlines?)")


#: verbs that need a file that exists, and verbs that write to a file (a known one or a new name)
_NEEDS_KNOWN = frozenset({Verb.VIEW, Verb.TAIL, Verb.STR_REPLACE, Verb.INSERT, Verb.DELETE, Verb.RENAME})
_NEEDS_TARGET = frozenset({Verb.APPEND, Verb.WRITE, Verb.CREATE, Verb.UPSERT, Verb.RENAME})


def _offered_verbs(verbs: set[Verb], has_known: bool, allow_new_paths: bool) -> set[Verb]:
    """The verbs a grammar can offer: those with a file to name."""
    return {
        v
        for v in verbs
        if (v not in _NEEDS_KNOWN or has_known) and (v not in _NEEDS_TARGET or has_known or allow_new_paths)
    }


def build_grammar(
    *,
    verbs: set[Verb],
    paths: list[str],
    actions: list[str],
    allow_done: bool,
    allow_act: bool,
    allow_new_paths: bool,
    max_text_chars: int = 120,
    max_old_chars: int | None = None,
    insert_lines: Mapping[str, int] | None = None,
) -> str:
    """A GBNF grammar (root rule ``root``) for one command line, optionally ending in a newline.

    ``paths`` are the files that exist now: verbs that need an existing file (view, tail,
    str_replace, insert, delete, rename) are left out while there is none; search and count can
    always use ``*``. With ``allow_new_paths`` the writing verbs (append, write, create, upsert,
    and rename's target) may also name a new ``[a-z0-9_]{1,24}`` file ending in .md or .txt.
    Free texts hold at most ``max_text_chars`` characters; str_replace's old text at most
    ``max_old_chars`` (default: the same). ``insert_lines``: the files' line counts, where known:
    an insert into such a file names a line from 1 to one past its end, the lines the folder takes
    (any other is refused after the model paid for writing it).
    Raises ValueError if a path or action cannot be written in a command, ``allow_act`` comes
    without actions, or nothing at all would be allowed.
    """
    if max_text_chars < 1 or (max_old_chars is not None and max_old_chars < 1):
        raise ValueError("max_text_chars and max_old_chars must be at least 1")
    verbs = {Verb(v) for v in verbs}
    known = list(dict.fromkeys(paths))
    for p in known:
        _check_path(p)
    acts = list(dict.fromkeys(actions))
    for a in acts:
        _check_action(a)

    n = max_text_chars
    rules: dict[str, str] = {}
    choices: list[str] = []

    if allow_done:
        rules["done"] = '"DONE"'
        choices.append("done")
    if allow_act:
        if not acts:
            raise ValueError("allow_act needs at least one action")
        rules["act"] = '"ACT " action'
        rules["action"] = _alternatives(acts)
        choices.append("act")

    has_known = bool(known)
    # a path a write may target: a known one or, when allowed, a fresh safe name
    target_parts = (["path"] if has_known else []) + (["new-path"] if allow_new_paths else [])
    needed: set[str] = set()  # helper rules the chosen verbs refer to

    offered = _offered_verbs(verbs, has_known, allow_new_paths)

    def add(verb: Verb, body: str, *, uses: tuple[str, ...] = ()) -> None:
        if verb not in offered:
            return
        name = verb.value.replace("_", "-")  # GBNF rule names allow letters, digits and '-'
        rules[name] = body
        choices.append(name)
        needed.update(uses)

    any_path, any_uses = ('(path | "*")', ("path",)) if has_known else ('"*"', ())
    add(Verb.VIEW, '"view " path (" " num "-" num)?', uses=("path", "num"))
    add(Verb.TAIL, '"tail " path (" " num)?', uses=("path", "num"))
    add(Verb.SEARCH, f'"search " {any_path} " " query', uses=(*any_uses, "query"))
    add(Verb.COUNT, f'"count " {any_path}', uses=any_uses)
    add(Verb.APPEND, '"append " target ": " text', uses=("target", "text"))
    add(Verb.WRITE, '"write " target ": " text', uses=("target", "text"))
    add(Verb.CREATE, '"create " target ": " text', uses=("target", "text"))
    add(Verb.STR_REPLACE, '"str_replace " path ": " old " =>" (" " text)?', uses=("path", "old", "text"))
    if insert_lines:
        add(Verb.INSERT, '"insert " insert-at ": " text', uses=("insert-at", "text"))
    else:
        add(Verb.INSERT, '"insert " path " " num ": " text', uses=("path", "num", "text"))
    add(Verb.DELETE, '"delete " path', uses=("path",))
    add(Verb.RENAME, '"rename " path " " target', uses=("path", "target"))
    add(Verb.UPSERT, '"upsert " target " " key ": " record', uses=("target", "key", "record"))

    if not choices:
        raise ValueError("the grammar would allow nothing: enable DONE, ACT with actions, or verbs with paths")

    if "target" in needed:
        rules["target"] = " | ".join(target_parts)
        needed.update(target_parts)
    if "path" in needed:
        rules["path"] = _alternatives(known)
    if "new-path" in needed:
        suffixes = _alternatives(list(NEW_PATH_SUFFIXES))
        rules["new-path"] = f"{gbnf_class(_NEW_NAME)}{{1,{NEW_PATH_CHARS}}} ({suffixes})"
    if "insert-at" in needed and insert_lines:
        highest = 10**NUMBER_DIGITS - 1
        rules["insert-at"] = " | ".join(
            f"{gbnf_literal(p + ' ')} {number_up_to(min(insert_lines[p] + 1, highest)) if p in insert_lines else 'num'}"
            for p in known
        )
        if any(p not in insert_lines for p in known):
            needed.add("num")
    if "num" in needed:
        rules["num"] = f"[1-9]{_repeat('[0-9]', 0, NUMBER_DIGITS - 1)}"
    if "text" in needed:
        # first character not a space (the parser trims), then printable ASCII or the \n escape
        rules["text"] = f"text-first{_repeat('text-char', 0, n - 1)}"
        rules["text-first"] = f'{gbnf_class(_TEXT - {" "})} | "\\\\n"'
        rules["text-char"] = f'{gbnf_class(_TEXT)} | "\\\\n"'
    if "old" in needed:  # the old text of str_replace cannot hold '=' (the '=>' separator)
        rules["old"] = f"old-first{_repeat('old-char', 0, (max_old_chars or n) - 1)}"
        rules["old-first"] = f'{gbnf_class(_TEXT - {" ", "="})} | "\\\\n"'
        rules["old-char"] = f'{gbnf_class(_TEXT - {"="})} | "\\\\n"'
    if "key" in needed:
        rules["key"] = f"{gbnf_class(_KEY)}{{1,{KEY_CHARS}}}"
    if "record" in needed:  # upsert keeps one line per key: no \n escape
        rules["record"] = f"{gbnf_class(_TEXT - {' '})}{_repeat(gbnf_class(_TEXT), 0, n - 1)}"
    if "query" in needed:  # not starting with ':' or a quote, which the parser would strip
        first = gbnf_class(_PRINTABLE - {" ", ":", '"', "'", "`"})
        rules["query"] = f"{first}{_repeat(gbnf_class(_PRINTABLE), 0, n - 1)}"
    lines = ['root ::= cmd "\\n"?', "cmd ::= " + " | ".join(choices)]
    lines += [f"{name} ::= {body}" for name, body in rules.items()]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class ForcedStart:
    """What a grammar leaves the model no choice about at the start of a command.

    ``whole``: the grammar allows one command only, so no model call is needed. Otherwise every
    command begins with ``prefix`` and ``rest`` is the grammar of what follows it; the prefix ends
    before a space, so the model's next token is the one ordinary tokenization would give (" move"
    after "ACT", never "move" after "ACT "), and the text it can write is exactly the original's.
    """

    prefix: str
    rest: str
    whole: str | None = None


def forced_start(*, verbs: set[Verb], paths: list[str], actions: list[str], allow_done: bool, allow_act: bool,
                 allow_new_paths: bool) -> ForcedStart | None:  # fmt: skip
    """The forced start of ``build_grammar``'s language for these settings, or None when its first
    character is already the model's choice. Only turns whose one choice is ACT (PLAN's last turn)
    or DONE have one: any verb the grammar would offer opens a choice."""
    offered = _offered_verbs({Verb(v) for v in verbs}, bool(paths), allow_new_paths)
    if offered:
        return None
    acts = list(dict.fromkeys(actions))
    if allow_done and not (allow_act and acts):
        return ForcedStart(prefix="", rest="", whole="DONE")
    if not allow_act or allow_done or not acts:
        return None
    for a in acts:
        _check_action(a)
    if len(acts) == 1:
        return ForcedStart(prefix="", rest="", whole=f"ACT {acts[0]}")
    rest = f'root ::= " " action "\\n"?\naction ::= {_alternatives(acts)}\n'
    return ForcedStart(prefix="ACT", rest=rest)
