from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from automem.memory import FileLimits, MemoryFolder, MemoryLimits, Operation, OpResult, Verb, parse_command
from automem.memory.ops import changed_line_numbers, split_lines


def run(folder: MemoryFolder, line: str) -> OpResult:
    op = parse_command(line)
    assert isinstance(op, Operation), op
    return folder.execute(op)


@pytest.fixture
def folder(tmp_path: Path) -> MemoryFolder:
    limits = MemoryLimits(
        max_files=6,
        max_read_lines=5,
        max_search_results=3,
        max_text_chars=80,
        files={
            "log.md": FileLimits(max_lines=3, max_chars=60, overflow="drop_oldest"),
            "rules.md": FileLimits(max_lines=5, max_chars=200, read_only=True),
            "small.md": FileLimits(max_lines=2, max_chars=20),
        },
    )
    f = MemoryFolder(tmp_path / "mem", limits)
    f.seed({"rules.md": "be kind\nbe quick", "map.md": "water: east\ntree: north"})
    return f


# -- read verbs ---------------------------------------------------------------------------
def test_view_shows_numbered_lines_and_range(folder: MemoryFolder) -> None:
    r = run(folder, "view map.md")
    assert r.ok and r.message == "map.md lines 1-2 of 2:\n1: water: east\n2: tree: north"
    assert r.before is None and r.after is None
    assert run(folder, "view map.md 2-2").message == "map.md lines 2-2 of 2:\n2: tree: north"
    assert run(folder, "read map.md 2").message.endswith("2: tree: north")


def test_view_is_capped_and_says_how_to_see_more(folder: MemoryFolder) -> None:
    folder.write_text_trusted("long.md", "\n".join(f"l{i}" for i in range(1, 13)))
    r = run(folder, "view long.md")
    assert r.message.splitlines()[0] == "long.md lines 1-5 of 12:"
    assert r.message.splitlines()[-1] == "(7 more; view long.md 6-10)"
    assert run(folder, "view long.md 3-100").message.splitlines()[0] == "long.md lines 3-7 of 12:"


def test_view_refusals(folder: MemoryFolder) -> None:
    assert run(folder, "view map.md 5").message == "refused: map.md has only 2 lines"
    assert run(folder, "view map.md 0-1").message.startswith("refused: bad line range 0-1")
    assert run(folder, "view map.md 2-1").message.startswith("refused: bad line range 2-1")
    missing = run(folder, "view nope.md")
    assert not missing.ok and missing.message == "refused: no file nope.md; files: map.md, rules.md"
    folder.write_text_trusted("empty.md", "")
    assert run(folder, "view empty.md").message == "empty.md is empty"


def test_tail(folder: MemoryFolder) -> None:
    assert run(folder, "tail map.md 1").message == "map.md lines 2-2 of 2:\n2: tree: north"
    assert run(folder, "tail map.md").message.startswith("map.md lines 1-2 of 2:")
    folder.write_text_trusted("long.md", "\n".join(f"l{i}" for i in range(1, 13)))
    assert run(folder, "tail long.md 30").message.splitlines()[0] == "long.md lines 8-12 of 12:"


def test_search_one_file_and_all(folder: MemoryFolder) -> None:
    assert run(folder, "search map.md WATER").message == "1 match for 'WATER':\nmap.md:1: water: east"
    r = run(folder, "search * be")
    assert r.message == "2 matches for 'be':\nrules.md:1: be kind\nrules.md:2: be quick"
    assert run(folder, "search * zebra").message == "no lines match 'zebra' in any file"
    folder.write_text_trusted("many.md", "x\nx\nx\nx\nx")
    assert run(folder, "search many.md x").message.startswith("5 matches for 'x' (first 3):")
    assert len(run(folder, "search many.md x").message.splitlines()) == 4


def test_count(folder: MemoryFolder) -> None:
    assert run(folder, "count map.md").message == "map.md: 2 lines, 23 chars (cap 200 lines, 4000 chars)"
    r = run(folder, "count *")
    assert r.message == (
        "2 files (cap 6):\n"
        "map.md: 2 lines, 23 chars (cap 200 lines, 4000 chars)\n"
        "rules.md: 2 lines, 16 chars (cap 5 lines, 200 chars, read-only)"
    )


