"""The Redis keyspace and its atomic operations; the only package that knows key names."""

from __future__ import annotations

from .errors import transient
from .keys import Keys
from .store import Entry, NoteEntry, Store

__all__ = ["Entry", "Keys", "NoteEntry", "Store", "transient"]
