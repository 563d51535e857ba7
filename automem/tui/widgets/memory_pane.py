"""The memory folder: a file tree with sizes, the selected file with the last change highlighted,
and the diff of that change."""

from __future__ import annotations

from rich.syntax import Syntax
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Static, Tree

from automem.memory.ops import changed_line_numbers

_CHANGED = "black on bright_yellow"


class MemoryPane(Vertical):
    DEFAULT_CSS = """
    MemoryPane { height: 1fr; }
    MemoryPane > Tree { height: auto; max-height: 40%; border-bottom: solid $secondary; }
    MemoryPane > #mem-file { height: 1fr; }
    MemoryPane > #mem-diff { height: auto; max-height: 30%; border-top: solid $secondary; }
    MemoryPane #mem-file-title { color: $text-muted; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.files: dict[str, str] = {}
        self.selected: str | None = None
        #: path -> 1-based lines the last change touched
        self.changed: dict[str, list[int]] = {}
        self.diffs: dict[str, str] = {}

    def compose(self) -> ComposeResult:
        tree: Tree[str] = Tree("memory/", id="mem-tree")
        tree.show_root = True
        tree.guide_depth = 2
        yield tree
        with VerticalScroll(id="mem-file"):
            yield Static("", id="mem-file-title")
            yield Static("(empty folder)", id="mem-content")
        with VerticalScroll(id="mem-diff"):
            yield Static("", id="mem-diff-text")

    # -- updating --------------------------------------------------------------------------
    def show(
        self,
        files: dict[str, str],
        *,
        before: dict[str, str] | None = None,
        diffs: dict[str, str] | None = None,
        focus: str | None = None,
    ) -> None:
        """Show ``files``; paths whose content differs from ``before`` get their changed lines
        highlighted, and ``focus`` (or the first changed file) becomes the selected one."""
        self.files = files
        self.changed = {}
        if before is not None:
            for path, text in files.items():
                if before.get(path) != text:
                    self.changed[path] = changed_line_numbers(before.get(path), text)
        self.diffs = diffs or {}
        target = focus if focus in files else next(iter(self.changed), None)
        if target is not None:
            self.selected = target
        elif self.selected not in files:
            self.selected = next(iter(files), None)
        self._rebuild_tree()
        self._show_selected()

    def select(self, path: str) -> None:
        if path in self.files:
            self.selected = path
            self._show_selected()

    def _rebuild_tree(self) -> None:
        tree: Tree[str] = self.query_one("#mem-tree", Tree)
        tree.clear()
        tree.root.expand()
        folders: dict[str, object] = {"": tree.root}
        for path, text in self.files.items():
            parent = tree.root
            parts = path.split("/")
            for depth in range(1, len(parts)):
                key = "/".join(parts[:depth])
                if key not in folders:
                    folders[key] = parent.add(parts[depth - 1] + "/", expand=True)  # type: ignore[attr-defined]
                parent = folders[key]  # type: ignore[assignment]
            lines = text.count("\n") + (1 if text and not text.endswith("\n") else 0)
            label = Text(parts[-1], style="bold" if path == self.selected else "")
            # compact: the file's size must fit a 30-column pane beside NetHack's map
            label.append(f" {lines} ln · {len(text.encode())} B", style="dim")
            if path in self.changed:
                label.append("  ✎", style="bold yellow")
            parent.add_leaf(label, data=path)  # type: ignore[attr-defined]
        tree.root.set_label(Text(f"memory/  {len(self.files)} files", style="bold"))

    def _show_selected(self) -> None:
        title = self.query_one("#mem-file-title", Static)
        content = self.query_one("#mem-content", Static)
        diff = self.query_one("#mem-diff-text", Static)
        path = self.selected
        if path is None:
            title.update("")
            content.update("(empty folder)")
            diff.update("")
            return
        text = self.files.get(path, "")
        changed = set(self.changed.get(path, []))
        title.update(Text(f"── {path} ──", style="bold"))
        body = Text()
        for number, line in enumerate(text.splitlines() or [""], start=1):
            body.append(f"{number:>3} ", style="dim")
            body.append(line + "\n", style=_CHANGED if number in changed else "")
        content.update(body)
        patch = self.diffs.get(path, "")
        diff.update(
            Syntax(patch, "diff", theme="ansi_dark", word_wrap=True)
            if patch
            else Text("no change this step", style="dim")
        )

    def on_tree_node_selected(self, event: Tree.NodeSelected[str]) -> None:
        if event.node.data:
            self.select(event.node.data)
