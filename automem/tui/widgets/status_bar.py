"""One line of facts about the episode on screen."""

from __future__ import annotations

from dataclasses import dataclass, fields

from rich.text import Text
from textual.widgets import Static


@dataclass
class Status:
    game: str = ""
    task: str = ""
    seed: int | None = None
    step: int = 0
    reward: float = 0.0
    progression: float = 0.0
    achievements: int = 0
    structure: str = ""
    engine: str = ""
    tokens_per_s: float | None = None
    cache_share: float | None = None
    state: str = ""


class StatusBar(Static):
    DEFAULT_CSS = """
    StatusBar { height: auto; max-height: 2; background: $boost; padding: 0 1; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id)
        self.status = Status()

    def set(self, **changes: object) -> None:
        names = {f.name for f in fields(Status)}
        for key, value in changes.items():
            if key not in names:
                raise AttributeError(key)
            setattr(self.status, key, value)
        self.update(self.render_status())

    def render_status(self) -> Text:
        s = self.status
        parts: list[tuple[str, str]] = [
            (s.game + (f"/{s.task}" if s.task and s.task != s.game else ""), "bold"),
            (f"seed {s.seed}" if s.seed is not None else "", ""),
            (f"step {s.step}", ""),
            (f"reward {s.reward:+g}", ""),
            (f"progress {s.progression:.1f}%", "bold green" if s.progression else ""),
            (f"★ {s.achievements}", "green"),
            (s.structure, "cyan"),
            (s.engine if len(s.engine) <= 32 else s.engine[:31] + "…", "magenta"),
            (f"{s.tokens_per_s:.0f} tok/s" if s.tokens_per_s is not None else "", ""),
            (f"cache {s.cache_share:.0%}" if s.cache_share is not None else "", ""),
            (s.state, "bold yellow"),
        ]
        text = Text()
        for value, style in parts:
            if value:
                if text:
                    text.append(" │ ", style="dim")
                text.append(value, style=style)
        return text
