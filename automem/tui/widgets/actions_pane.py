"""Each step's LOG and PLAN turns, memory operations with their results, and the game action,
coloured by kind (read, write, refused); the model's raw output on demand."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from rich.text import Text
from textual.widgets import RichLog

from automem.agent.loop import TurnEvent
from automem.memory.ops import READ_VERBS
from automem.records import OpRecord
from automem.runs.replay import ReplayStep

_READS = frozenset(v.value for v in READ_VERBS)
KEEP = 3000  # entries kept for re-rendering when raw output is toggled


@dataclass
class OpLine:
    verb: str
    path: str
    ok: bool
    message: str
    source: str = "model"


@dataclass
class TurnLine:
    step: int
    phase: str
    turn: int
    parsed: str
    valid: bool
    raw: str = ""
    op: OpLine | None = None


@dataclass
class ActionLine:
    step: int
    action: str
    source: str
    reward: float = 0.0
    unlocked: tuple[str, ...] = ()
    notes: str = ""


Entry = TurnLine | ActionLine | OpLine


def turn_line(step: int, event: TurnEvent) -> TurnLine:
    call, result = event.call, event.result
    op = None
    if result is not None:
        op = OpLine(str(result.verb or ""), result.path, result.ok, result.message)
    if call is None:  # the engine failed: the feedback holds the error
        return TurnLine(step, event.phase, event.turn, event.feedback, False, "", op)
    return TurnLine(step, event.phase, event.turn, call.parsed, call.valid, call.response, op)


def replay_lines(step: ReplayStep) -> list[Entry]:
    """A stored step as the same lines the live view shows."""
    out: list[Entry] = []
    ops_by_call: dict[int, list[OpLine]] = {}
    human: list[OpLine] = []
    for op in step.ops:
        line = OpLine(op.verb, op.path, op.ok, op.message, op.source)
        if op.call_id is None:
            human.append(line)
        else:
            ops_by_call.setdefault(op.call_id, []).append(line)
    out.extend(human)
    for call in step.calls:
        ops = ops_by_call.get(call.id, [])
        out.append(
            TurnLine(step.index, call.phase, call.turn, call.parsed, call.valid, call.response, ops[0] if ops else None)
        )
    notes = step.helper_notes
    out.append(ActionLine(step.index, step.action, step.action_source, step.reward, tuple(step.unlocked), notes))
    return out


#: who made an operation, and the colour of that prefix (a helper's writes have their own colour)
_WHO = {"human": ("you: ", "magenta"), "helper": ("helper: ", "blue")}
HELPER_STYLE = "bright_blue"


def helper_lines(ops: list[OpRecord]) -> list[OpLine]:
    """A live step's helper operations as lines (the model's come with their turns)."""
    return [OpLine(o.verb, o.path, o.ok, o.message, o.source) for o in ops if o.source == "helper"]


def _op_text(op: OpLine) -> Text:
    if not op.ok:
        style = "red"
    elif op.source == "helper":
        style = HELPER_STYLE
    elif op.verb in _READS:
        style = "cyan"
    else:
        style = "green"
    who, who_style = _WHO.get(op.source, ("", "magenta"))
    first, _, rest = op.message.partition("\n")
    text = Text(f"    {who}", style=who_style)
    text.append(f"{first}", style=style)
    if rest:
        text.append("  (+" + str(rest.count("\n") + 1) + " lines)", style="dim")
    return text


class ActionsPane(RichLog):
    DEFAULT_CSS = """
    ActionsPane { height: 1fr; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, wrap=True, markup=False, highlight=False, max_lines=KEEP * 2, min_width=20)
        self.show_raw = False
        self.entries: deque[Entry] = deque(maxlen=KEEP)

    def add(self, entries: list[Entry]) -> None:
        for entry in entries:
            self.entries.append(entry)
            self._write(entry)

    def replace(self, entries: list[Entry]) -> None:
        self.entries.clear()
        self.clear()
        self.add(entries)

    def toggle_raw(self) -> None:
        self.show_raw = not self.show_raw
        entries = list(self.entries)
        self.clear()
        for entry in entries:
            self._write(entry)

    def _write(self, entry: Entry) -> None:
        if isinstance(entry, OpLine):
            self.write(_op_text(entry))
        elif isinstance(entry, TurnLine):
            head = Text(f"{entry.step:>4} {entry.phase}{entry.turn + 1} ", style="dim")
            head.append(entry.parsed, style="" if entry.valid else "red italic")
            if not entry.valid:
                head.append("  ✗ invalid", style="bold red")
            self.write(head)
            if entry.op is not None:
                self.write(_op_text(entry.op))
            if self.show_raw and entry.raw:
                self.write(Text("    raw: " + entry.raw, style="dim italic"))
        else:
            text = Text(f"{entry.step:>4} ▶ ", style="bold")
            text.append(entry.action, style="bold yellow")
            if entry.source != "model":
                text.append(f" ({entry.source})", style="magenta" if entry.source == "human" else "red")
            if entry.reward:
                text.append(f"  reward {entry.reward:+g}", style="green")
            if entry.unlocked:
                text.append("  ★ " + ", ".join(entry.unlocked), style="bold green")
            self.write(text)
            if self.show_raw and entry.notes:
                self.write(Text("    helpers: " + entry.notes.replace("\n", " | "), style="dim"))
