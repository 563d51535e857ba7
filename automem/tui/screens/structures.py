"""Structure editor: list versions with lineage, scores and loop 1's decisions, view, diff, edit, save, use.

A structure is never changed in place: saving an edit stores a new version whose parent is the
structure it was edited from and whose author is "human" (see automem.memory.structure).
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from automem.memory.structure import StructureError
from automem.tui.context import TuiContext
from automem.tui.widgets.plots import PlotScreen, SeriesPlot
from automem.tui.widgets.structure_catalog import (
    StructureEntry,
    catalog,
    editor_yaml,
    file_specs,
    summary,
    with_seeds,
    yaml_diff,
)
from automem.tui.widgets.structure_editor import StructureEditor
from automem.tui.widgets.structure_list import StructureTable
from automem.tui.widgets.structure_modals import DiffScreen, SeedScreen


class StructuresScreen(Screen[None]):
    DEFAULT_CSS = """
    StructuresScreen #structures-body { height: 1fr; }
    StructuresScreen #structures-left { width: 84; border-right: vkey $panel; }
    StructuresScreen #structure-info {
        height: auto; max-height: 50%; overflow-y: auto; padding: 0 1; border-top: hkey $panel;
    }
    StructuresScreen StructureEditor { width: 1fr; }
    """
    BINDINGS = [
        Binding("ctrl+s", "save", "Save version", id="structure-save", tooltip="Save the edited YAML as a new version"),
        Binding("u", "use", "Use next", id="structure-use", tooltip="Play the next episode with this structure"),
        Binding("d", "diff", "Diff", id="structure-diff", tooltip="Mark a diff base, then diff another row to it"),
        Binding(
            "p",
            "diff_parent",
            "Diff parent",
            id="structure-diff-parent",
            tooltip="What this version changed from its parent: the YAML diff of this lineage step",
        ),
        Binding(
            "v",
            "plot",
            "Plot",
            id="structure-plot",
            tooltip="Loop 1's progression per iteration along this structure's optimization (mean ± SE, verdicts)",
        ),
        Binding("s", "seeds", "Seeds", id="structure-seeds", tooltip="Edit the seed content of memory files"),
        Binding("ctrl+g", "goto_error", "Go to error", id="structure-goto-error", tooltip="Select the bad line"),
        Binding("escape", "focus_list", "List", id="structure-focus-list", show=False),
    ]

    def __init__(self, ctx: TuiContext) -> None:
        super().__init__()
        self.ctx = ctx
        self.entries: dict[str, StructureEntry] = {}
        #: unsaved texts by structure id, so moving the cursor to look at another row loses nothing
        self.drafts: dict[str, str] = {}
        self.diff_base: str | None = None
        #: the structure whose YAML the editor holds (the parent of a saved edit)
        self.editing: str | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="structures-body"):
            with Vertical(id="structures-left"):
                yield StructureTable(id="structure-table")
                yield Static(id="structure-info")
            yield StructureEditor(id="structure-editor")
        yield Footer()

    def on_mount(self) -> None:
        self.reload()
        table = self.table
        # start on the structure the next episode would play with, so "what am I using" is the first view
        if self.in_use in self.entries:
            table.select(self.in_use)
        self.open(table.current_id)
        table.focus()

    # -- parts ----------------------------------------------------------------------------
    @property
    def table(self) -> StructureTable:
        return self.query_one(StructureTable)

    @property
    def editor(self) -> StructureEditor:
        return self.query_one(StructureEditor)

    @property
    def in_use(self) -> str:
        """The id the next episode would play (the default for the game until one is chosen)."""
        return self.ctx.structure_for_game().id

    def reload(self) -> None:
        entries, problems = catalog(self.ctx.store)
        self.entries = {e.id: e for e in entries}
        self.table.show(entries, in_use=self.in_use, diff_base=self.diff_base)
        for problem in problems:
            self.notify(problem, title="structure skipped", severity="warning")

    def text_of(self, sid: str) -> str:
        """What the editor shows for ``sid``: its unsaved draft, else its YAML."""
        return self.drafts[sid] if sid in self.drafts else editor_yaml(self.entries[sid].structure)

    def open(self, sid: str | None) -> None:
        """Load ``sid`` into the editor, keeping the text being left as a draft if it was edited."""
        if sid == self.editing or sid not in self.entries:
            return
        self.keep_draft()
        self.editing = sid
        e = self.entries[sid]
        header = Text.assemble(
            (e.name, "bold"),
            f" · {sid[:8]} · {e.game or 'any game'} · ",
            f"parent {e.parent[:8]}" if e.parent else "no parent",
            f" · by {e.author}",
            (" · unsaved draft" if sid in self.drafts else "", "yellow"),
        )
        self.editor.source = e.name
        self.show_info()
        self.editor.load(self.text_of(sid), header, sid)

    def show_info(self) -> None:
        if self.editing in self.entries:
            entry = self.entries[self.editing]
            self.query_one("#structure-info", Static).update(summary(entry, next_episode=entry.id == self.in_use))

    def keep_draft(self) -> None:
        if self.editing is None or self.editing not in self.entries:
            return
        text = self.editor.text
        if text != editor_yaml(self.entries[self.editing].structure):
            self.drafts[self.editing] = text
        else:
            self.drafts.pop(self.editing, None)

    def on_screen_resume(self) -> None:
        # other screens (a run, the optimizer) may have stored versions or chosen a structure meanwhile
        if self.entries:
            self.reload()
            self.open(self.table.current_id)
            self.show_info()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        # the cursor now, not the event's row: a rebuild posts highlights of rows it passed over
        self.open(self.table.current_id)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.editor.area.focus()  # enter on a row: start editing it

    # -- actions --------------------------------------------------------------------------
    def action_focus_list(self) -> None:
        self.table.focus()

    def action_goto_error(self) -> None:
        if not self.editor.goto_error():
            self.notify("no error points at a line")

    def action_save(self) -> None:
        if self.editing is None:
            return
        parsed = self.editor.validate()
        if parsed is None:
            self.notify("the YAML is not valid; see the status line (ctrl+g goes to the error)",
                        title="not saved", severity="error")  # fmt: skip
            return
        if parsed.id in self.entries:
            same = self.entries[parsed.id]
            self.notify(f"identical to {same.name} {parsed.id[:8]}: nothing new to save", title="not saved",
                        severity="warning")  # fmt: skip
            return
        base = self.entries[self.editing]
        # lineage by the edited row's id (a stored row keeps the id it was saved under)
        new = parsed.model_copy(update={"parent": base.id, "author": "human"})
        if base.builtin:
            # keep the parent beside its child: a later package may ship a different built-in
            self.ctx.store.save_structure(base.structure)
        sid = self.ctx.store.save_structure(new)
        folder = self.ctx.store.path.parent / "structures"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{new.name}-{sid[:8]}.yaml").write_text(editor_yaml(new, lineage=True), encoding="utf-8")
        except OSError as exc:  # the store row is the record; the file is a convenience copy
            self.notify(f"saved in the store, but the YAML file could not be written: {exc}", severity="warning")
        self.drafts.pop(self.editing, None)
        self.editing = None  # the editor's text now belongs to the new row
        self.reload()
        self.table.select(sid)
        self.open(sid)
        self.notify(f"saved {new.name} {sid[:8]} (parent {base.id[:8]})", title="new version")

    def action_use(self) -> None:
        sid = self.table.current_id
        if sid is None:
            return
        entry = self.entries[sid]
        self.ctx.structure = entry.structure
        if entry.game:
            self.ctx.game = entry.game
        self.table.set_marks(in_use=sid, diff_base=self.diff_base)
        self.show_info()
        unsaved = " (its unsaved edits are not used: ctrl+s saves them)" if sid in self.drafts else ""
        self.app.notify(f"next episode plays {entry.name} {sid[:8]} on {self.ctx.game}{unsaved}", title="structure")

    def action_diff(self) -> None:
        sid = self.table.current_id
        if sid is None:
            return
        self.keep_draft()
        if self.diff_base is None or (self.diff_base == sid and sid not in self.drafts):
            # first press marks the base; a second on the same unedited row clears it
            self.diff_base = None if self.diff_base == sid else sid
            self.table.set_marks(in_use=self.in_use, diff_base=self.diff_base)
            if self.diff_base:
                self.notify(f"diff base: {self.entries[sid].name} {sid[:8]}; press d on another row")
            return
        base = self.entries[self.diff_base]
        after_name = f"{self.entries[sid].name} {sid[:8]}" + (" (draft)" if sid in self.drafts else "")
        # the base as saved; the other side as the editor would show it (a draft when edited), so
        # d on the base row itself shows what the edits changed
        diff = yaml_diff(editor_yaml(base.structure), self.text_of(sid), f"{base.name} {base.id[:8]}", after_name)
        self.diff_base = None
        self.table.set_marks(in_use=self.in_use, diff_base=None)
        if not diff:
            self.notify("no difference")
            return
        self.app.push_screen(DiffScreen(f"{base.name} {base.id[:8]} → {after_name}", diff))

    def action_diff_parent(self) -> None:
        sid = self.table.current_id
        if sid is None:
            return
        entry = self.entries[sid]
        parent = self.entries.get(entry.parent or "")
        if parent is None:
            self.notify("no parent to compare with" if not entry.parent else f"parent {entry.parent[:8]} is not stored")
            return
        before, after = f"{parent.name} {parent.id[:8]}", f"{entry.name} {sid[:8]}"
        # the versions as saved (a draft is not a step of the lineage: d on its row shows the edits)
        diff = yaml_diff(editor_yaml(parent.structure), editor_yaml(entry.structure), before, after)
        if not diff:
            self.notify("no difference from its parent")
            return
        verdict = f" · loop 1: {entry.decision.status}" if entry.decision is not None else ""
        self.app.push_screen(DiffScreen(f"{before} → {after}{verdict}", diff))

    def action_plot(self) -> None:
        from automem.optimize.progression import optimization_of_structure, progression

        sid = self.table.current_id
        if sid is None:
            return
        name = optimization_of_structure(self.ctx.store, sid)
        if name is None:
            self.notify("this structure took part in no optimization (loop 1): nothing to plot")
            return
        p = progression(self.ctx.store, name)
        plot = SeriesPlot(id="progression-plot")
        plot.show_progression(p, highlight=sid)
        judged = len(p.scored)
        accepted = sum(c.status == "accepted" for c in p.scored)
        marked = any(c.structure_id == sid for c in p.scored)
        note = (f"{len(p.iterations)} iterations, {accepted} of {judged} judged candidates accepted · bars: ± one "
                "standard error over the seeds"
                + (f" · ◆ {self.entries[sid].name} {sid[:8]}" if marked else "")
                + f" · as text: automem structures progression {name}")  # fmt: skip
        self.app.push_screen(PlotScreen(f"loop 1 · {name} ({p.status})", plot, note))

    def action_seeds(self) -> None:
        if self.editing is None:
            return
        try:
            files = file_specs(self.editor.text)
        except StructureError as exc:
            self.notify(f"fix the YAML first: {exc}", severity="error")
            return
        if not files:
            self.notify("this structure has no memory files")
            return

        def applied(seeds: dict[str, str] | None) -> None:
            if seeds:
                self.editor.set_text(with_seeds(self.editor.text, seeds))
                self.notify(f"seed of {', '.join(seeds)} applied; ctrl+s saves the new version")

        self.app.push_screen(SeedScreen(f"memory file seeds · {self.entries[self.editing].name}", files), applied)


SCREEN = StructuresScreen
