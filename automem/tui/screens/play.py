"""Play: watch the agent, step it turn by turn, take over, edit its memory."""

from __future__ import annotations

from dataclasses import dataclass

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Input

from automem.agent.loop import TurnEvent
from automem.memory.syntax import Act, Done, ParseError, parse_command
from automem.runs.episode import StepEvent
from automem.store.db import unified_diff
from automem.tui.context import TuiContext
from automem.tui.driver import Advanced, Driver, Ended, EpisodeSpec, Failed, HumanDone, Report, Started
from automem.tui.screens.play_dialogs import EditFileDialog, NewEpisodeDialog
from automem.tui.widgets.actions_pane import ActionLine, OpLine, helper_lines, turn_line
from automem.tui.widgets.panes import EpisodePanes
from automem.tui.widgets.status_bar import StatusBar

DELAYS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)


#: the take-over prompt's hint; its example is checked against the parser (tests/tui/test_play_screen.py)
TAKE_OVER_EXAMPLE = "append notes.md: text"
TAKE_OVER_HINT = f"an action (e.g. move_left) or a memory operation (e.g. {TAKE_OVER_EXAMPLE}); escape hands back"


class DriverReport(Message):
    def __init__(self, report: Report) -> None:
        super().__init__()
        self.report = report


@dataclass
class Tally:
    """Token counts over the episode, for the status bar."""

    input_tokens: int = 0
    cached_tokens: int = 0
    output_tokens: int = 0
    model_s: float = 0.0