# -- write verbs --------------------------------------------------------------------------
def test_append_creates_then_appends(folder: MemoryFolder) -> None:
    r = run(folder, "append progress.md: got wood")
    assert r.ok and r.message == "ok: appended 1 line to new file progress.md (1 line)"
    assert r.before is None and r.after == "got wood\n" and r.changed_lines == [1]
    r = run(folder, r"append progress.md: table\nsword")
    assert r.message == "ok: appended 2 lines to progress.md (3 lines)"
    assert r.before == "got wood\n" and r.after == "got wood\ntable\nsword\n" and r.changed_lines == [2, 3]
    assert r.verb is Verb.APPEND and r.path == "progress.md" and r.args == {"text": "table\nsword"}
    assert run(folder, "append progress.md:").message == "refused: nothing to append"


def test_write_replaces_whole_file(folder: MemoryFolder) -> None:
    r = run(folder, r"write map.md: a\nb\nc")
    assert r.ok and r.message == "ok: replaced map.md (3 lines)"
    assert r.before == "water: east\ntree: north\n" and r.after == "a\nb\nc\n" and r.changed_lines == [1, 2, 3]
    assert run(folder, "write new.md: x").message == "ok: created new.md (1 line)"
    assert run(folder, "write new.md:").after == ""


def test_create_refuses_existing(folder: MemoryFolder) -> None:
    assert run(folder, "create notes.md: hello").message == "ok: created notes.md (1 line)"
    r = run(folder, "create notes.md: again")
    assert not r.ok and r.message == "refused: notes.md exists; use write to replace it"
    assert folder.read_text("notes.md") == "hello\n"


def test_str_replace_exactly_once(folder: MemoryFolder) -> None:
    r = run(folder, "str_replace map.md: north => south")
    assert r.ok and r.message == "ok: replaced text at line 2 of map.md (2 lines)"
    assert r.after == "water: east\ntree: south\n" and r.changed_lines == [2]
    assert run(folder, "str_replace map.md: zebra => x").message == "refused: 'zebra' not found in map.md"
    r = run(folder, "str_replace map.md: : => =")
    assert r.message == "refused: ':' found 2 times in map.md; include more of the line"
    r = run(folder, r"str_replace map.md: east\ntree => east\nbush\ntree")  # spans lines
    assert r.ok and r.after == "water: east\nbush\ntree: south\n" and r.changed_lines == [2]
    assert run(folder, "str_replace map.md: bush\\n =>").after == "water: east\ntree: south\n"


def test_insert(folder: MemoryFolder) -> None:
    r = run(folder, "insert map.md 1: # map")
    assert r.ok and r.message == "ok: inserted 1 line at line 1 of map.md (3 lines)"
    assert r.after == "# map\nwater: east\ntree: north\n" and r.changed_lines == [1]
    assert run(folder, "insert map.md 4: end").after.endswith("tree: north\nend\n")  # n+1 appends
    assert run(folder, "insert map.md 9: x").message == "refused: line must be 1-5 for map.md (4 lines)"
    assert run(folder, "insert nope.md 1: x").message.startswith("refused: no file nope.md")


def test_upsert_replaces_or_appends_keyed_line(folder: MemoryFolder) -> None:
    r = run(folder, "upsert map.md water: west")
    assert r.ok and r.message == "ok: updated water at line 1 of map.md (2 lines)"
    assert r.after == "water: west\ntree: north\n" and r.changed_lines == [1]
    r = run(folder, "upsert map.md 12,5: iron")
    assert r.message == "ok: added 12,5 at line 3 of map.md (3 lines)" and r.changed_lines == [3]
    r = run(folder, "upsert coords.md 1,1: start")
    assert r.ok and r.after == "1,1: start\n"
    bad = folder.execute(Operation(Verb.UPSERT, "map.md", key="two words", text="x"))
    assert not bad.ok and "one word" in bad.message
    assert not folder.execute(Operation(Verb.UPSERT, "map.md", key="k", text="a\nb")).ok


