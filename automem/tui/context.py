"""What the screens share: the store and the choices for the next episode."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from automem.memory.structure import Structure
from automem.store.db import Store


@dataclass
class TuiContext:
    store: Store
    game: str = "crafter"
    task: str | None = None
    seed: int = 0
    #: the structure the next episode plays with (the structure editor's "use" sets it)
    structure: Structure | None = None
    engine_spec: str = "llamacpp"
    memory_engine_spec: str | None = None
    max_steps: int = 10_000
    temperature: float = 0.7
    #: where episodes' memory folders live (default: beside the database)
    memory_root: Path | None = None
    #: seconds between steps while running (speed up / down changes it)
    step_delay: float = 0.0
    #: open the play screen paused (tests and snapshot runs step it by keys)
    start_paused: bool = False
    engine_options: dict[str, object] = field(default_factory=dict)
    extra: dict[str, object] = field(default_factory=dict)

    def structure_for_game(self) -> Structure:
        from automem.memory.structure import default_structure_for, resolve_structure

        if self.structure is not None and self.structure.game in (None, self.game):
            return self.structure
        return resolve_structure(default_structure_for(self.game))
