"""What every table module of the store shares: the connection attribute, the timestamp, the errors."""

from __future__ import annotations

from typing import TYPE_CHECKING

from automem.errors import AutomemError
from automem.records import now

if TYPE_CHECKING:
    from sqlite_utils import Database

__all__ = ["StoreError", "StructureNotFound", "Tables", "now"]


class StoreError(AutomemError):
    """The database cannot be opened or written."""


class StructureNotFound(StoreError, KeyError):
    """No stored structure matches an id prefix, or more than one does."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class Tables:
    """Base of the store's mixins: each uses the one ``db`` that :class:`automem.store.Store` opens."""

    db: Database