def test_delete_and_rename(folder: MemoryFolder) -> None:
    run(folder, "create notes/day1.md: hi")
    r = run(folder, "rename notes/day1.md archive/old/day1.md")
    assert r.ok and r.message == "ok: renamed notes/day1.md to archive/old/day1.md"
    assert r.before == r.after == "hi\n"
    assert not (folder.root / "notes").exists()  # emptied directories are removed
    assert run(folder, "rename map.md archive/old/day1.md").message == "refused: archive/old/day1.md exists"
    assert run(folder, "rename map.md map.md").message == "refused: the new path is the same"
    r = run(folder, "delete archive/old/day1.md")
    assert r.ok and r.message == "ok: deleted archive/old/day1.md" and r.before == "hi\n" and r.after is None
    assert not (folder.root / "archive").exists()
    assert run(folder, "delete archive/old/day1.md").message.startswith("refused: no file archive/old/day1.md")


def test_rename_into_capped_file_is_checked(folder: MemoryFolder) -> None:
    run(folder, "write big.md: a\\nb\\nc")
    assert run(folder, "rename big.md small.md").message == "refused: small.md would have 3 lines (cap 2)"
    assert folder.read_text("big.md") == "a\nb\nc\n"


# -- caps ---------------------------------------------------------------------------------
def test_read_only_files(folder: MemoryFolder) -> None:
    for line in (
        "append rules.md: x",
        "write rules.md: x",
        "delete rules.md",
        "rename rules.md r.md",
        "str_replace rules.md: kind => mean",
        "insert rules.md 1: x",
        "upsert rules.md k: v",
    ):
        r = run(folder, line)
        assert not r.ok and r.message == "refused: rules.md is read-only", line
    assert run(folder, "view rules.md").ok
    assert folder.read_text("rules.md") == "be kind\nbe quick\n"
    assert folder.write_text_trusted("rules.md", "edited by a person").ok  # a person may edit it


def test_line_and_char_caps_refuse(folder: MemoryFolder) -> None:
    assert run(folder, r"write small.md: a\nb").ok
    r = run(folder, "append small.md: c")
    assert not r.ok and r.message == "refused: small.md would have 3 lines (cap 2)"
    assert run(folder, "write small.md: " + "x" * 21).message == "refused: small.md would have 21 chars (cap 20)"
    assert folder.read_text("small.md") == "a\nb\n"


def test_drop_oldest_keeps_a_rolling_log(folder: MemoryFolder) -> None:
    for i in range(1, 6):
        r = run(folder, f"append log.md: event {i}")
        assert r.ok
    assert r.message == "ok: appended 1 line to log.md (3 lines, dropped 1 oldest)"
    assert folder.read_text("log.md") == "event 3\nevent 4\nevent 5\n"
    assert r.changed_lines == [3]
    r = run(folder, "append log.md: " + "y" * 50)  # the char cap (60) also drops old lines
    assert r.ok and folder.read_text("log.md") == "event 5\n" + "y" * 50 + "\n"
    too_long = run(folder, "append log.md: " + "z" * 70)
    assert not too_long.ok and "longer than 80" not in too_long.message and "does not fit" in too_long.message


def test_text_and_file_count_caps(folder: MemoryFolder) -> None:
    assert run(folder, "append a.md: " + "x" * 81).message == "refused: text is longer than 80 characters"
    for i in range(4):
        assert run(folder, f"create f{i}.md: x").ok
    r = run(folder, "create f9.md: x")
    assert not r.ok and r.message == "refused: the folder already holds 6 files (cap 6)"
    assert run(folder, "write f0.md: still fine").ok  # rewriting an existing file is not a new file
    assert not folder.execute(Operation(Verb.APPEND, "a.md", text="bell\x07")).ok


def test_new_files_can_be_forbidden(tmp_path: Path) -> None:
    limits = MemoryLimits(allow_new_files=False, files={"map.md": FileLimits()})
    f = MemoryFolder(tmp_path / "m", limits)
    assert run(f, "append map.md: x").ok
    assert run(f, "append other.md: x").message == "refused: new files are not allowed; the files are: map.md"
    assert run(f, "rename map.md other.md").message.startswith("refused: new files are not allowed")


def test_disabled_verbs_are_refused_with_the_enabled_ones(tmp_path: Path) -> None:
    f = MemoryFolder(tmp_path / "m", MemoryLimits(), enabled={Verb.VIEW, Verb.APPEND})
    r = run(f, "delete x.md")
    assert not r.ok and r.message == "refused: delete is not enabled; enabled: view, append"
    none = MemoryFolder(tmp_path / "n", MemoryLimits(), enabled=set())
    assert run(none, "view x.md").message == "refused: memory commands are disabled"


