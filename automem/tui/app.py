"""The automem Textual app: four modes (play, replay, structures, jobs), one stylesheet."""

from __future__ import annotations

from collections.abc import Iterable

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from automem.tui.context import TuiContext

MODE_KEYS = (
    ("play", "f1", "Play"),
    ("replay", "f2", "Replay"),
    ("structures", "f3", "Structures"),
    ("jobs", "f4", "Jobs"),
)


class AutomemApp(App[None]):
    CSS_PATH = "app.tcss"
    TITLE = "automem"
    BINDINGS = [
        *(Binding(key, f"switch_mode('{mode}')", label, id=f"mode-{mode}") for mode, key, label in MODE_KEYS),
        Binding("ctrl+q", "quit", "Quit", id="quit", priority=True),
    ]

    def __init__(self, ctx: TuiContext, *, mode: str = "play") -> None:
        super().__init__()
        self.ctx = ctx
        self._start_mode = mode
        # factories, not instances: a mode's screen (and its module) is loaded the first time it is shown
        self._built: dict[str, Screen] = {}
        for mode, _, _ in MODE_KEYS:
            self.add_mode(mode, lambda m=mode: self._build(m))

    def _build(self, mode: str) -> Screen:
        from importlib import import_module

        screen: Screen = import_module(f"automem.tui.screens.{mode}").SCREEN(self.ctx)
        self._built[mode] = screen
        return screen

    def on_mount(self) -> None:
        self.switch_mode(self._start_mode)

    async def action_quit(self) -> None:
        # the play screen finishes its model turn and closes the episode before the process ends
        for screen in list(self._built.values()):
            shutdown = getattr(screen, "shutdown", None)
            if shutdown is not None:
                await shutdown()
        self.exit()

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for mode, key, label in MODE_KEYS:
            yield SystemCommand(f"Go to {label}", f"Switch to the {label.lower()} screen ({key})",
                                lambda m=mode: self.switch_mode(m))  # fmt: skip
        # every binding of the current screen is also a palette command
        for key, active in screen.active_bindings.items():
            binding = active.binding
            if active.node is screen and binding.description and binding.show:
                yield SystemCommand(binding.description, binding.tooltip or f"key {key}",
                                    lambda a=binding.action: self.run_action(a, screen))  # fmt: skip
