"""Prompt assembly, ordered from the most stable part to the most volatile.

One step's turns (every later call of the step extends the previous one, so the engine's KV/prefix
cache serves everything but the newest turn):

  system     structure prompt + game rules + actions + file catalogue + verb syntax  (episode-stable)
  user       pinned files / recent steps / observation / helper notes / phase text
  assistant  one command
  user       its result + what to do next
  ...        (LOG turns, then PLAN turns, in the same conversation)

With the ``transcript`` layout (``context.layout``) the next step is added to the same
conversation: what it adds carries the previous step's outcome line, the pinned files that changed
since they were last shown, the parts of the observation that changed (``context.observation``),
and the helpers' notes; the phase text follows. With ``context.past_turns: drop`` (the default)
the earlier steps' turns are left out: the steps so far are one user message, each step's part
appended to it, and the conversation is that message and this step's turns:

  system     (as above)
  user       step 0's part / step 1's part / ... / this step's part / phase text
  assistant  one command
  ...        (this step's turns only)

so the model never sees its own earlier answers (a small model repeats them) and the cache still
serves everything up to this step's part. With ``keep`` every turn stays and each step's part is
a new user message after them. Once a step could take the conversation more than
``context.transcript_growth`` tokens past its first step it is rebuilt as above (all pinned files,
``history_steps`` recent steps). With the ``rebuild`` layout every step starts again after the
system message.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from automem.games.base import ActionSpec
from automem.memory.ops import Verb
from automem.memory.structure import FileSpec, PhaseSpec, Structure

#: how each verb is written; shown to the model for the enabled verbs only
VERB_SYNTAX: Mapping[Verb, str] = {
    Verb.VIEW: "view <file> [<from>-<to>]   read lines",
    Verb.TAIL: "tail <file> [<n>]   last n lines",
    Verb.SEARCH: "search <file|*> <words>   matching lines",
    Verb.COUNT: "count <file|*>   size of a file, or list all files",
    Verb.APPEND: "append <file>: <text>   add a line at the end",
    Verb.WRITE: "write <file>: <text>   replace the whole file",
    Verb.CREATE: "create <file>: <text>   make a new file",
    Verb.STR_REPLACE: "str_replace <file>: <old> => <new>   change text",
    Verb.INSERT: "insert <file> <line>: <text>   add a line before line number",
    Verb.DELETE: "delete <file>   remove a file",
    Verb.RENAME: "rename <file> <new name>   rename a file",
    Verb.UPSERT: "upsert <file> <key>: <text>   set the line for a key (e.g. a place)",
}

_PLACEHOLDER = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?")


def render_template(text: str, values: Mapping[str, str]) -> str:
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), text)


def _template(action: ActionSpec) -> str | None:
    """The description with the action's own name abstracted, e.g. 'key <x>: item <x> in a menu'."""
    if not action.name:
        return None
    pattern = rf"(?<![A-Za-z0-9_]){re.escape(action.name)}(?![A-Za-z0-9_])"
    template, count = re.subn(pattern, "<x>", action.description)
    return template if count else None


def describe_actions(actions: list[ActionSpec]) -> str:
    """One line per action, but runs of 3+ actions that differ only by name share one line (NetHack's
    52 item letters would otherwise cost ~1,000 prompt tokens)."""
    lines: list[str] = []
    i = 0
    while i < len(actions):
        template = _template(actions[i])
        j = i + 1
        while template is not None and j < len(actions) and _template(actions[j]) == template:
            j += 1
        if j - i >= 3:
            lines.append(f"- {', '.join(a.name for a in actions[i:j])}: {template}")
        else:
            j = i + 1
            a = actions[i]
            lines.append(f"- {a.name}: {a.description}" if a.description else f"- {a.name}")
        i = j
    return "\n".join(lines)


def describe_file(f: FileSpec) -> str:
    where = "always shown below" if f.pinned else "read it when needed"
    flags = ", read-only" if f.read_only else ""
    return f"- {f.path}: {f.purpose} ({f.format}; {where}; max {f.max_lines} lines{flags})"


def describe_verbs(structure: Structure) -> str:
    lines = [VERB_SYNTAX[v] for v in Verb if v in structure.verbs()]
    return "\n".join(lines)