# -- confinement --------------------------------------------------------------------------
BAD_PATHS = {
    "../secret.txt": "'.' and '..' are not allowed",
    "a/../../secret.txt": "'.' and '..' are not allowed",
    "./a.md": "'.' and '..' are not allowed",
    "/etc/passwd": "must be relative",
    "~/x.md": "must be relative",
    "C:/x.md": "must be relative",
    "a\\b.md": "use '/'",
    ".hidden": "hidden names",
    "a/.git/config": "hidden names",
    "a//b.md": "empty path part",
    "a/": "empty path part",
    "a\x00b": "control characters",
    "new\nline": "control characters",
    "é.md": "only letters",
    "-rf": "only letters",
    "a b.md": "only letters",
    "x" * 49: "limited to 48 characters",
    "a/b/c/d.md": "at most 3 levels deep",
    "/".join(["abcdefghij" * 4] * 3) + "/x": "longer than 120",
}


@pytest.mark.parametrize("bad", list(BAD_PATHS))
def test_bad_paths_are_refused_with_a_reason(folder: MemoryFolder, bad: str) -> None:
    for verb, extra in ((Verb.VIEW, {}), (Verb.APPEND, {"text": "x"}), (Verb.DELETE, {})):
        r = folder.execute(Operation(verb, bad, **extra))
        assert not r.ok and r.message.startswith("refused: ") and BAD_PATHS[bad] in r.message, r.message
    r = folder.execute(Operation(Verb.RENAME, "map.md", new_path=bad))
    assert not r.ok and BAD_PATHS[bad] in r.message
    assert folder.read_text("map.md") is not None


@pytest.fixture
def trap(tmp_path: Path) -> tuple[MemoryFolder, Path]:
    """A folder with symlinks, a hard link and a FIFO planted inside, pointing outside."""
    base = tmp_path
    (base / "outside").mkdir()
    (base / "outside" / "target.md").write_text("outside\n")
    (base / "secret.txt").write_text("secret\n")
    (base / "hard_target.txt").write_text("hard\n")
    f = MemoryFolder(base / "mem", MemoryLimits())
    mem = f.root
    (mem / "link_dir").symlink_to("../outside")
    (mem / "link.md").symlink_to(base / "secret.txt")
    (mem / "dangling.md").symlink_to("../created_outside.txt")
    (mem / "sub").mkdir()
    (mem / "sub" / "up").symlink_to("../..")
    os.link(base / "hard_target.txt", mem / "hard.md")
    os.mkfifo(mem / "fifo.md")
    return f, base


def _outside(base: Path) -> dict[str, tuple]:
    """Names, types, contents, link targets and mtimes of everything outside mem/."""
    state: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(base):
        rel = os.path.relpath(dirpath, base)
        if rel == "mem":
            dirnames[:] = []
            continue
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st_ = os.lstat(p)
            key = os.path.normpath(os.path.join(rel, name))
            if key == "mem":
                state[key] = (stat.S_IFMT(st_.st_mode),)
                continue
            content = Path(p).read_bytes() if stat.S_ISREG(st_.st_mode) else None
            link = os.readlink(p) if stat.S_ISLNK(st_.st_mode) else None
            state[key] = (stat.S_IFMT(st_.st_mode), st_.st_mtime_ns, st_.st_nlink, content, link)
        state["."] = (os.lstat(base).st_mtime_ns,)
    return state


