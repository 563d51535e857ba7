"""Plots (textual-plotext): loop 1's progression per iteration, a fine-tuning run's losses per step,
an episode's memory size per file per step, and a modal screen to show one full size.

Each widget draws one series from the headless core (automem.optimize.progression,
automem.finetune.losses, automem.runs.replay.MemorySizes); the CLI prints the same series as text.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import Footer, Static
from textual_plotext import PlotextPlot

from automem.finetune.losses import LossCurve
from automem.optimize.progression import Progression
from automem.runs.replay import MemorySizes

#: how a gate's verdict is marked on the progression plot
VERDICT_COLOUR = {"accepted": "green", "rejected": "red", "tied": "orange", "raced_out": "magenta"}
#: colours of the memory files' lines, in path order
FILE_COLOURS = ("cyan", "green", "orange", "magenta", "blue", "red", "yellow", "white")


class SeriesPlot(PlotextPlot):
    """A plot of one of the core's series, drawn again on every show (plotext keeps data between calls)."""

    DEFAULT_CSS = "SeriesPlot { height: 1fr; width: 1fr; }"

    def begin(self, title: str, xlabel: str, ylabel: str) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title(title)
        plt.xlabel(xlabel)
        plt.ylabel(ylabel)

    def nothing(self, title: str, message: str) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title(f"{title}: {message}")
        self.refresh()

    #: the series drawn last (None before the first): what a test waits for before a snapshot
    shown: Progression | LossCurve | MemorySizes | str | None = None

    def show(self, series: Progression | LossCurve | MemorySizes | str, *, title: str = "plot") -> None:
        """Draw whichever series this is; a string says why there is none."""
        self.shown = series
        if isinstance(series, Progression):
            self.show_progression(series)
        elif isinstance(series, LossCurve):
            self.show_losses(series)
        elif isinstance(series, MemorySizes):
            self.show_memory_sizes(series)
        else:
            self.nothing(title, series)

    def show_progression(self, p: Progression, *, highlight: str | None = None) -> None:
        """Loop 1: the parent's mean progression ± standard error per iteration, the best kept so
        far, and every judged candidate (mean ± standard error) coloured by the gate's verdict."""
        title = f"{p.optimization}: progression per iteration"
        if not p.iterations:
            self.nothing(title, "no iteration yet")
            return
        self.begin(title, "iteration", "progression")
        plt = self.plt
        parents = [it for it in p.iterations if it.parent_mean is not None]
        if parents:
            xs = [it.iteration for it in parents]
            ys = [it.parent_mean or 0.0 for it in parents]
            plt.plot(xs, ys, marker="braille", color="blue", label="parent")
            plt.error(xs, ys, yerr=[it.parent_se or 0.0 for it in parents], color="blue")
        best = [it for it in p.iterations if it.best_mean is not None]
        if best:
            plt.plot([it.iteration for it in best], [it.best_mean or 0.0 for it in best], marker="braille",
                     color="green+", label="best kept")  # fmt: skip
        # candidates of one iteration side by side to its right, so their error bars do not overlap
        per_iteration: dict[int, int] = {}
        for c in p.scored:
            per_iteration[c.iteration] = per_iteration.get(c.iteration, 0) + 1
        x_of: dict[tuple[int, int], float] = {}
        seen: dict[int, int] = {}
        for c in p.scored:
            k = seen[c.iteration] = seen.get(c.iteration, 0) + 1
            x_of[(c.iteration, c.candidate)] = c.iteration + 0.3 * k / (per_iteration[c.iteration] + 1)
        for status, colour in VERDICT_COLOUR.items():
            mine = [c for c in p.scored if c.status == status]
            if not mine:
                continue
            xs_c = [x_of[(c.iteration, c.candidate)] for c in mine]
            ys_c = [c.mean or 0.0 for c in mine]
            plt.error(xs_c, ys_c, yerr=[c.se or 0.0 for c in mine], color=colour)
            plt.scatter(xs_c, ys_c, marker="●", color=colour, label=status.replace("_", " "))
        chosen = [c for c in p.scored if highlight is not None and c.structure_id == highlight]
        if chosen:
            c = chosen[-1]
            plt.scatter([x_of[(c.iteration, c.candidate)]], [c.mean or 0.0], marker="◆", color="white",
                        label="selected")  # fmt: skip
        plt.xticks([it.iteration for it in p.iterations])
        last = max(it.iteration for it in p.iterations)
        plt.xlim(-0.2, last + 0.5)
        self.refresh()

    def show_losses(self, curve: LossCurve) -> None:
        """Loop 2: training loss per optimizer step, and evaluation loss where the run evaluated."""
        title = f"{curve.name} ({curve.status}): loss per step"
        if not curve.train and not curve.eval:
            self.nothing(title, "no step logged yet")
            return
        self.begin(title, "step", "loss")
        plt = self.plt
        if curve.train:
            xs, ys = zip(*curve.train, strict=True)
            plt.plot(list(xs), list(ys), marker="braille", color="cyan", label="train")
        if curve.eval:
            xs, ys = zip(*curve.eval, strict=True)
            plt.plot(list(xs), list(ys), marker="●", color="orange", label="eval")
        self.refresh()

    def show_memory_sizes(self, sizes: MemorySizes, step: int | None = None) -> None:
        """Replay: each memory file's size in characters after every step, a line at the step shown."""
        title = f"episode {sizes.episode_id}: memory chars per file"
        if not sizes.files or not sizes.steps:
            self.nothing(title, "no memory files")
            return
        self.begin(title, "step", "chars")
        plt = self.plt
        for i, (path, values) in enumerate(sizes.files.items()):
            plt.plot(sizes.steps, values, marker="braille", color=FILE_COLOURS[i % len(FILE_COLOURS)], label=path)
        if step is not None:
            plt.vline(step, color="gray")
        self.refresh()


class PlotScreen(ModalScreen[None]):
    """One plot over most of the terminal, with a line of text under it; escape closes."""

    DEFAULT_CSS = """
    PlotScreen { align: center middle; }
    PlotScreen > Vertical {
        width: 94%; height: 90%; border: thick $accent; background: $surface; padding: 0 1;
    }
    PlotScreen #plot-note { height: auto; color: $text-muted; }
    """
    BINDINGS = [Binding("escape,q,v", "dismiss", "Close", id="plot-close")]

    def __init__(self, title: str, plot: Widget, note: str = "") -> None:
        super().__init__()
        self.title_text = title
        self.plot = plot
        self.note = note

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = self.title_text
            yield self.plot
            yield Static(self.note, id="plot-note", markup=False)
        yield Footer()
