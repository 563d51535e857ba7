"""The sandboxed memory folder that executes operations.

Confinement does not rely on resolving paths and comparing prefixes (racy, and fooled by
symlinks): every operation opens the folder's root and walks down one component at a time with
``O_NOFOLLOW`` directory descriptors, then acts relative to the last one (``dir_fd=``). A symlink
anywhere on the way, even one swapped in after a check, makes the open fail instead of leading
outside. Files are replaced atomically through a temporary file in the same directory, so a
hard link planted in the folder never carries a write to its twin outside.

POSIX only (needs ``dir_fd`` support and ``O_NOFOLLOW``/``O_DIRECTORY``).

Why one module of ~760 lines: this is the security boundary of every memory operation. Every
filesystem call the agent can cause is in this file, so it can be audited in one read and no
operation can reach the disk by another path; splitting the verbs out would spread the descriptor
walk over several modules.
"""

from __future__ import annotations

import os
import re
import secrets
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from automem.memory.ops import EMPTY_FILE, NO_MATCH, Operation, OpResult, Verb, changed_line_numbers, split_lines

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: opening a planted FIFO must not hang the episode; fstat then refuses it
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_NEW_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC

# A component must start with a letter, digit or '_' (so never hidden, never an option-like '-')
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*\Z")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_TEXT_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # newline and tab are fine in text
# '~' can never appear in a valid name: temp files cannot collide with the agent's files, are not
# hidden, and are skipped by listings
_TEMP_PREFIX = "~tmp."


@dataclass(frozen=True)
class FileLimits:
    max_lines: int = 60
    max_chars: int = 3000
    overflow: Literal["refuse", "drop_oldest"] = "refuse"  # drop_oldest: a rolling log never refuses
    read_only: bool = False


@dataclass
class MemoryLimits:
    max_files: int = 16
    max_file_chars: int = 4000  # caps for files without their own entry in ``files``
    max_file_lines: int = 200
    max_read_lines: int = 40  # lines one view/tail shows
    max_search_results: int = 10
    max_text_chars: int = 400  # one operation's text (and old/new, query)
    max_name_len: int = 48
    max_path_len: int = 120
    max_depth: int = 3  # path components, file name included
    allow_new_files: bool = True  # False: only paths listed in ``files`` may be created
    files: dict[str, FileLimits] = field(default_factory=dict)

    def for_file(self, path: str) -> FileLimits:
        spec = self.files.get(path)
        return spec if spec is not None else FileLimits(self.max_file_lines, self.max_file_chars)


class _Refused(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _show(path: object) -> str:
    """A path as the agent should see it in a message: short and printable."""
    text = path if isinstance(path, str) else repr(path)
    if _CONTROL.search(text) or not text.isprintable():
        text = repr(text)
    return text if len(text) <= 60 else text[:57] + "..."


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}{'es' if word.endswith('ch') else 's'}"


def _body_chars(lines: list[str]) -> int:
    return sum(len(s) for s in lines) + max(len(lines) - 1, 0)


def _content(lines: list[str]) -> str:
    return "\n".join(lines) + "\n" if lines else ""


