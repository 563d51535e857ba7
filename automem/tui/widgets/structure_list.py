"""The structure list: a table in lineage order, each version indented under its parent."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable
from textual.widgets.data_table import CellDoesNotExist

from automem.tui.widgets.structure_catalog import StructureEntry, tree_rows

COLUMNS = (
    ("", "mark"),
    ("name", "name"),
    ("id", "id"),
    ("game", "game"),
    ("parent", "parent"),
    ("author", "author"),
    ("eps", "episodes"),
    ("mean %", "mean"),
)


class StructureTable(DataTable[object]):
    """Rows keyed by structure id; the first column marks the one in use (●) and the diff base (Δ), the
    author column loop 1's verdict on the versions its critic proposed (✓ accepted, ✗ rejected)."""

    DEFAULT_CSS = """
    StructureTable { height: 1fr; }
    """

    def __init__(self, **kwargs: object) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)  # type: ignore[arg-type]
        self.entries: dict[str, StructureEntry] = {}

    def on_mount(self) -> None:
        for label, key in COLUMNS:
            self.add_column(label, key=key)

    def show(self, entries: list[StructureEntry], *, in_use: str | None, diff_base: str | None) -> None:
        """Rebuild the rows, keeping the cursor on the same structure where it still exists."""
        current = self.current_id
        self.clear()
        self.entries = {e.id: e for e in entries}
        for entry, prefix in tree_rows(entries):
            name = Text(prefix, style="dim") + Text(entry.name, style="bold" if entry.builtin else "")
            self.add_row(
                _mark(entry.id, in_use, diff_base),
                name,
                entry.id[:8],
                entry.game or "any",
                (entry.parent or "")[:8],
                _author(entry),
                Text(str(entry.episodes) if entry.episodes else "", justify="right"),
                Text("" if entry.mean_progression is None else f"{entry.mean_progression:.1f}", justify="right"),
                key=entry.id,
            )
        if current in self.entries:
            self.select(current)

    def set_marks(self, *, in_use: str | None, diff_base: str | None) -> None:
        for sid in self.entries:
            self.update_cell(sid, "mark", _mark(sid, in_use, diff_base))

    @property
    def current_id(self) -> str | None:
        if not self.row_count:
            return None
        try:
            key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key
        except CellDoesNotExist:  # the cursor can point past the rows while they are rebuilt
            return None
        return str(key.value) if key.value is not None else None

    def select(self, sid: str) -> None:
        self.move_cursor(row=self.get_row_index(sid))


def _author(entry: StructureEntry) -> str | Text:
    """The author, with loop 1's verdict on a critic's proposal: ✓ accepted, ✗ rejected, … not judged yet."""
    if entry.decision is None:
        return entry.author
    return Text.assemble(entry.author, " ", entry.decision.mark)


def _mark(sid: str, in_use: str | None, diff_base: str | None) -> Text:
    return Text(("●" if sid == in_use else " ") + ("Δ" if sid == diff_base else " "), style="bold green")
