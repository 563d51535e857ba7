"""Modal screens of the structure editor: the diff of two versions, and the seed editor."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, OptionList, Static, TextArea
from textual.widgets.option_list import Option

from automem.memory.structure import FileSpec

#: both modals: a bordered box over the dimmed editor, most of the terminal so YAML lines fit
_BOX = "width: 90%; height: 90%; border: round $accent; background: $surface; padding: 0 1;"


def diff_text(diff: str) -> Text:
    """A unified diff coloured like git's: additions green, removals red, hunks cyan."""
    out = Text()
    in_hunk = False  # before the first hunk come the file names, which also start with - and +
    for line in diff.splitlines():
        in_hunk = in_hunk or line.startswith("@@")
        if not in_hunk:
            style = "bold"
        elif line.startswith("@@"):
            style = "cyan"
        elif line.startswith("+"):
            style = "green"
        elif line.startswith("-"):
            style = "red"
        else:
            style = ""
        out.append(line + "\n", style=style)
    return out


class DiffScreen(ModalScreen[None]):
    """A unified diff of two structures' YAML; escape closes."""

    DEFAULT_CSS = f"""
    DiffScreen {{ align: center middle; }}
    DiffScreen > Vertical {{ {_BOX} }}
    """
    BINDINGS = [Binding("escape,q", "dismiss", "Close", id="diff-close")]

    def __init__(self, title: str, diff: str) -> None:
        super().__init__()
        self.title_text = title
        self.diff = diff

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = self.title_text
            with VerticalScroll():
                yield Static(diff_text(self.diff), id="diff-body")
        yield Footer()


class SeedScreen(ModalScreen[dict[str, str] | None]):
    """Edit the seed content of a structure's memory files; returns the changed seeds or None."""

    DEFAULT_CSS = f"""
    SeedScreen {{ align: center middle; }}
    SeedScreen > Vertical {{ {_BOX} }}
    SeedScreen OptionList {{ width: 28; height: 1fr; }}
    SeedScreen #seed-side {{ width: 1fr; height: 1fr; }}
    SeedScreen #seed-purpose {{ height: auto; color: $text-muted; }}
    SeedScreen TextArea {{ height: 1fr; }}
    SeedScreen #seed-caps {{ height: 1; }}
    SeedScreen #seed-caps.over {{ color: $error; }}
    SeedScreen #seed-buttons {{ height: auto; align-horizontal: right; }}
    SeedScreen Button {{ margin-left: 1; }}
    """
    BINDINGS = [
        Binding("ctrl+s", "apply", "Apply seeds", id="seed-apply"),
        Binding("escape", "cancel", "Cancel", id="seed-cancel"),
    ]

    def __init__(self, title: str, files: list[dict[str, Any]]) -> None:
        super().__init__()
        self.title_text = title
        self.files = {f["path"]: f for f in files}
        self.seeds = {path: str(f.get("seed") or "") for path, f in self.files.items()}
        self.current: str | None = None

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = self.title_text
            with Horizontal():
                yield OptionList(*(Option(path, id=path) for path in self.files), id="seed-files")
                with Vertical(id="seed-side"):
                    yield Static(id="seed-purpose")
                    yield TextArea(id="seed-text", show_line_numbers=True)
                    yield Static(id="seed-caps")
            with Horizontal(id="seed-buttons"):
                yield Button("Apply", id="apply", variant="primary")
                yield Button("Cancel", id="cancel")
        yield Footer()

    def on_mount(self) -> None:
        files = self.query_one(OptionList)
        files.highlighted = 0
        self.show(next(iter(self.files)))
        self.query_one("#seed-text", TextArea).focus()

    def show(self, path: str) -> None:
        """Keep the text of the file being left, then load ``path``."""
        area = self.query_one("#seed-text", TextArea)
        if self.current is not None:
            self.seeds[self.current] = area.text
        self.current = path
        spec = self.files[path]
        self.query_one("#seed-purpose", Static).update(
            Text.assemble((path, "bold"), f" · {spec.get('purpose', '')} · format: {spec.get('format', 'free text')}")
        )
        area.load_text(self.seeds[path])
        self.update_caps()

    def update_caps(self) -> None:
        """Lines and characters against the file's caps (the structure refuses a seed over them)."""
        if self.current is None:
            return
        spec = self.files[self.current]
        max_lines = int(spec.get("max_lines", FileSpec.model_fields["max_lines"].default))
        max_chars = int(spec.get("max_chars", FileSpec.model_fields["max_chars"].default))
        text = self.query_one("#seed-text", TextArea).text
        lines, chars = text.count("\n") + 1, len(text)
        caps = self.query_one("#seed-caps", Static)
        caps.update(f"{lines}/{max_lines} lines · {chars}/{max_chars} chars")
        caps.set_class(lines > max_lines or chars > max_chars, "over")

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        if event.option.id is not None and event.option.id != self.current:
            self.show(event.option.id)

    def on_text_area_changed(self, event: TextArea.Changed) -> None:
        self.update_caps()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "apply":
            self.action_apply()
        else:
            self.action_cancel()

    def action_apply(self) -> None:
        if self.current is not None:
            self.seeds[self.current] = self.query_one("#seed-text", TextArea).text
        changed = {p: s for p, s in self.seeds.items() if s != str(self.files[p].get("seed") or "")}
        self.dismiss(changed)

    def action_cancel(self) -> None:
        self.dismiss(None)
