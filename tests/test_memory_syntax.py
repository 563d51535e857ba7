from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from automem.memory import (
    USAGE,
    Act,
    Done,
    Operation,
    ParseError,
    Verb,
    decode_text,
    encode_text,
    format_command,
    parse_command,
)

V = Verb


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("DONE", Done()),
        ("ACT noop", Act("noop")),
        ("ACT far east", Act("far east")),
        ("view map.md", Operation(V.VIEW, "map.md")),
        ("view map.md 3-7", Operation(V.VIEW, "map.md", start=3, end=7)),
        ("view map.md 3", Operation(V.VIEW, "map.md", start=3)),
        ("tail log.md", Operation(V.TAIL, "log.md")),
        ("tail log.md 5", Operation(V.TAIL, "log.md", n=5)),
        ("search map.md iron ore", Operation(V.SEARCH, "map.md", query="iron ore")),
        ("search * water", Operation(V.SEARCH, "*", query="water")),
        ("count map.md", Operation(V.COUNT, "map.md")),
        ("count *", Operation(V.COUNT, "*")),
        ("append progress.md: got wood", Operation(V.APPEND, "progress.md", text="got wood")),
        (r"write plan.md: 1. wood\n2. table", Operation(V.WRITE, "plan.md", text="1. wood\n2. table")),
        ("create notes/a.md: hi", Operation(V.CREATE, "notes/a.md", text="hi")),
        ("str_replace map.md: north => south", Operation(V.STR_REPLACE, "map.md", old="north", new="south")),
        ("str_replace map.md: stale line =>", Operation(V.STR_REPLACE, "map.md", old="stale line", new="")),
        ("insert map.md 2: # iron", Operation(V.INSERT, "map.md", line=2, text="# iron")),
        ("delete old.md", Operation(V.DELETE, "old.md")),
        ("rename a.md b/c.md", Operation(V.RENAME, "a.md", new_path="b/c.md")),
        ("upsert map.md 12,5: tree", Operation(V.UPSERT, "map.md", key="12,5", text="tree")),
        ("upsert map.md water: at 3:4", Operation(V.UPSERT, "map.md", key="water", text="at 3:4")),
    ],
)
def test_canonical_lines(line: str, expected: object) -> None:
    assert parse_command(line) == expected
    assert format_command(expected) == line  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("  DONE  ", Done()),
        ("done.", Done()),
        ("Done!", Done()),
        ("act  far   east ", Act("far east")),
        ("ACT: noop", Act("noop")),
        ("ACT `move_left`", Act("move_left")),
        ('ACT "noop"', Act("noop")),
        ("\n\n  VIEW map.md\nmore text", Operation(V.VIEW, "map.md")),
        ("```\nview map.md 1-2\n```", Operation(V.VIEW, "map.md", start=1, end=2)),
        ("```text\nACT noop\n```", Act("noop")),
        ("```ACT noop```", Act("noop")),
        ("```DONE", Done()),
        ("`view map.md`", Operation(V.VIEW, "map.md")),
        ("Command: view map.md", Operation(V.VIEW, "map.md")),
        ("command:`ACT noop`", Act("noop")),
        ("> ACT noop", Act("noop")),
        ("$ count *", Operation(V.COUNT, "*")),
        ("Answer: DONE", Done()),
        ("read map.md 2-3", Operation(V.VIEW, "map.md", start=2, end=3)),
        ("view map.md:2-3", Operation(V.VIEW, "map.md", start=2, end=3)),
        ("view `map.md`", Operation(V.VIEW, "map.md")),
        ("view: map.md", Operation(V.VIEW, "map.md")),
        ("append progress.md got wood", Operation(V.APPEND, "progress.md", text="got wood")),
        ("append progress.md:got wood", Operation(V.APPEND, "progress.md", text="got wood")),
        ("append progress.md :  got wood  ", Operation(V.APPEND, "progress.md", text="got wood")),
        ("str_replace map.md: a=>b", Operation(V.STR_REPLACE, "map.md", old="a", new="b")),
        ("str_replace map.md: a => b => c", Operation(V.STR_REPLACE, "map.md", old="a", new="b => c")),
        ("insert map.md 2 text", Operation(V.INSERT, "map.md", line=2, text="text")),
        ("rename a.md -> b.md", Operation(V.RENAME, "a.md", new_path="b.md")),
        ("rename a.md to b.md", Operation(V.RENAME, "a.md", new_path="b.md")),
        ("upsert map.md water east", Operation(V.UPSERT, "map.md", key="water", text="east")),
        ('search map.md "iron"', Operation(V.SEARCH, "map.md", query="iron")),
        ("view ../etc/passwd", Operation(V.VIEW, "../etc/passwd")),  # paths are the folder's business
        (r"append a.md: x\\ny", Operation(V.APPEND, "a.md", text="x\\ny")),
        (r"append a.md: C:\dir", Operation(V.APPEND, "a.md", text="C:\\dir")),
    ],
)
def test_tolerant_parsing(text: str, expected: object) -> None:
    assert parse_command(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty answer"),
        ("   \n ``` \n", "empty answer"),
        ("I think I should go left", "unknown command 'I'"),
        ("move_left", "unknown command 'move_left'"),
        ("viewer map.md", "unknown command 'viewer'"),
        ("view(map.md)", "unknown command"),
        ("DONE now", "DONE takes nothing"),
        ("ACT", "ACT needs an action"),
        ("view", "view needs a path; usage: view <path> [<start>-<end>]"),
        ("view map.md lines", "bad line range"),
        ("view map.md 1-x", "bad line range"),
        ("view map.md 99999999999999", "bad line range"),
        ("tail map.md many", "bad line count"),
        ("search map.md", "search needs a query"),
        ("count map.md extra", "count takes only a path"),
        ("delete a.md b.md", "delete takes only a path"),
        ("str_replace map.md: no arrow", "missing '=>'"),
        ("str_replace map.md: => new", "the old text is empty"),
        ("insert map.md: text", "insert needs a line number"),
        ("rename a.md", "rename needs one new path"),
        ("rename a.md b.md c.md", "rename needs one new path"),
        ("upsert map.md water", "missing '<key>: <text>'"),
        ("upsert map.md iron ore: north", "one word"),
        ("upsert map.md : north", "missing '<key>: <text>'"),
        ("upsert map.md:: : north", "missing key"),
    ],
)
def test_parse_errors_say_what_is_wrong(text: str, message: str) -> None:
    result = parse_command(text)
    assert isinstance(result, ParseError)
    assert message in result.message