def system_prompt(
    structure: Structure, *, game: str, task: str, rules: str, actions: list[ActionSpec], fallback: str
) -> str:
    values = {
        "game": game,
        "task": task,
        "rules": rules.strip(),
        "actions": describe_actions(actions),
        "files": "\n".join(describe_file(f) for f in structure.files) or "(none)",
        "verbs": describe_verbs(structure) or "(none)",
        "fallback": fallback,
    }
    return render_template(structure.prompts.system, values).strip()


#: heads the phases' full instructions where the system message holds them (``phases_text``)
PHASES_HEADER = "Each step, the phases in order:"


def phases_text(phases: list[PhaseSpec]) -> str:
    """The full instructions of the phases that have a reminder, for the system message: a
    transcript that drops its past turns says only the reminders in each step."""
    return "\n".join([PHASES_HEADER, *(p.instructions.strip() for p in phases if p.reminder)])


PINNED_HEADER = "Memory (pinned files):\n"
#: the header of pinned files shown again in a transcript because they changed
PINNED_CHANGED_HEADER = "Memory (pinned files, changed):\n"
_PINNED_FILE = re.compile(r"^== (.+) ==$", re.MULTILINE)
#: what follows the pinned block in a step's first user message (see ``step_context``)
_AFTER_PINNED = ("\n\nRecent steps:\n", "\n\nCurrent observation:\n")
_PINNED_HEADERS = re.compile(f"{re.escape(PINNED_HEADER)}|{re.escape(PINNED_CHANGED_HEADER)}")


def pinned_block(structure: Structure, contents: Mapping[str, str | None], only: set[str] | None = None) -> str:
    """The pinned files' contents in the structure's order (only those in ``only`` when given)."""
    parts = []
    for f in structure.pinned_files():
        if only is not None and f.path not in only:
            continue
        body = contents.get(f.path)
        parts.append(f"== {f.path} ==\n{body.strip() if body and body.strip() else '(empty)'}")
    return "\n".join(parts)


def pinned_sections(text: str) -> dict[str, str]:
    """The pinned files a user message shows, by path (their text as shown, the latest where it
    shows a file more than once): what ``step_context`` wrote between a pinned header and the next
    part."""
    out: dict[str, str] = {}
    # a transcript that drops turns holds several steps' blocks in one message: the later one wins
    for header in _PINNED_HEADERS.finditer(text):
        body = text[header.end() :]
        body = body[: min((i for i in (body.find(m) for m in _AFTER_PINNED) if i >= 0), default=len(body))]
        marks = list(_PINNED_FILE.finditer(body))
        for mark, following in zip(marks, [*marks[1:], None], strict=True):
            out[mark.group(1)] = body[mark.end() + 1 : following.start() - 1 if following else len(body)]
    return out


#: closes an observation that shows only its changed parts
UNCHANGED_REST = "(The rest is as before.)"
#: the whole observation of a step that changed nothing the model sees
UNCHANGED_ALL = "(unchanged since the last step)"


def observation_changes(before: list[str], now: list[str]) -> str:
    """The observation ``now`` (its parts) as an appended step shows it after ``before``: the
    parts that differ from the same part before, or all of it when the parts do not line up (one
    appeared or went away: a part left out must still hold)."""
    if len(before) != len(now):
        return "\n\n".join(now)
    changed = [part for part, old in zip(now, before, strict=True) if part != old]
    if not changed:
        return UNCHANGED_ALL
    if len(changed) == len(now):
        return "\n\n".join(now)
    return "\n\n".join([*changed, UNCHANGED_REST])


def step_context(
    *,
    pinned: str,
    history: list[str],
    notes: list[str],
    observation: str,
    pinned_changed: bool = False,
) -> str:
    """A step's part of its first user message, the phase text left for ``with_instructions``
    (a transcript that drops past turns keeps the part without it); ``pinned_changed``: the pinned
    block holds only the files that changed since the transcript last showed them."""
    parts = []
    if pinned:
        parts.append((PINNED_CHANGED_HEADER if pinned_changed else PINNED_HEADER) + pinned)
    if history:
        parts.append("Recent steps:\n" + "\n".join(history))
    parts.append("Current observation:\n" + observation.strip())
    if notes:
        parts.append("Notes:\n" + "\n".join(f"! {n}" for n in notes))
    return "\n\n".join(parts)


def with_instructions(context: str, instructions: str) -> str:
    """A step's first user message: its context (``step_context``), then the phase's text."""
    instructions = instructions.strip()
    return f"{context}\n\n{instructions}" if instructions else context
