"""SQLite trajectory store."""

from automem.store.db import CallRecord, OpRecord, Store, StoreError, StepRecord, default_db_path

__all__ = ["CallRecord", "OpRecord", "StepRecord", "Store", "StoreError", "default_db_path"]