def test_usage_covers_every_verb() -> None:
    assert set(USAGE) == set(Verb)
    for verb, usage in USAGE.items():
        assert usage.startswith(verb.value + " ")


def test_escapes() -> None:
    assert decode_text(r"a\nb") == "a\nb"
    assert decode_text(r"a\\nb") == "a\\nb"
    assert decode_text("a\\") == "a\\"
    for s in ["a\nb", "a\\nb", "\\", "x\\\n"]:
        assert decode_text(encode_text(s)) == s


def test_format_refuses_what_no_line_can_express() -> None:
    for bad in [
        Operation(V.VIEW, "a b.md"),
        Operation(V.VIEW, "a:b"),
        Operation(V.APPEND, "a.md", text=" leading space"),
        Operation(V.APPEND, "a.md"),  # text missing
        Operation(V.STR_REPLACE, "a.md", old="x => y", new="z"),
        Operation(V.UPSERT, "a.md", key="two words", text="x"),
        Operation(V.VIEW, "a.md", end=3),
        Act(" far"),
        Act("a\nb"),
    ]:
        with pytest.raises(ValueError):
            format_command(bad)


def test_operation_serialises() -> None:
    op = Operation(V.UPSERT, "map.md", key="12,5", text="tree")
    assert op.to_args() == {"key": "12,5", "text": "tree"}
    assert op.to_dict() == {"verb": "upsert", "path": "map.md", "key": "12,5", "text": "tree"}
    assert Operation.from_dict(op.to_dict()) == op
    assert Operation("view", "a.md").verb is V.VIEW  # type: ignore[arg-type]
    assert str(V.STR_REPLACE) == "str_replace"


