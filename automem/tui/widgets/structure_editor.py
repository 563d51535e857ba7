"""The YAML editor of one structure, validated while typing."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.timer import Timer
from textual.widgets import Static, TextArea

from automem.memory.structure import Structure, StructureError, structure_from_yaml
from automem.tui.widgets.structure_catalog import error_lines

#: seconds of quiet typing before the text is validated again
DEBOUNCE_S = 0.3
ERROR_STYLE = "bold white on #8b1a1a"


class YamlArea(TextArea):
    """A TextArea that paints the lines an error points at, without moving the cursor there."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(show_line_numbers=True, soft_wrap=True, **kwargs)  # type: ignore[arg-type]
        self.error_rows: frozenset[int] = frozenset()  # 0-based

    def mark_errors(self, rows: frozenset[int]) -> None:
        if rows != self.error_rows:
            self.error_rows = rows
            self.notify_style_update()  # drops the rendered-line cache so the marks show
            self.refresh()

    def get_line(self, line_index: int) -> Text:
        line = super().get_line(line_index)
        if line_index in self.error_rows:
            line.stylize(ERROR_STYLE)
        return line


class StructureEditor(Vertical):
    """Header (what is being edited), the YAML, and a status line: valid with its id, or the errors."""

    DEFAULT_CSS = """
    StructureEditor { height: 1fr; }
    StructureEditor #structure-header { height: auto; padding: 0 1; background: $boost; }
    StructureEditor YamlArea { height: 1fr; }
    StructureEditor #structure-status { height: auto; max-height: 8; padding: 0 1; }
    StructureEditor #structure-status.valid { color: $success; }
    StructureEditor #structure-status.invalid { color: $error; }
    """

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.source = "editor"
        self.parsed: Structure | None = None
        #: id of the structure the text was loaded from: tells an edit from an unchanged text
        self.original_id: str | None = None
        self.errors: list[tuple[int | None, str]] = []
        self._timer: Timer | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="structure-header")
        yield YamlArea(id="structure-yaml")
        yield Static(id="structure-status")

    @property
    def area(self) -> YamlArea:
        return self.query_one(YamlArea)

    @property
    def text(self) -> str:
        return self.area.text

    def load(self, text: str, header: Text | str, original_id: str | None) -> None:
        """Show ``text`` (validated at once: the status must never describe the previous structure)."""
        self.original_id = original_id
        self.query_one("#structure-header", Static).update(header)
        self.area.load_text(text)
        self.validate()

    def set_text(self, text: str) -> None:
        """Replace the text as an edit (undoable), e.g. after the seed editor applied."""
        area = self.area
        area.replace(text, (0, 0), area.document.end)
        self.validate()

    def on_text_area_changed(self, event: TextArea.Changed) -> None:
        event.stop()
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(DEBOUNCE_S, self.validate)

    def validate(self) -> Structure | None:
        """Parse the text now; update the status line and the marked lines."""
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        status = self.query_one("#structure-status", Static)
        try:
            self.parsed = structure_from_yaml(self.text, source=self.source)
        except StructureError as exc:
            self.parsed = None
            self.errors = error_lines(str(exc))
            lines = [f"✗ line {n}: {msg}" if n else f"✗ {msg}" for n, msg in self.errors]
            status.update(Text("\n".join(lines)))
            status.set_classes("invalid")
            self.area.mark_errors(frozenset(n - 1 for n, _ in self.errors if n))
            return None
        self.errors = []
        sid = self.parsed.id
        note = "unchanged" if sid == self.original_id else "edited: ctrl+s saves it as a new version"
        status.update(Text(f"✓ valid · id {sid[:8]} · {note}"))
        status.set_classes("valid")
        self.area.mark_errors(frozenset())
        return self.parsed

    def goto_error(self) -> bool:
        """Select the first line an error points at; False when none does."""
        rows = [n for n, _ in self.errors if n]
        if not rows:
            return False
        self.area.select_line(rows[0] - 1)
        self.area.scroll_cursor_visible(center=True)
        self.area.focus()
        return True
