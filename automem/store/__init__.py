"""SQLite trajectory store."""

from automem.store.db import CallRecord, OpRecord, StepRecord, Store, StoreError, default_db_path

__all__ = ["CallRecord", "OpRecord", "StepRecord", "Store", "StoreError", "default_db_path"]