# -- properties ---------------------------------------------------------------------------
NAME = st.text("abcdefghijklmnopqrstuvwxyzABCXYZ0123456789_.-", min_size=1, max_size=12)
PATH = st.lists(NAME, min_size=1, max_size=3).map("/".join)
# printable text with the characters that need care: backslashes, colons, '=>', quotes, newlines
CHARS = st.characters(min_codepoint=32, max_codepoint=0x2FF, blacklist_categories=("Cc", "Zs")) | st.sampled_from(
    [" ", "\\", ":", "=", ">", "\n", '"', "`", "é", "→"]
)
TEXT = st.text(CHARS, max_size=40).map(str.strip)
NONEMPTY = TEXT.filter(bool)
LINE_NO = st.integers(0, 10**6)
KEY = st.text(st.characters(min_codepoint=33, max_codepoint=126, blacklist_characters=":"), min_size=1, max_size=10)
ACTION = st.lists(st.text("abcdefghijklmnopqrstuvwxyz_0123456789", min_size=1, max_size=8), min_size=1, max_size=3).map(
    " ".join
)

commands = st.one_of(
    st.just(Done()),
    st.builds(Act, ACTION),
    st.builds(lambda p: Operation(V.VIEW, p), PATH),
    st.builds(lambda p, a, b: Operation(V.VIEW, p, start=a, end=b), PATH, LINE_NO, st.none() | LINE_NO),
    st.builds(lambda p, n: Operation(V.TAIL, p, n=n), PATH, st.none() | LINE_NO),
    st.builds(
        lambda p, q: Operation(V.SEARCH, p, query=q),
        PATH | st.just("*"),
        NONEMPTY.filter(lambda q: "\n" not in q and q[0] not in ":\"'`"),
    ),
    st.builds(lambda p: Operation(V.COUNT, p), PATH | st.just("*")),
    st.builds(lambda v, p, t: Operation(v, p, text=t), st.sampled_from([V.APPEND, V.WRITE, V.CREATE]), PATH, TEXT),
    st.builds(
        lambda p, o, n: Operation(V.STR_REPLACE, p, old=o, new=n), PATH, NONEMPTY.filter(lambda o: "=>" not in o), TEXT
    ),
    st.builds(lambda p, n, t: Operation(V.INSERT, p, line=n, text=t), PATH, LINE_NO, TEXT),
    st.builds(lambda p: Operation(V.DELETE, p), PATH),
    st.builds(lambda p, q: Operation(V.RENAME, p, new_path=q), PATH, PATH),
    st.builds(lambda p, k, t: Operation(V.UPSERT, p, key=k, text=t), PATH, KEY, TEXT),
)


@settings(max_examples=1000)
@given(commands)
def test_format_then_parse_is_identity(command: object) -> None:
    line = format_command(command)  # type: ignore[arg-type]
    assert "\n" not in line
    assert parse_command(line) == command
    # what a chatty model wraps around the same line changes nothing
    assert parse_command(f"\n```\nCommand: {line}\n```\nbecause ...") == command


@settings(max_examples=1000)
@given(st.text(max_size=200))
def test_parse_never_raises(text: str) -> None:
    result = parse_command(text)
    assert isinstance(result, (Done, Act, Operation, ParseError))
    if not isinstance(result, ParseError):
        try:  # the canonical form of anything parsed reads back the same, when it has one
            assert parse_command(format_command(result)) == result
        except ValueError:
            pass


@settings(max_examples=500)
@given(st.sampled_from(sorted(v.value for v in Verb)), st.text(max_size=80))
def test_parse_never_raises_after_a_verb(verb: str, rest: str) -> None:
    assert isinstance(parse_command(f"{verb} {rest}"), (Operation, ParseError))
