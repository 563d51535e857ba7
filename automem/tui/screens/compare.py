"""Compare: two or three episodes of one game, task and seed side by side, stepping together.

Pushed over the replay screen (from its table's marks, or by ``automem replay --compare``);
``escape`` goes back to the table. Each pane shows its episode's game screen, progression and
achievements so far, memory activity, and the step's turns; the summary line says who is ahead.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, ScrollableContainer, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Static

from automem.runs.compare_replay import LockstepReplay, PaneStep, open_lockstep
from automem.runs.replay import ReplayError
from automem.store.db import Store
from automem.tui.screens.stepping import JumpDialog, stepping_bindings
from automem.tui.widgets.actions_pane import ActionsPane, replay_lines
from automem.tui.widgets.game_view import GameView


class ComparePane(Vertical):
    """One episode's column: narrow enough that three fit side by side at 160 columns."""

    DEFAULT_CSS = """
    ComparePane { width: 1fr; height: 1fr; border: round $primary 50%; border-title-color: $text; padding: 0 1; }
    ComparePane.-ahead { border: round $success; }
    ComparePane.-ended { border: round $error 60%; }
    ComparePane > .compare-step { height: 1; }
    ComparePane > .compare-facts { height: auto; color: $text-muted; }
    ComparePane > .compare-game {
        height: auto; max-height: 60%; overflow-x: auto; overflow-y: auto; scrollbar-size: 1 1;
    }
    ComparePane > ActionsPane { height: 1fr; border-top: solid $secondary; }
    """

    def __init__(self, label: str, run: str = "", *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.border_title = label
        self.border_subtitle = run

    def compose(self) -> ComposeResult:
        yield Static("", classes="compare-step")
        with ScrollableContainer(classes="compare-game"):
            yield GameView(side_below=True)
        yield Static("", classes="compare-facts")
        yield ActionsPane()

    @property
    def actions(self) -> ActionsPane:
        return self.query_one(ActionsPane)

    def show(self, pane: PaneStep, *, ahead: bool, differs: bool) -> None:
        replay, index = pane.replay, pane.index
        step = replay.step(index)
        self.set_class(ahead, "-ahead")
        self.set_class(pane.ended, "-ended")
        head = Text(f"step {index}/{len(replay) - 1}", style="bold")
        if pane.ended:
            head = Text(f"ended at step {index}", style="bold red")
        elif differs:
            head.append("  ≠ differs", style="bold yellow")
        self.query_one(".compare-step", Static).update(head)
        self.query_one(GameView).show(step.frame)
        facts = Text(f"{step.progression:.1f}% · reward {replay.total_reward(index):g} · ")
        facts.append(f"★ {len(step.achievements)}", style="bold green" if step.achievements else "")
        if step.achievements:
            facts.append(" " + ", ".join(step.achievements), style="green")
        files = replay.memory(index)
        writes = [op for op in step.ops if op.is_write]
        facts.append(f"\nmemory: {len(files)} files · writes at {replay.write_steps_until(index)} steps so far")
        if writes:
            facts.append("\n✎ " + ", ".join(f"{op.verb} {op.path}" for op in writes), style="bold yellow")
        self.query_one(".compare-facts", Static).update(facts)
        self.actions.replace(replay_lines(step))


class CompareScreen(Screen[None]):
    BINDINGS = [
        *stepping_bindings("compare"),
        Binding(
            "d",
            "next_difference",
            "Next difference",
            id="compare-next-diff",
            tooltip="The next step where the episodes differ in action or memory write",
        ),
        Binding("D", "previous_difference", "Prev difference", show=False, id="compare-prev-diff"),
        Binding("r", "raw", "Raw output", id="compare-raw", tooltip="Show the models' raw output"),
        Binding("escape", "app.pop_screen", "Episodes", id="compare-episodes"),
    ]

    DEFAULT_CSS = """
    CompareScreen > #compare-summary { height: 1; padding: 0 1; background: $panel; }
    CompareScreen > #compare-panes { height: 1fr; }
    """

    def __init__(self, lockstep: LockstepReplay, labels: Sequence[tuple[str, str]]) -> None:
        """``labels``: each pane's title and subtitle (its run), in the episodes' order."""
        super().__init__()
        self.lockstep = lockstep
        self.labels = list(labels)
        self.index = 0

    def compose(self) -> ComposeResult:
        yield Static("", id="compare-summary")
        with Horizontal(id="compare-panes"):
            for position, (label, run) in enumerate(self.labels):
                yield ComparePane(label, run, id=f"compare-pane-{position}")
        yield Footer()

    def on_mount(self) -> None:
        self.show_step(0)

    @property
    def panes(self) -> list[ComparePane]:
        return list(self.query(ComparePane))

    def show_step(self, index: int) -> None:
        lockstep = self.lockstep
        self.index = index = max(0, min(lockstep.last, index))
        standing = lockstep.standing(index)
        differs = lockstep.differs(index)
        for position, (pane, step) in enumerate(zip(self.panes, lockstep.at(index), strict=True)):
            pane.show(step, ahead=position in standing.leaders, differs=differs)
        e = lockstep.replays[0].episode
        summary = Text(f"{e['game']}/{e['task']} seed {e['seed']} · step {index}/{lockstep.last}", style="bold")
        if differs:
            summary.append(" · ≠ differs", style="bold yellow")
        summary.append(" · ")
        summary.append(standing.text, style="bold green" if standing.leaders else "")
        self.query_one("#compare-summary", Static).update(summary)

    # -- stepping ------------------------------------------------------------------------
    def action_move(self, delta: int) -> None:
        self.show_step(self.index + delta)

    def action_go(self, index: int) -> None:
        self.show_step(index if index >= 0 else self.lockstep.last)

    def action_jump(self) -> None:
        self.app.push_screen(JumpDialog(self.lockstep.last), lambda v: v is not None and self.show_step(v))

    def _go_if(self, target: int | None, what: str) -> None:
        if target is None:
            self.notify(f"no {what} step {self.index}", severity="warning", timeout=2)
        else:
            self.show_step(target)

    def action_next_difference(self) -> None:
        self._go_if(self.lockstep.next_difference(self.index), "difference after")

    def action_previous_difference(self) -> None:
        self._go_if(self.lockstep.previous_difference(self.index), "difference before")

    def action_raw(self) -> None:
        for pane in self.panes:
            pane.actions.toggle_raw()


def pane_label(store: Store, episode: dict[str, object]) -> tuple[str, str]:
    """#id, structure name and engine (what tells the compared episodes apart), and the run's name."""
    structure_id = str(episode["structure_id"] or "")
    name = store.structure_name(structure_id) or structure_id[:8]
    engine = episode["model"] if episode["engine"] == "llamacpp" else episode["engine"]
    run = store.run_by_id(int(str(episode["run_id"])))
    return f"#{episode['id']} {name} · {engine}", f"run {run['name']}" if run else ""


def open_compare(app: App[object], store: Store, episode_ids: Sequence[int]) -> bool:
    """Push the compare screen, or say in a notification why these episodes cannot be compared."""
    try:
        lockstep = open_lockstep(store, episode_ids)
    except ReplayError as exc:  # CompareError included
        app.notify(str(exc), severity="error", timeout=6)
        return False
    app.push_screen(CompareScreen(lockstep, [pane_label(store, r.episode) for r in lockstep.replays]))
    return True
