"""Replay: pick a stored episode, then move through it step by step exactly as it was recorded."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import ContentSwitcher, DataTable, Footer

from automem.runs.replay import EpisodeReplay, MemorySizes, ReplayError, list_episodes
from automem.tui.context import TuiContext
from automem.tui.screens.compare import open_compare
from automem.tui.screens.stepping import JumpDialog, stepping_bindings
from automem.tui.widgets.actions_pane import replay_lines
from automem.tui.widgets.panes import EpisodePanes
from automem.tui.widgets.plots import SeriesPlot
from automem.tui.widgets.status_bar import StatusBar


class ReplayScreen(Screen[None]):
    DEFAULT_CSS = """
    ReplayScreen #memory-plot { height: 14; display: none; }
    ReplayScreen #memory-plot.-shown { display: block; }
    """
    BINDINGS = [
        *stepping_bindings("replay"),
        Binding("w", "next_write", "Next write", id="replay-next-write"),
        Binding("W", "previous_write", "Prev write", show=False, id="replay-prev-write"),
        Binding("a", "next_achievement", "Next ★", id="replay-next-achievement"),
        Binding("r", "raw", "Raw output", id="replay-raw", tooltip="Show the model's raw output"),
        Binding("v", "plot", "Plot", id="replay-plot", tooltip="Memory size per file over the episode's steps"),
        Binding("escape", "episodes", "Episodes", id="replay-episodes"),
        Binding("f5", "reload", "Reload", show=False, id="replay-reload"),
        Binding("m", "mark", "Mark", id="replay-mark", tooltip="Mark the episode for a side-by-side compare"),
        Binding(
            "c",
            "compare",
            "Compare",
            id="replay-compare",
            tooltip="Step the 2 or 3 marked episodes (same game, task and seed) side by side",
        ),
    ]

    #: shown before a marked episode's id in the table
    MARK = "● "

    def __init__(self, ctx: TuiContext) -> None:
        super().__init__()
        self.ctx = ctx
        self.replay: EpisodeReplay | None = None
        self.index = 0
        #: episodes marked for a compare, in the order marked (the panes' order, left to right)
        self.marked: list[int] = []
        #: the open episode's memory sizes, read the first time the plot is shown
        self.sizes: MemorySizes | None = None

    def compose(self) -> ComposeResult:
        with ContentSwitcher(initial="episodes", id="replay-switcher"):
            table: DataTable[str] = DataTable(id="episodes", cursor_type="row", zebra_stripes=True)
            yield table
            with Vertical(id="episode"):
                yield EpisodePanes(id="replay-panes")
                yield SeriesPlot(id="memory-plot")
        yield StatusBar(id="replay-status")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#episodes", DataTable)
        for label in (
            "id",
            "run",
            "game",
            "task",
            "structure",
            "engine",
            "seed",
            "steps",
            "progress",
            "status",
            "date",
        ):
            table.add_column(label, key=label)
        self.action_reload()
        episode = self.ctx.extra.get("episode")
        if isinstance(episode, int):
            self.open_episode(episode)
        compare = self.ctx.extra.get("compare")
        if isinstance(compare, list):
            open_compare(self.app, self.ctx.store, compare)

    # -- the episode list ------------------------------------------------------------------
    def action_reload(self) -> None:
        table = self.query_one("#episodes", DataTable)
        table.clear()
        for e in list_episodes(self.ctx.store):
            table.add_row(
                self._id_cell(e["id"]), e["run"], e["game"], e["task"], e["structure"] or (e["structure_id"] or "")[:8],
                e["model"] if e["engine"] == "llamacpp" else e["engine"], str(e["seed"]), str(e["steps"]),
                f"{e['progression']:.1f}%", e["status"], (e["started_at"] or "")[:16].replace("T", " "),
                key=str(e["id"]),
            )  # fmt: skip
        self.query_one(StatusBar).update(Text(f"{table.row_count} episodes in {self.ctx.store.path.name}", style="dim"))

    def _id_cell(self, episode_id: int) -> str:
        return f"{self.MARK if episode_id in self.marked else ''}{episode_id}"

    def action_mark(self) -> None:
        table = self.query_one("#episodes", DataTable)
        if not table.row_count:
            return
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        if key.value is None:
            return
        episode_id = int(key.value)
        if episode_id in self.marked:
            self.marked.remove(episode_id)
        else:
            self.marked.append(episode_id)
        table.update_cell(key, "id", self._id_cell(episode_id), update_width=True)
        table.move_cursor(row=table.cursor_row + 1)  # marking runs down the table, as in a file manager

    def action_compare(self) -> None:
        if len(self.marked) < 2:
            self.notify(f"mark 2 or 3 episodes with m first ({len(self.marked)} marked)", severity="error")
            return
        open_compare(self.app, self.ctx.store, self.marked)

    @on(DataTable.RowSelected, "#episodes")
    def row_selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value is not None:
            self.open_episode(int(event.row_key.value))

    def open_episode(self, episode_id: int) -> None:
        try:
            replay = EpisodeReplay(self.ctx.store, episode_id)
        except ReplayError as exc:
            self.notify(str(exc), severity="error")
            return
        if not len(replay):
            self.notify(f"episode {episode_id} has no recorded steps", severity="warning")
            return
        self.replay = replay
        self.sizes = None
        self.query_one(ContentSwitcher).current = "episode"
        self.show_step(0)
        self.query_one("#actions-pane").focus()

    def action_episodes(self) -> None:
        self.replay = None
        self.sizes = None
        self.query_one(ContentSwitcher).current = "episodes"
        self.action_reload()
        self.query_one("#episodes").focus()

    # -- one step ------------------------------------------------------------------------
    def show_step(self, index: int) -> None:
        replay = self.replay
        if replay is None:
            return
        self.index = index = max(0, min(len(replay) - 1, index))
        step = replay.step(index)
        panes = self.query_one(EpisodePanes)
        panes.game.show(step.frame)
        panes.show_observation(step.observation)
        diffs: dict[str, str] = {}
        for op in step.ops:
            if op.is_write and op.diff:
                diffs[op.path] = diffs.get(op.path, "") + op.diff
        writes = [op.path for op in step.ops if op.is_write]
        panes.memory.show(
            replay.memory(index),
            before=replay.memory(index - 1),
            diffs=diffs,
            focus=writes[-1] if writes else None,
        )
        panes.actions.replace(replay_lines(step))
        e = replay.episode
        self.query_one(StatusBar).set(
            game=e["game"],
            task=e["task"],
            seed=e["seed"],
            step=index,
            reward=replay.total_reward(index),
            progression=step.progression,
            achievements=len(step.achievements),
            structure=self._structure_name(e["structure_id"]),
            engine=e["model"] or e["engine"],
            tokens_per_s=(step.input_tokens - step.cached_tokens + step.output_tokens) / step.model_s
            if step.model_s
            else None,
            cache_share=step.cached_tokens / step.input_tokens if step.input_tokens else None,
            state=f"episode {e['id']} · {index}/{len(replay) - 1}",
        )
        if self.plot_shown:
            self._draw_plot()

    @property
    def plot_shown(self) -> bool:
        return self.query_one(SeriesPlot).has_class("-shown")

    def _draw_plot(self) -> None:
        if self.replay is None:
            return
        if self.sizes is None:
            self.sizes = self.replay.memory_sizes()
        self.query_one(SeriesPlot).show_memory_sizes(self.sizes, step=self.sizes.steps[self.index])

    def action_plot(self) -> None:
        plot = self.query_one(SeriesPlot)
        plot.toggle_class("-shown")
        if self.plot_shown:
            self._draw_plot()

    def _structure_name(self, structure_id: str) -> str:
        name = self.ctx.store.structure_name(structure_id)
        return name if name is not None else structure_id[:8]

    def _go_if(self, target: int | None, what: str) -> None:
        if target is None:
            self.notify(f"no {what} of step {self.index}", severity="warning", timeout=2)
        else:
            self.show_step(target)

    def action_move(self, delta: int) -> None:
        self.show_step(self.index + delta)

    def action_go(self, index: int) -> None:
        if self.replay is not None:
            self.show_step(index if index >= 0 else len(self.replay) - 1)

    def action_jump(self) -> None:
        if self.replay is not None:
            self.app.push_screen(JumpDialog(len(self.replay) - 1), lambda v: v is not None and self.show_step(v))

    def action_next_write(self) -> None:
        if self.replay is not None:
            self._go_if(self.replay.next_write(self.index), "memory write after")

    def action_previous_write(self) -> None:
        if self.replay is not None:
            self._go_if(self.replay.previous_write(self.index), "memory write before")

    def action_next_achievement(self) -> None:
        if self.replay is not None:
            self._go_if(self.replay.next_achievement(self.index), "achievement after")

    def action_raw(self) -> None:
        self.query_one(EpisodePanes).actions.toggle_raw()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # stepping keys only mean something with an episode open
        if action in ("move", "go", "jump", "next_write", "previous_write", "next_achievement", "raw", "episodes",
                      "plot"):  # fmt: skip
            return self.replay is not None
        if action in ("mark", "compare"):
            return self.replay is None
        return True


SCREEN = ReplayScreen
