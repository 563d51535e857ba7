"""SQLite trajectory store."""

from automem.records import CallRecord, OpRecord, StepRecord
from automem.store.db import Store, StoreError, default_db_path

__all__ = ["CallRecord", "OpRecord", "StepRecord", "Store", "StoreError", "default_db_path"]