def test_symlinks_hard_links_and_fifos_are_never_used(trap: tuple[MemoryFolder, Path]) -> None:
    f, base = trap
    before = _outside(base)
    lines = [
        "view link.md",
        "append link.md: pwned",
        "write link.md: pwned",
        "delete link.md",
        "rename link.md stolen.md",
        "str_replace link.md: secret => x",
        "upsert link.md k: v",
        "append dangling.md: x",
        "write dangling.md: x",
        "create dangling.md: x",
        "view link_dir/target.md",
        "write link_dir/target.md: x",
        "append link_dir/new.md: x",
        "delete link_dir/target.md",
        "rename link_dir/target.md t.md",
        "view sub/up/secret.txt",
        "write sub/up/secret.txt: x",
        "create sub/up/new.md: x",
        "view hard.md",
        "append hard.md: x",
        "write hard.md: x",
        "delete hard.md",
        "rename hard.md h.md",
        "view fifo.md",
        "append fifo.md: x",
        "write fifo.md: x",
        "delete fifo.md",
    ]
    for line in lines:
        r = run(f, line)
        assert not r.ok and r.message.startswith("refused: "), (line, r.message)
    assert run(f, "view link.md").message == "refused: link.md is a symlink (not followed)"
    assert run(f, "view link_dir/target.md").message == "refused: link_dir is a symlink (not followed), not a folder"
    assert run(f, "view hard.md").message == "refused: hard.md has other hard links; it is not used"
    assert run(f, "view fifo.md").message == "refused: fifo.md is not a regular file"
    assert _outside(base) == before
    assert not (base / "created_outside.txt").exists()
    assert run(f, "count *").message.startswith("0 files")  # hard.md is counted but not shown
    assert f.snapshot() == {}
    assert f.read_text("link.md") is None and f.write_text_trusted("link.md", "x").ok is False
    assert f.write_text_trusted("../x.md", "x").message.startswith("refused: ")


def test_a_directory_swapped_for_a_symlink_is_not_followed(tmp_path: Path) -> None:
    (tmp_path / "outside").mkdir()
    f = MemoryFolder(tmp_path / "mem", MemoryLimits())
    assert run(f, "write notes/a.md: mine").ok
    # someone replaces the directory with a symlink to a directory outside
    os.rename(f.root / "notes", tmp_path / "moved")
    (f.root / "notes").symlink_to(tmp_path / "outside")
    for line in ("write notes/a.md: x", "append notes/b.md: x", "view notes/a.md", "delete notes/a.md"):
        assert not run(f, line).ok
    assert os.listdir(tmp_path / "outside") == []


def test_root_swapped_for_a_symlink_is_not_followed(tmp_path: Path) -> None:
    (tmp_path / "outside").mkdir()
    f = MemoryFolder(tmp_path / "mem", MemoryLimits())
    os.rename(f.root, tmp_path / "moved")
    (tmp_path / "mem").symlink_to(tmp_path / "outside")
    r = run(f, "write a.md: x")
    assert r.message == "refused: the memory folder is not available"
    assert os.listdir(tmp_path / "outside") == []


def test_no_temp_files_are_left_and_writes_replace_the_entry(tmp_path: Path) -> None:
    f = MemoryFolder(tmp_path / "mem", MemoryLimits())
    for i in range(20):
        assert run(f, f"append a/log.md: line {i}").ok
    assert sorted(os.listdir(f.root / "a")) == ["log.md"]


def test_seed_and_trusted_writes(tmp_path: Path) -> None:
    limits = MemoryLimits(files={"s.md": FileLimits(max_lines=2, max_chars=50, read_only=True)})
    f = MemoryFolder(tmp_path / "m", limits)
    assert f.seed({"s.md": "one\ntwo\n", "dir/x.md": ""}) == ["s.md", "dir/x.md"]
    assert f.snapshot() == {"dir/x.md": "", "s.md": "one\ntwo\n"}
    assert f.listing() == [("dir/x.md", 0, 0), ("s.md", 2, 7)]
    assert f.seed({"s.md": "again"}) == [] and f.read_text("s.md") == "one\ntwo\n"  # kept across episodes
    assert f.seed({"s.md": "again"}, overwrite=True) == ["s.md"] and f.read_text("s.md") == "again\n"
    f.write_text_trusted("s.md", "one\ntwo")
    with pytest.raises(ValueError, match="would have 3 lines"):
        MemoryFolder(tmp_path / "m2", limits).seed({"s.md": "a\nb\nc"})
    with pytest.raises(ValueError):
        f.seed({"../x.md": "x"})
    r = f.write_text_trusted("s.md", "edited")
    assert r.ok and r.before == "one\ntwo\n" and r.after == "edited\n" and r.changed_lines == [1]
    assert f.write_text_trusted("s.md", "a\nb\nc").message == "refused: s.md would have 3 lines (cap 2)"