class MemoryFolder:
    """One episode's memory folder. Not thread-safe; one per episode worker."""

    def __init__(self, root: Path | str, limits: MemoryLimits | None = None, enabled: set[Verb] | None = None):
        root_path = Path(root)
        root_path.mkdir(parents=True, exist_ok=True)
        # Resolved once: the root and its ancestors are trusted; everything below is not.
        self.root = Path(os.path.realpath(root_path))
        self._root_str = str(self.root)
        self.limits = limits or MemoryLimits()
        self.enabled: frozenset[Verb] = frozenset(Verb) if enabled is None else frozenset(Verb(v) for v in enabled)
        self._handlers: dict[Verb, Callable[[int, Operation], OpResult]] = {
            Verb.VIEW: self._view,
            Verb.TAIL: self._tail,
            Verb.SEARCH: self._search,
            Verb.COUNT: self._count,
            Verb.APPEND: self._append,
            Verb.WRITE: self._write_op,
            Verb.CREATE: self._create,
            Verb.STR_REPLACE: self._str_replace,
            Verb.INSERT: self._insert,
            Verb.DELETE: self._delete,
            Verb.RENAME: self._rename,
            Verb.UPSERT: self._upsert,
        }

    # -- public API -----------------------------------------------------------------------
    def execute(self, op: Operation) -> OpResult:
        """Run one operation. Never raises for bad input: a refusal is ok=False with a message."""
        if not isinstance(op, Operation):
            return OpResult(ok=False, message="refused: not a memory operation", verb=None, path="")
        verb = op.verb if isinstance(op.verb, Verb) else None
        path = op.path if isinstance(op.path, str) else repr(op.path)
        args = op.to_args()
        try:
            if verb is None:
                raise _Refused(f"unknown verb {op.verb!r}")
            if verb not in self.enabled:
                raise _Refused(self._disabled_message(verb))
            rfd = self._open_root()
            try:
                return self._handlers[verb](rfd, op)
            finally:
                os.close(rfd)
        except _Refused as exc:
            message = f"refused: {exc.message}"
        except OSError as exc:
            message = f"refused: {verb} {_show(path)} failed: {exc.strerror or type(exc).__name__}"
        except Exception as exc:  # a bug must not end the episode; the message says what happened
            message = f"refused: internal error ({type(exc).__name__})"
        return OpResult(ok=False, message=message, verb=verb, path=path, args=args)

    def seed(self, files: dict[str, str], *, overwrite: bool = False) -> list[str]:
        """Create the structure's seed files (read_only ones too); returns the paths written.

        Files that already exist are kept unless ``overwrite`` (memory carried across episodes).
        Raises ValueError for a seed that breaks confinement or caps: that is a structure bug.
        """
        written = []
        for path, text in files.items():
            if not overwrite and self.read_text(path) is not None:
                continue
            result = self._trusted_write(Verb.WRITE if overwrite else Verb.CREATE, path, text)
            if not result.ok:
                raise ValueError(f"cannot seed {path}: {result.message.removeprefix('refused: ')}")
            written.append(path)
        return written

    def write_text_trusted(self, path: str, text: str) -> OpResult:
        """A person's edit: bypasses read_only and allow_new_files, keeps confinement and caps."""
        return self._trusted_write(Verb.WRITE, path, text)

    def read_text(self, path: str) -> str | None:
        try:
            parts = self._check_path(path)
            rfd = self._open_root()
            try:
                return self._read_path(rfd, parts)
            finally:
                os.close(rfd)
        except (_Refused, OSError):
            return None

    def listing(self) -> list[tuple[str, int, int]]:
        """(path, lines, chars) of every file the agent can use, sorted by path."""
        out = []
        for path, content in self._safe_all_files():
            lines = split_lines(content)
            out.append((path, len(lines), _body_chars(lines)))
        return out

    def snapshot(self) -> dict[str, str]:
        """Every file the agent can use: path -> content."""
        return dict(self._safe_all_files())

    def _safe_all_files(self) -> list[tuple[str, str]]:
        try:
            return self._all_files()
        except (_Refused, OSError):  # the folder itself is gone: nothing to show
            return []

    def file_limits(self, path: str) -> FileLimits:
        return self.limits.for_file(path)

    # -- confinement ----------------------------------------------------------------------
    def _check_path(self, path: object) -> tuple[str, ...]:
        lim = self.limits
        if not isinstance(path, str) or not path:
            raise _Refused("empty path")
        shown = _show(path)
        if _CONTROL.search(path):
            raise _Refused(f"{shown}: control characters are not allowed in paths")
        if path.startswith(("/", "~")) or re.match(r"[A-Za-z]:", path):
            raise _Refused(f"{shown}: path must be relative to the memory folder")
        if "\\" in path:
            raise _Refused(f"{shown}: use '/' in paths, not '\\'")
        if len(path) > lim.max_path_len:
            raise _Refused(f"{shown}: path is longer than {lim.max_path_len} characters")
        parts = tuple(path.split("/"))
        for part in parts:
            if part in (".", ".."):
                raise _Refused(f"{shown}: '.' and '..' are not allowed; paths stay inside the folder")
            if not part:
                raise _Refused(f"{shown}: empty path part (double or trailing '/')")
            if part.startswith("."):
                raise _Refused(f"{shown}: hidden names (starting with '.') are not allowed")
            if len(part) > lim.max_name_len:
                raise _Refused(f"{shown}: names are limited to {lim.max_name_len} characters")
            if not _NAME.match(part):
                raise _Refused(f"{shown}: names may use only letters, digits, '_', '-' and '.'")
        if len(parts) > lim.max_depth:
            raise _Refused(f"{shown}: paths may be at most {lim.max_depth} levels deep")
        return parts

    def _open_root(self) -> int:
        try:
            return os.open(self._root_str, _DIR_FLAGS)
        except OSError:
            raise _Refused("the memory folder is not available") from None

    def _kind(self, dfd: int, name: str) -> str:
        try:
            mode = os.stat(name, dir_fd=dfd, follow_symlinks=False).st_mode
        except OSError:
            return "missing"
        if stat.S_ISLNK(mode):
            return "a symlink (not followed)"
        if stat.S_ISDIR(mode):
            return "a folder"
        return "a file" if stat.S_ISREG(mode) else "not a regular file"

    def _open_dirs(self, rfd: int, dirs: tuple[str, ...], *, create: bool) -> int | None:
        """A new descriptor of the directory ``dirs`` below the root, never through a symlink.

        None if a directory is missing and ``create`` is False. The caller closes the result.
        """
        fd = os.dup(rfd)
        try:
            for i, name in enumerate(dirs):
                if create:
                    try:
                        os.mkdir(name, 0o755, dir_fd=fd)
                    except FileExistsError:
                        pass
                try:
                    sub = os.open(name, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    os.close(fd)
                    return None
                except OSError:
                    where = "/".join(dirs[: i + 1])
                    raise _Refused(f"{where} is {self._kind(fd, name)}, not a folder") from None
                os.close(fd)
                fd = sub
            return fd
        except BaseException:
            os.close(fd)
            raise

    def _read_at(self, dfd: int, name: str, path: str) -> str | None:
        """Content of the regular file ``name`` in ``dfd``; None if missing."""
        try:
            fd = os.open(name, _READ_FLAGS, dir_fd=dfd)
        except FileNotFoundError:
            return None
        except OSError:
            raise _Refused(f"{path} is {self._kind(dfd, name)}") from None
        try:
            st = os.fstat(fd)
            if stat.S_ISDIR(st.st_mode):
                raise _Refused(f"{path} is a folder")
            if not stat.S_ISREG(st.st_mode):
                raise _Refused(f"{path} is not a regular file")
            if st.st_nlink > 1:  # a planted hard link could expose a file from outside
                raise _Refused(f"{path} has other hard links; it is not used")
            cap = 4 * self.limits.for_file(path).max_chars + 8  # UTF-8 needs at most 4 bytes a char
            if st.st_size > cap:
                raise _Refused(f"{path} is too large ({st.st_size} bytes)")
            chunks = []
            while True:
                chunk = os.read(fd, cap + 1)
                if not chunk:
                    break
                chunks.append(chunk)
                if sum(map(len, chunks)) > cap:
                    raise _Refused(f"{path} is too large")
        finally:
            os.close(fd)
        return b"".join(chunks).decode("utf-8", errors="replace")

    def _read_path(self, rfd: int, parts: tuple[str, ...]) -> str | None:
        dfd = self._open_dirs(rfd, parts[:-1], create=False)
        if dfd is None:
            return None
        try:
            return self._read_at(dfd, parts[-1], "/".join(parts))
        finally:
            os.close(dfd)

    def _write_at(self, rfd: int, parts: tuple[str, ...], content: str) -> None:
        """Replace (or create) the file atomically, creating directories as needed."""
        dfd = self._open_dirs(rfd, parts[:-1], create=True)
        assert dfd is not None
        try:
            name = parts[-1]
            kind = self._kind(dfd, name)
            if kind not in ("missing", "a file"):
                raise _Refused(f"{'/'.join(parts)} is {kind}")
            tmp = _TEMP_PREFIX + secrets.token_hex(8)
            fd = os.open(tmp, _NEW_FLAGS, 0o644, dir_fd=dfd)
            try:
                try:
                    view = memoryview(content.encode("utf-8"))
                    while view:
                        view = view[os.write(fd, view) :]
                finally:
                    os.close(fd)
                os.replace(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
            except BaseException:
                try:
                    os.unlink(tmp, dir_fd=dfd)
                except OSError:
                    pass
                raise
        finally:
            os.close(dfd)

    def _prune_dirs(self, rfd: int, dirs: tuple[str, ...]) -> None:
        """Remove directories left empty by a delete or rename, deepest first."""
        for depth in range(len(dirs), 0, -1):
            dfd = self._open_dirs(rfd, dirs[: depth - 1], create=False)
            if dfd is None:
                return
            try:
                os.rmdir(dirs[depth - 1], dir_fd=dfd)  # fails on a non-empty dir or a symlink
            except OSError:
                return
            finally:
                os.close(dfd)

    def _file_paths(self, rfd: int) -> list[str]:
        """Paths of all regular files with valid names, sorted; symlinks are never entered."""
        out: list[str] = []

        def scan(dfd: int, prefix: str, depth: int) -> None:
            with os.scandir(dfd) as it:
                entries = sorted(it, key=lambda e: e.name)
            for entry in entries:
                if len(entry.name) > self.limits.max_name_len or not _NAME.match(entry.name):
                    continue
                if entry.is_file(follow_symlinks=False):
                    out.append(prefix + entry.name)
                elif entry.is_dir(follow_symlinks=False) and depth + 1 < self.limits.max_depth:
                    try:
                        sub = os.open(entry.name, _DIR_FLAGS, dir_fd=dfd)
                    except OSError:
                        continue
                    try:
                        scan(sub, f"{prefix}{entry.name}/", depth + 1)
                    finally:
                        os.close(sub)

        scan(rfd, "", 0)
        return out

    def _all_files(self) -> list[tuple[str, str]]:
        """(path, content) of every readable file, sorted by path."""
        rfd = self._open_root()
        try:
            out = []
            for path in self._file_paths(rfd):
                try:
                    content = self._read_path(rfd, tuple(path.split("/")))
                except _Refused:
                    continue  # hard-linked or oversized files are not the agent's
                if content is not None:
                    out.append((path, content))
            return out
        finally:
            os.close(rfd)

    # -- helpers shared by the verbs ------------------------------------------------------
    def _disabled_message(self, verb: Verb) -> str:
        if not self.enabled:
            return "memory commands are disabled"
        names = ", ".join(v.value for v in Verb if v in self.enabled)
        return f"{verb} is not enabled; enabled: {names}"

    def _existing(self, rfd: int, parts: tuple[str, ...]) -> str:
        """Content of an existing file, or a refusal that names the files there are."""
        content = self._read_path(rfd, parts)
        if content is None:
            names = self._file_paths(rfd)
            shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "") if names else "none"
            raise _Refused(f"no file {'/'.join(parts)}; files: {shown}")
        return content

    def _check_text(self, text: object, what: str = "text", *, one_line: bool = False) -> str:
        if not isinstance(text, str):
            raise _Refused(f"missing {what}")
        if len(text) > self.limits.max_text_chars:
            raise _Refused(f"{what} is longer than {self.limits.max_text_chars} characters")
        if _TEXT_CONTROL.search(text):
            raise _Refused(f"{what} contains control characters")
        if one_line and "\n" in text:
            raise _Refused(f"{what} must be one line")
        return text

    @staticmethod
    def _int(value: object, what: str) -> int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise _Refused(f"missing {what}")
        return value

    def _writable_target(self, raw: str) -> tuple[tuple[str, ...], str]:
        """The confined parts and normal form of a path the operation may write."""
        parts = self._check_path(raw)
        path = "/".join(parts)
        self._writable(path)
        return parts, path

    def _writable(self, path: str) -> FileLimits:
        spec = self.limits.for_file(path)
        if spec.read_only:
            raise _Refused(f"{path} is read-only")
        return spec

    def _may_create(self, rfd: int, path: str, *, trusted: bool = False) -> None:
        if not trusted and not self.limits.allow_new_files and path not in self.limits.files:
            declared = ", ".join(sorted(self.limits.files)) or "none"
            raise _Refused(f"new files are not allowed; the files are: {declared}")
        count = len(self._file_paths(rfd))
        if count >= self.limits.max_files:
            raise _Refused(f"the folder already holds {count} files (cap {self.limits.max_files})")

    def _fit(self, path: str, lines: list[str], spec: FileLimits, *, strict: bool = False) -> tuple[list[str], int]:
        """The lines within the file's caps and how many oldest lines were dropped for it."""
        n, chars = len(lines), _body_chars(lines)
        if n <= spec.max_lines and chars <= spec.max_chars:
            return lines, 0
        if spec.overflow == "drop_oldest" and not strict:
            drop = 0
            while drop < n and (n - drop > spec.max_lines or chars > spec.max_chars):
                chars -= len(lines[drop]) + (1 if n - drop > 1 else 0)
                drop += 1
            if drop < n:
                return lines[drop:], drop
            raise _Refused(f"the text does not fit in {path} (cap {spec.max_chars} chars a file)")
        if n > spec.max_lines:
            raise _Refused(f"{path} would have {n} lines (cap {spec.max_lines})")
        raise _Refused(f"{path} would have {chars} chars (cap {spec.max_chars})")

    def _commit(
        self,
        rfd: int,
        op: Operation,
        parts: tuple[str, ...],
        before: str | None,
        lines: list[str],
        *,
        strict: bool = False,
        trusted: bool = False,
    ) -> tuple[OpResult, int]:
        """Check caps, write, and build the result (message filled in by the caller)."""
        path = "/".join(parts)
        spec = self.limits.for_file(path)
        if before is None:
            self._may_create(rfd, path, trusted=trusted)
        lines, dropped = self._fit(path, lines, spec, strict=strict)
        after = _content(lines)
        self._write_at(rfd, parts, after)
        result = OpResult(
            ok=True,
            message="",
            verb=op.verb,
            path=op.path,
            args=op.to_args(),
            before=before,
            after=after,
            changed_lines=changed_line_numbers(before, after),
        )
        return result, dropped

    @staticmethod
    def _size_note(result: OpResult, dropped: int) -> str:
        """'(12 lines)' or '(20 lines, dropped 2 oldest)' for the file after a write."""
        n = len(split_lines(result.after or ""))
        return f"({_plural(n, 'line')}" + (f", dropped {dropped} oldest)" if dropped else ")")

    def _trusted_write(self, verb: Verb, path: str, text: str) -> OpResult:
        op = Operation(verb, path, text=text)
        try:
            parts = self._check_path(path)
            if not isinstance(text, str) or _TEXT_CONTROL.search(text):
                raise _Refused("text contains control characters")
            rfd = self._open_root()
            try:
                before = self._read_path(rfd, parts)
                if verb is Verb.CREATE and before is not None:
                    raise _Refused(f"{path} exists")
                result, _ = self._commit(rfd, op, parts, before, split_lines(text), strict=True, trusted=True)
            finally:
                os.close(rfd)
        except (_Refused, OSError) as exc:
            reason = exc.message if isinstance(exc, _Refused) else exc.strerror or type(exc).__name__
            return OpResult(ok=False, message=f"refused: {reason}", verb=verb, path=path, args=op.to_args())
        result.message = f"ok: wrote {path} ({_plural(len(split_lines(result.after or '')), 'line')})"
        return result

    def _read_result(self, op: Operation, message: str) -> OpResult:
        return OpResult(ok=True, message=message, verb=op.verb, path=op.path, args=op.to_args())

    def _show_lines(self, path: str, lines: list[str], first: int, last: int) -> str:
        """Lines first..last (1-based, inclusive) with numbers, and how to see the rest."""
        body = "\n".join(f"{i}: {lines[i - 1]}" for i in range(first, last + 1))
        head = f"{path} lines {first}-{last} of {len(lines)}:"
        more = ""
        if last < len(lines):
            nxt = min(len(lines), last + self.limits.max_read_lines)
            more = f"\n({len(lines) - last} more; view {path} {last + 1}-{nxt})"
        return f"{head}\n{body}{more}"

    # -- read verbs -----------------------------------------------------------------------
    def _view(self, rfd: int, op: Operation) -> OpResult:
        parts = self._check_path(op.path)
        path = "/".join(parts)
        lines = split_lines(self._existing(rfd, parts))
        n, cap = len(lines), self.limits.max_read_lines
        if n == 0:
            return self._read_result(op, EMPTY_FILE.format(path=path))
        start = 1 if op.start is None else self._int(op.start, "start line")
        end = start + cap - 1 if op.end is None else self._int(op.end, "end line")
        if start < 1 or end < start:
            raise _Refused(f"bad line range {start}-{end}; lines are numbered 1-{n}")
        if start > n:
            raise _Refused(f"{path} has only {_plural(n, 'line')}")
        last = min(end, n, start + cap - 1)
        return self._read_result(op, self._show_lines(path, lines, start, last))

    def _tail(self, rfd: int, op: Operation) -> OpResult:
        parts = self._check_path(op.path)
        path = "/".join(parts)
        lines = split_lines(self._existing(rfd, parts))
        want = min(10, self.limits.max_read_lines) if op.n is None else self._int(op.n, "line count")
        if want < 1:
            raise _Refused("tail needs a line count of at least 1")
        if not lines:
            return self._read_result(op, EMPTY_FILE.format(path=path))
        first = max(1, len(lines) - min(want, self.limits.max_read_lines) + 1)
        return self._read_result(op, self._show_lines(path, lines, first, len(lines)))

    def _targets(self, rfd: int, path: str) -> list[tuple[str, list[str]]]:
        """The files a search/count covers: one file, or all of them for '*'."""
        if path == "*":
            return [(p, split_lines(content)) for p, content in self._all_files()]
        parts = self._check_path(path)
        return [("/".join(parts), split_lines(self._existing(rfd, parts)))]

    def _search(self, rfd: int, op: Operation) -> OpResult:
        query = self._check_text(op.query, "query", one_line=True).strip()
        if not query:
            raise _Refused("search needs a query")
        needle = query.casefold()
        hits = []
        for path, lines in self._targets(rfd, op.path):
            for i, text in enumerate(lines, 1):
                if needle in text.casefold():
                    hits.append(f"{path}:{i}: {text if len(text) <= 160 else text[:157] + '...'}")
        where = "any file" if op.path == "*" else op.path
        if not hits:
            return self._read_result(op, NO_MATCH.format(query=query, where=where))
        cap = self.limits.max_search_results
        head = f"{_plural(len(hits), 'match')} for {query!r}" + (f" (first {cap})" if len(hits) > cap else "")
        return self._read_result(op, head + ":\n" + "\n".join(hits[:cap]))

    def _count(self, rfd: int, op: Operation) -> OpResult:
        def describe(path: str, lines: list[str]) -> str:
            spec = self.limits.for_file(path)
            flag = ", read-only" if spec.read_only else ""
            return (
                f"{path}: {_plural(len(lines), 'line')}, {_body_chars(lines)} chars "
                f"(cap {spec.max_lines} lines, {spec.max_chars} chars{flag})"
            )

        files = self._targets(rfd, op.path)
        if op.path != "*":
            return self._read_result(op, describe(*files[0]))
        head = f"{_plural(len(files), 'file')} (cap {self.limits.max_files})"
        return self._read_result(op, "\n".join([head + ":" if files else head] + [describe(*f) for f in files]))

    # -- write verbs ----------------------------------------------------------------------
    def _append(self, rfd: int, op: Operation) -> OpResult:
        parts, path = self._writable_target(op.path)
        new = split_lines(self._check_text(op.text))
        if not new:
            raise _Refused("nothing to append")
        before = self._read_path(rfd, parts)
        lines = split_lines(before or "") + new
        result, dropped = self._commit(rfd, op, parts, before, lines)
        target = path if before is not None else f"new file {path}"
        result.message = f"ok: appended {_plural(len(new), 'line')} to {target} {self._size_note(result, dropped)}"
        return result

    def _write_op(self, rfd: int, op: Operation) -> OpResult:
        parts, path = self._writable_target(op.path)
        lines = split_lines(self._check_text(op.text))
        before = self._read_path(rfd, parts)
        result, dropped = self._commit(rfd, op, parts, before, lines)
        verb = "created" if before is None else "replaced"
        result.message = f"ok: {verb} {path} {self._size_note(result, dropped)}"
        return result

    def _create(self, rfd: int, op: Operation) -> OpResult:
        parts, path = self._writable_target(op.path)
        lines = split_lines(self._check_text(op.text))
        dfd = self._open_dirs(rfd, parts[:-1], create=False)
        if dfd is not None:
            try:
                kind = self._kind(dfd, parts[-1])
            finally:
                os.close(dfd)
            if kind == "a file":
                raise _Refused(f"{path} exists; use write to replace it")
            if kind != "missing":
                raise _Refused(f"{path} is {kind}")
        result, dropped = self._commit(rfd, op, parts, None, lines)
        result.message = f"ok: created {path} {self._size_note(result, dropped)}"
        return result

    def _str_replace(self, rfd: int, op: Operation) -> OpResult:
        parts, path = self._writable_target(op.path)
        old = self._check_text(op.old, "old text")
        new = self._check_text(op.new if op.new is not None else "", "new text")
        if not old:
            raise _Refused("the old text is empty")
        before = self._existing(rfd, parts)
        body = "\n".join(split_lines(before))
        found = body.count(old)
        if found != 1:
            hint = "" if found == 0 else "; include more of the line"
            raise _Refused(f"{old[:40]!r} {'not found' if found == 0 else f'found {found} times'} in {path}{hint}")
        line_no = body[: body.index(old)].count("\n") + 1
        lines = split_lines(body.replace(old, new, 1))
        result, dropped = self._commit(rfd, op, parts, before, lines)
        result.message = f"ok: replaced text at line {line_no} of {path} {self._size_note(result, dropped)}"
        return result

    def _insert(self, rfd: int, op: Operation) -> OpResult:
        parts, path = self._writable_target(op.path)
        new = split_lines(self._check_text(op.text))
        at = self._int(op.line, "line number")
        if not new:
            raise _Refused("nothing to insert")
        before = self._existing(rfd, parts)
        lines = split_lines(before)
        if not 1 <= at <= len(lines) + 1:
            raise _Refused(f"line must be 1-{len(lines) + 1} for {path} ({_plural(len(lines), 'line')})")
        lines[at - 1 : at - 1] = new
        result, dropped = self._commit(rfd, op, parts, before, lines)
        note = self._size_note(result, dropped)
        result.message = f"ok: inserted {_plural(len(new), 'line')} at line {at} of {path} {note}"
        return result

    def _upsert(self, rfd: int, op: Operation) -> OpResult:
        parts, path = self._writable_target(op.path)
        key = self._check_text(op.key, "key", one_line=True)
        if not key or len(key) > self.limits.max_name_len or ":" in key or any(c.isspace() for c in key):
            raise _Refused(f"a key is one word without ':' of at most {self.limits.max_name_len} characters")
        text = self._check_text(op.text if op.text is not None else "", one_line=True).strip()
        record = f"{key}: {text}" if text else f"{key}:"
        before = self._read_path(rfd, parts)
        lines = split_lines(before or "")
        prefix = key + ":"
        at = next((i for i, s in enumerate(lines) if s.startswith(prefix)), None)
        if at is None:
            lines.append(record)
        else:
            lines[at] = record
        result, dropped = self._commit(rfd, op, parts, before, lines)
        after = split_lines(result.after or "")
        line_no = after.index(record) + 1 if record in after else len(after)
        what = "added" if at is None else "updated"
        result.message = f"ok: {what} {key} at line {line_no} of {path} {self._size_note(result, dropped)}"
        return result

    def _delete(self, rfd: int, op: Operation) -> OpResult:
        parts, path = self._writable_target(op.path)
        before = self._existing(rfd, parts)
        dfd = self._open_dirs(rfd, parts[:-1], create=False)
        if dfd is None:
            raise _Refused(f"no file {path}")
        try:
            if self._kind(dfd, parts[-1]) != "a file":
                raise _Refused(f"{path} is {self._kind(dfd, parts[-1])}")
            os.unlink(parts[-1], dir_fd=dfd)  # removes the entry itself, never a link's target
        finally:
            os.close(dfd)
        self._prune_dirs(rfd, parts[:-1])
        return OpResult(
            ok=True, message=f"ok: deleted {path}", verb=op.verb, path=op.path, args=op.to_args(), before=before
        )

    def _rename(self, rfd: int, op: Operation) -> OpResult:
        parts, path = self._writable_target(op.path)
        if not isinstance(op.new_path, str):
            raise _Refused("missing new path")
        new_parts = self._check_path(op.new_path)
        new_path = "/".join(new_parts)
        if new_path == path:
            raise _Refused("the new path is the same")
        target = self.limits.for_file(new_path)
        if target.read_only:
            raise _Refused(f"{new_path} is read-only")
        if not self.limits.allow_new_files and new_path not in self.limits.files:
            declared = ", ".join(sorted(self.limits.files)) or "none"
            raise _Refused(f"new files are not allowed; the files are: {declared}")
        content = self._existing(rfd, parts)
        self._fit(new_path, split_lines(content), target, strict=True)  # refuses rather than trims
        src = self._open_dirs(rfd, parts[:-1], create=False)
        if src is None:
            raise _Refused(f"no file {path}")
        try:
            dst = self._open_dirs(rfd, new_parts[:-1], create=True)
            assert dst is not None
            try:
                kind = self._kind(dst, new_parts[-1])
                if kind != "missing":
                    raise _Refused(f"{new_path} exists" if kind == "a file" else f"{new_path} is {kind}")
                if self._kind(src, parts[-1]) != "a file":
                    raise _Refused(f"{path} is {self._kind(src, parts[-1])}")
                os.rename(parts[-1], new_parts[-1], src_dir_fd=src, dst_dir_fd=dst)
            except BaseException:
                self._prune_dirs(rfd, new_parts[:-1])  # directories made for nothing
                raise
            finally:
                os.close(dst)
        finally:
            os.close(src)
        self._prune_dirs(rfd, parts[:-1])
        return OpResult(
            ok=True,
            message=f"ok: renamed {path} to {new_path}",
            verb=op.verb,
            path=op.path,
            args=op.to_args(),
            before=content,
            after=content,
        )


__all__ = ["FileLimits", "MemoryFolder", "MemoryLimits"]
