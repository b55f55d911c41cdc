"""Where lookup results live between the POST that starts a lookup and the GETs that fetch it."""
from .base import LookupRecord, Store
from .memory import MemoryStore

__all__ = ["LookupRecord", "Store", "MemoryStore", "open_store"]


def open_store(settings) -> Store:
    """The store the settings ask for."""
    return MemoryStore(maxsize=settings.cache_size, ttl=settings.cache_ttl)