def test_never_raises_on_malformed_operations(folder: MemoryFolder) -> None:
    assert folder.execute(parse_command("nonsense")).message == "refused: not a memory operation"  # type: ignore[arg-type]
    weird = [
        Operation(Verb.VIEW, "map.md", start=-1),
        Operation(Verb.TAIL, "map.md", n=0),
        Operation(Verb.INSERT, "map.md", text="x"),  # no line
        Operation(Verb.RENAME, "map.md"),  # no new path
        Operation(Verb.SEARCH, "map.md"),  # no query
        Operation(Verb.APPEND, "map.md"),  # no text
        Operation(Verb.STR_REPLACE, "map.md", old=""),
        Operation(Verb.VIEW, None),  # type: ignore[arg-type]
        Operation(Verb.VIEW, "map.md", start="1"),  # type: ignore[arg-type]
    ]
    for op in weird:
        r = folder.execute(op)
        assert not r.ok and r.message.startswith("refused: ") and "internal error" not in r.message, r.message


def test_changed_line_numbers() -> None:
    assert changed_line_numbers(None, "a\nb\n") == [1, 2]
    assert changed_line_numbers("a\nb\n", "a\nx\nb\n") == [2]
    assert changed_line_numbers("a\nb\nc\n", "b\nc\nd\n") == [3]
    assert changed_line_numbers("a\nb\n", "a\nb\n") == []
    assert changed_line_numbers("a\n", None) == []
    assert split_lines("a\n\nb\n") == ["a", "", "b"] and split_lines("") == []


# -- property: nothing outside ever changes, caps always hold, nothing escapes -----------
PLANTED = ["link_dir", "link.md", "dangling.md", "sub", "up", "hard.md", "fifo.md", "real.md", "log.md"]
COMPONENTS = PLANTED + [
    "new.md",
    "a",
    "b.txt",
    "..",
    ".",
    "",
    "~",
    ".hidden",
    "x" * 60,
    "é.md",
    "a\x00b",
    "a\\b",
    "*",
    "C:",
    "secret.txt",
    "outside",
    "target.md",
    "created_outside.txt",
    "mem",
    " ",
    "-x",
    "ok_name.md",
]
LIMITS = MemoryLimits(
    max_files=7,
    max_file_chars=200,
    max_file_lines=8,
    max_read_lines=4,
    max_search_results=3,
    max_text_chars=60,
    files={
        "log.md": FileLimits(max_lines=3, max_chars=50, overflow="drop_oldest"),
        "real.md": FileLimits(max_lines=4, max_chars=100, read_only=True),
    },
)

paths = st.one_of(
    st.lists(st.one_of(st.sampled_from(COMPONENTS), st.text(max_size=6)), min_size=1, max_size=5).map("/".join),
    st.sampled_from(["/", "~/x.md", "../secret.txt", "sub/up/secret.txt", "link_dir/target.md", "*"]),
    st.builds(lambda p: p, st.just("ABS")),  # replaced by an absolute path into the temp dir
)
texts = st.one_of(st.text(max_size=80), st.sampled_from(["x", "a\nb", "k: v", "", "y" * 61, "\r\n", "bell\x07"]))
numbers = st.one_of(st.none(), st.integers(-3, 12), st.sampled_from([10**9, -(10**9)]))
operations = st.builds(
    Operation,
    verb=st.sampled_from(list(Verb)),
    path=paths,
    text=st.one_of(st.none(), texts),
    old=st.one_of(st.none(), texts, st.sampled_from(["x", "a", "y"])),
    new=st.one_of(st.none(), texts),
    start=numbers,
    end=numbers,
    n=numbers,
    query=st.one_of(st.none(), texts),
    line=numbers,
    key=st.one_of(st.none(), st.sampled_from(["k", "12,5", "a b", "x:y", ""]), st.text(max_size=5)),
    new_path=st.one_of(st.none(), paths),
)
SAFE_PATHS = ["new.md", "log.md", "notes.md", "a.md", "d/e.md", "d/f/g.md", "sub/n.md"]
TRAP_PATHS = [
    "real.md",
    "link.md",
    "dangling.md",
    "link_dir/target.md",
    "sub/up/secret.txt",
    "hard.md",
    "fifo.md",
    "sub",
    "d",
]
good_paths = st.one_of(st.sampled_from(SAFE_PATHS), st.sampled_from(SAFE_PATHS), st.sampled_from(TRAP_PATHS))


