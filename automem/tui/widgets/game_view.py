"""The game screen on Textual's line API: one Strip per row, only changed rows refreshed.

Every game hands over a Frame (characters plus a 16-colour curses index per cell). NetHack and
MiniHack draw in their terminal colours; small frames (Crafter's 9x7 local view) are drawn as a
coloured grid, three columns per cell, so the picture is readable at a glance. ``side`` lines
(vitals, inventory) are drawn to the right of the picture.
"""

from __future__ import annotations

from rich.color import Color
from rich.segment import Segment
from rich.style import Style
from textual.geometry import Region, Size
from textual.message import Message
from textual.strip import Strip
from textual.widget import Widget

from automem.games.base import Frame

#: frames at most this wide are drawn as a grid of coloured cells
GRID_MAX_WIDTH = 20
_GRID_CELL = 3
_SIDE_GAP = 3
#: a grid's side text goes below it where beside it would make the picture wider than this: the
#: game pane stays narrow and the memory and actions panes keep the width
COMPACT_WIDTH = 48
# curses black is drawn as bright black: NetHack's black glyphs (dark parts of the map) would
# otherwise vanish on a dark terminal
_FG = [Style(color=Color.from_ansi(8 if i == 0 else i)) for i in range(16)]
_GRID = [
    Style(bgcolor=Color.from_ansi(i), color=Color.from_ansi(15 if i in (0, 1, 4, 5, 8) else 0), bold=True)
    for i in range(16)
]
_CURSOR = Style(reverse=True)
_SIDE = Style(color="bright_white")


class GameView(Widget):
    DEFAULT_CSS = """
    GameView { width: auto; height: auto; }
    """

    class Sized(Message):
        """The picture's width changed (another game, the side text moved): the panes re-share."""

        def __init__(self, width: int) -> None:
            super().__init__()
            self.width = width

    def __init__(self, *, id: str | None = None, side_below: bool = False) -> None:
        super().__init__(id=id)
        #: draw the side lines below the picture even beside a grid (narrow panes: the compare screen)
        self.side_below = side_below
        self._keys: list[tuple[str, str, int | None, str]] = []
        self._strips: list[Strip] = []
        self._width = 0
        #: rows re-rendered by the last show(): what the line API saves when little changes
        self.last_changed_rows = 0

    # -- content -----------------------------------------------------------------------------
    def show(self, frame: Frame | None) -> None:
        if frame is None:
            self._keys, self._strips, self._width = [], [], 0
            self.refresh(layout=True)
            return
        grid = len(frame.rows[0]) <= GRID_MAX_WIDTH if frame.rows else False
        fg = ["".join(format(c, "x") for c in row) for row in frame.fg]
        pic_width = (len(frame.rows[0]) * (_GRID_CELL if grid else 1)) if frame.rows else 0
        rows, fg_rows, side_lines = list(frame.rows), fg, list(frame.side)
        beside = pic_width + _SIDE_GAP + max(map(len, side_lines), default=0)
        if (not grid or self.side_below or beside > COMPACT_WIDTH) and side_lines:
            # a full terminal screen (80 columns) leaves no room beside it: the side text goes below
            rows += ["", *side_lines]
            fg_rows = fg + ["" for _ in range(len(side_lines) + 1)]
            fg_rows[len(fg) + 1 :] = ["f" * len(line) for line in side_lines]
            side_lines = []
        height = max(len(rows), len(side_lines))
        keys: list[tuple[str, str, int | None, str]] = []
        for y in range(height):
            row = rows[y] if y < len(rows) else ""
            colours = fg_rows[y] if y < len(fg_rows) else ""
            cursor_x = frame.cursor[1] if frame.cursor and frame.cursor[0] == y else None
            side = side_lines[y] if y < len(side_lines) else ""
            keys.append((row, colours, cursor_x, side))
        width = max(pic_width, *(len(r) for r in rows)) if rows else 0
        if side_lines:
            width = pic_width + _SIDE_GAP + max(map(len, side_lines))
        resized = width != self._width or len(keys) != len(self._keys)
        changed = [y for y, key in enumerate(keys) if resized or y >= len(self._keys) or self._keys[y] != key]
        strips = self._strips[: len(keys)] + [Strip.blank(0)] * max(0, len(keys) - len(self._strips))
        for y in changed:
            # side lines moved below a grid are text, not cells
            strips[y] = self._strip(*keys[y], grid=grid and y < len(frame.rows), pic_width=pic_width)
        if width != self._width:
            self.post_message(self.Sized(width))
        self._keys, self._strips, self._width = keys, strips, width
        self.last_changed_rows = len(changed)
        if resized:
            self.refresh(layout=True)
        else:
            for y in changed:
                self.refresh(Region(0, y, max(self.size.width, width), 1))

    def _strip(self, row: str, colours: str, cursor_x: int | None, side: str, *, grid: bool, pic_width: int) -> Strip:
        segments: list[Segment] = []
        if grid:
            for x, ch in enumerate(row):
                style = _GRID[int(colours[x], 16)] if x < len(colours) else _GRID[0]
                if x == cursor_x:
                    style = style + _CURSOR
                segments.append(Segment(f" {ch} ", style))
        else:
            # runs of one colour become one segment: 80 columns are usually a handful of runs
            start = 0
            for x in range(1, len(row) + 1):
                if (
                    x == len(row)
                    or colours[x : x + 1] != colours[start : start + 1]
                    or x == cursor_x
                    or x - 1 == cursor_x
                ):
                    code = int(colours[start], 16) if start < len(colours) else 7
                    style = _FG[code] + _CURSOR if start == cursor_x else _FG[code]
                    segments.append(Segment(row[start:x], style))
                    start = x
        if side:
            segments.append(Segment(" " * (pic_width - sum(len(s.text) for s in segments) + _SIDE_GAP)))
            segments.append(Segment(side, _SIDE))
        return Strip(segments)

    # -- line API ------------------------------------------------------------------------------
    def get_content_width(self, container: Size, viewport: Size) -> int:
        return self._width

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return len(self._strips)

    def render_line(self, y: int) -> Strip:
        if y < len(self._strips):
            return self._strips[y].crop_extend(0, self.size.width, self.rich_style)
        return Strip.blank(self.size.width, self.rich_style)