class PlayScreen(Screen[None]):
    BINDINGS = [
        Binding("space", "pause", "Pause/Run", id="play-pause", tooltip="Pause or resume the agent"),
        Binding("s", "step", "Step", id="play-step", tooltip="Play one game step, then pause"),
        Binding("full_stop", "turn", "Turn", id="play-turn", tooltip="Run one model turn (one phase turn), then pause"),
        Binding("plus,equals_sign", "faster", "Faster", id="play-faster"),
        Binding("minus", "slower", "Slower", id="play-slower"),
        Binding("n", "new_episode", "New", id="play-new", tooltip="New episode: seed, game, structure, engine"),
        Binding(
            "t",
            "take_over",
            "Take over",
            id="play-take-over",
            tooltip="Type a game action or a memory operation yourself",
        ),  # fmt: skip
        Binding("e", "edit_file", "Edit file", id="play-edit", tooltip="Edit the selected memory file"),
        Binding("r", "raw", "Raw", id="play-raw", tooltip="Show the model's raw output"),
    ]

    def __init__(self, ctx: TuiContext) -> None:
        super().__init__()
        self.ctx = ctx
        root = ctx.memory_root or ctx.store.path.parent / "memory"
        self.driver = Driver(ctx.store, root, self.post_message_report)
        self.driver.running = not ctx.start_paused
        self.driver.delay = ctx.step_delay
        self.memory: dict[str, str] = {}
        self.tally = Tally()
        self.step = 0
        self.reward = 0.0
        self.episode_id: int | None = None
        self.state = "starting"

    def post_message_report(self, report: Report) -> None:
        self.post_message(DriverReport(report))

    def compose(self) -> ComposeResult:
        yield EpisodePanes(id="play-panes")
        yield Input(placeholder=TAKE_OVER_HINT, id="take-over")
        yield StatusBar(id="play-status")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#take-over").display = False
        self._run_driver()
        self._start(self.ctx.seed)

    @work(thread=True, exclusive=True, group="agent", exit_on_error=False)
    def _run_driver(self) -> None:
        self.driver.loop()

    def _start(self, seed: int) -> None:
        try:
            structure = self.ctx.structure_for_game()
        except Exception as exc:
            self.notify(f"cannot load the structure: {exc}", severity="error")
            return
        self._set_state("loading model" if not self.driver._engines else "starting")
        self.driver.send(
            "new",
            EpisodeSpec(
                game=self.ctx.game,
                task=self.ctx.task,
                seed=seed,
                structure=structure,
                engine_spec=self.ctx.engine_spec,
                memory_engine_spec=self.ctx.memory_engine_spec,
                max_steps=self.ctx.max_steps,
                temperature=self.ctx.temperature,
                engine_options=dict(self.ctx.engine_options),
            ),
        )

    async def shutdown(self) -> None:
        """Stop the driver thread after its current model turn; the episode is closed consistently."""
        import asyncio

        self.driver.stop.set()
        if self.driver.started.is_set():
            await asyncio.to_thread(self.driver.done.wait, 120)

    async def on_unmount(self) -> None:
        await self.shutdown()

    # -- reports from the driver thread ---------------------------------------------------
    @on(DriverReport)
    def report(self, message: DriverReport) -> None:
        report = message.report
        panes = self.query_one(EpisodePanes)
        if isinstance(report, Started):
            runner = report.runner
            self.episode_id = runner.episode_id
            self.tally, self.step, self.reward = Tally(), 0, 0.0
            panes.game.show(report.frame)
            panes.show_observation(report.observation)
            panes.actions.replace([])
            self._show_memory(report.memory, fresh=True)
            self.query_one(StatusBar).set(
                game=runner.game.name, task=runner.game.task, seed=runner.seed, step=0, reward=0.0, progression=0.0,
                achievements=0, structure=runner.structure.name, engine=runner.engine.model,
                tokens_per_s=None, cache_share=None,
            )  # fmt: skip
            self._set_state()
        elif isinstance(report, Advanced):
            self._advanced(report)
        elif isinstance(report, HumanDone):
            panes.actions.add([OpLine("you", report.path or "", report.ok, report.message, "human")])
            self._show_memory(report.memory, focus=report.path)
            if not report.ok:
                self.notify(report.message, severity="warning")
        elif isinstance(report, Ended):
            s = report.summary
            self.notify(f"episode {s.episode_id} {s.status}: {s.ended_reason or s.error or ''} · "
                        f"{s.steps} steps · progress {s.progression:.1f}%")  # fmt: skip
            self._set_state(s.status)
        elif isinstance(report, Failed):
            self.notify(report.message, severity="error", timeout=8)
            self._set_state()

    def _advanced(self, report: Advanced) -> None:
        panes = self.query_one(EpisodePanes)
        event = report.event
        if isinstance(event, TurnEvent):
            panes.actions.add([turn_line(self.step, event)])
            if event.call is not None:
                self._count(event.call.input_tokens, event.call.cached_tokens, event.call.output_tokens,
                            event.call.latency_s)  # fmt: skip
        else:
            assert isinstance(event, StepEvent)
            self.step = event.step + 1
            self.reward += event.reward
            panes.actions.add([*helper_lines(event.decision.ops),
                               ActionLine(event.step, event.decision.action, event.decision.source, event.reward,
                                          tuple(event.unlocked))])  # fmt: skip
            if report.frame is not None:
                panes.game.show(report.frame)
            if report.observation is not None:
                panes.show_observation(report.observation)
            self.query_one(StatusBar).set(
                step=self.step, reward=self.reward, progression=event.progression,
                achievements=len(event.record.achievements),
            )  # fmt: skip
            if self.driver.step_budget == 0 and not self.driver.running:
                self._set_state()
        self._show_memory(report.memory)

    def _count(self, inp: int, cached: int, out: int, seconds: float) -> None:
        t = self.tally
        t.input_tokens += inp
        t.cached_tokens += cached
        t.output_tokens += out
        t.model_s += seconds
        self.query_one(StatusBar).set(
            # prompt tokens computed plus tokens generated: on a small CPU model the prompt dominates
            tokens_per_s=(t.input_tokens - t.cached_tokens + t.output_tokens) / t.model_s if t.model_s else None,
            cache_share=t.cached_tokens / t.input_tokens if t.input_tokens else None,
        )

    def _show_memory(self, files: dict[str, str], *, fresh: bool = False, focus: str | None = None) -> None:
        if files == self.memory and not fresh and focus is None:
            return
        before = None if fresh else self.memory
        diffs = {}
        if before is not None:
            diffs = {p: unified_diff(before.get(p), files.get(p), p) for p in set(before) | set(files)
                     if before.get(p) != files.get(p)}  # fmt: skip
        self.memory = files
        self.query_one(EpisodePanes).memory.show(files, before=before, diffs=diffs, focus=focus)

    def _set_state(self, ended: str | None = None) -> None:
        d = self.driver
        if ended is not None:
            self.state = f"episode {ended} · n for a new one"
        elif d.running:
            self.state = "running" + (f" · {d.delay:g}s/step" if d.delay else "")
        else:
            self.state = "paused"
        self.query_one(StatusBar).set(state=self.state)

    # -- keys --------------------------------------------------------------------------------
    def action_pause(self) -> None:
        d = self.driver
        d.running = not d.running
        d.step_budget = d.turn_budget = 0
        self._set_state()

    def action_step(self) -> None:
        d = self.driver
        d.running = False
        d.step_budget += 1
        self._set_state()

    def action_turn(self) -> None:
        d = self.driver
        d.running = False
        d.step_budget = 0
        d.turn_budget += 1
        self._set_state()

    def action_faster(self) -> None:
        self._change_delay(-1)

    def action_slower(self) -> None:
        self._change_delay(1)

    def _change_delay(self, direction: int) -> None:
        index = min(range(len(DELAYS)), key=lambda i: abs(DELAYS[i] - self.driver.delay))
        self.driver.delay = DELAYS[max(0, min(len(DELAYS) - 1, index + direction))]
        self._set_state()

    def action_new_episode(self) -> None:
        def chosen(values: dict[str, object] | None) -> None:
            if values is None:
                return
            self.ctx.game = str(values["game"])
            self.ctx.task = values["task"] or None  # type: ignore[assignment]
            self.ctx.engine_spec = str(values["engine"])
            if values.get("structure") is not None:
                self.ctx.structure = values["structure"]  # type: ignore[assignment]
            self.ctx.seed = int(values["seed"])  # type: ignore[arg-type]
            self._start(self.ctx.seed)

        self.app.push_screen(NewEpisodeDialog(self.ctx), chosen)

    def action_take_over(self) -> None:
        self.driver.running = False
        self.driver.step_budget = self.driver.turn_budget = 0
        box = self.query_one("#take-over", Input)
        box.display = True
        box.focus()
        self._set_state()
        self.query_one(StatusBar).set(state="you have the controls · enter to play · escape hands back")

    @on(Input.Submitted, "#take-over")
    def take_over_submitted(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        event.input.value = ""
        if not text:
            return
        command = parse_command(text)
        if isinstance(command, Act):
            self.driver.send("action", command.action)
        elif isinstance(command, ParseError):
            # a bare action name ("noop", "move_left") is what a person types most
            if " " not in text:
                self.driver.send("action", text)
            else:
                self.notify(command.message, severity="error")
        elif isinstance(command, Done):
            self._hand_back()
        else:
            self.driver.send("op", command)

    def on_key(self, event: object) -> None:
        key = getattr(event, "key", "")
        box = self.query_one("#take-over", Input)
        if key == "escape" and box.display:
            self._hand_back()

    def _hand_back(self) -> None:
        box = self.query_one("#take-over", Input)
        box.display = False
        self.query_one("#actions-pane").focus()
        self._set_state()

    def action_edit_file(self) -> None:
        pane = self.query_one(EpisodePanes).memory
        path = pane.selected
        if path is None:
            self.notify("no memory file selected", severity="warning")
            return
        self.driver.running = False
        self._set_state()

        def saved(text: str | None) -> None:
            if text is not None:
                self.driver.send("edit", (path, text))

        self.app.push_screen(EditFileDialog(path, self.memory.get(path, "")), saved)

    def action_raw(self) -> None:
        self.query_one(EpisodePanes).actions.toggle_raw()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # while typing a take-over command, letters belong to the input box
        if self.is_mounted and self.query_one("#take-over", Input).has_focus:
            return False
        return True


SCREEN = PlayScreen