def _well_formed(verb: Verb, path: str, text: str, a: int, b: int, key: str, new_path: str) -> Operation:
    """An operation with the fields its verb uses, so that many of them succeed."""
    if path == "*" and verb not in (Verb.SEARCH, Verb.COUNT):
        path = "notes.md"
    fields = {
        Verb.VIEW: {"start": a, "end": b},
        Verb.TAIL: {"n": a},
        Verb.SEARCH: {"query": text[:10] or "x"},
        Verb.STR_REPLACE: {"old": text[:3] or "x", "new": text[3:]},
        Verb.INSERT: {"line": a, "text": text},
        Verb.RENAME: {"new_path": new_path},
        Verb.UPSERT: {"key": key, "text": text.replace("\n", " ")},
    }.get(verb, {} if verb in (Verb.COUNT, Verb.DELETE) else {"text": text})
    return Operation(verb, path, **fields)


well_formed = st.builds(
    _well_formed,
    verb=st.sampled_from(list(Verb)),
    path=st.one_of(good_paths, good_paths, good_paths, st.just("*")),
    text=st.text(st.characters(min_codepoint=32, max_codepoint=126) | st.just("\n"), min_size=1, max_size=70),
    a=st.integers(0, 6),
    b=st.integers(0, 9),
    key=st.sampled_from(["k", "12,5", "water"]),
    new_path=good_paths,
)
steps = st.lists(st.one_of(*[well_formed] * 4, operations, st.just("SWAP")), min_size=8, max_size=20)


def _plant(base: Path) -> MemoryFolder:
    (base / "outside").mkdir()
    (base / "outside" / "target.md").write_text("outside\n")
    (base / "secret.txt").write_text("secret\n")
    (base / "hard_target.txt").write_text("hard\n")
    f = MemoryFolder(base / "mem", LIMITS, enabled=set(Verb))
    mem = f.root
    (mem / "link_dir").symlink_to("../outside")
    (mem / "link.md").symlink_to(base / "secret.txt")
    (mem / "dangling.md").symlink_to("../created_outside.txt")
    (mem / "sub").mkdir()
    (mem / "sub" / "up").symlink_to("../..")
    os.link(base / "hard_target.txt", mem / "hard.md")
    os.mkfifo(mem / "fifo.md")
    (mem / "real.md").write_text("real one\nreal two\n")
    f.seed({"notes.md": "k: v\nwater: east\nx y z", "d/e.md": "deep\nx", "log.md": "e1\ne2"})
    return f


def _check_caps(f: MemoryFolder) -> None:
    count = 0
    for dirpath, _dirnames, filenames in os.walk(f.root):  # os.walk does not follow symlinks
        for name in filenames:
            p = Path(dirpath) / name
            assert not name.startswith("~tmp."), "a temp file was left behind"
            st_ = os.lstat(p)
            if not stat.S_ISREG(st_.st_mode):
                continue
            count += 1
            if st_.st_nlink > 1:
                continue  # the planted hard link: the folder never touches it
            rel = str(p.relative_to(f.root))
            spec = LIMITS.for_file(rel)
            lines = split_lines(p.read_text())
            assert len(lines) <= spec.max_lines, rel
            assert len("\n".join(lines)) <= spec.max_chars, rel
            assert len(rel.split("/")) <= LIMITS.max_depth
    assert count <= LIMITS.max_files + 1  # + the planted hard link, which the agent cannot remove


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(steps=steps)
def test_random_operations_stay_inside_and_respect_caps(steps: list[Operation | str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        f = _plant(base)
        for step in steps:
            if step == "SWAP":  # an attacker swaps a real directory for a symlink to outside
                if (f.root / "sub").is_dir() and not (f.root / "sub").is_symlink():
                    os.rename(f.root / "sub", f.root / "sub_moved")
                    (f.root / "sub").symlink_to(base / "outside")
                continue
            assert isinstance(step, Operation)
            if step.path == "ABS":
                step = Operation(step.verb, str(base / "secret.txt"), text=step.text, new_path=step.new_path)
            before = _outside(base)
            result = f.execute(step)
            assert isinstance(result, OpResult)
            assert "internal error" not in result.message, (step, result.message)
            assert result.message.startswith("refused: ") != result.ok
            assert _outside(base) == before, step
            _check_caps(f)
        assert not (base / "created_outside.txt").exists()
