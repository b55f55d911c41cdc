"""Where lookup results live between the POST that starts a lookup and the GETs that fetch it."""
from .base import LookupRecord, Store, StoreError
from .memory import MemoryStore

__all__ = ["LookupRecord", "Store", "StoreError", "MemoryStore", "open_store"]


def open_store(settings, maintenance: bool = False) -> Store:
    """The store ``settings.store`` names: memory, sqlite or redis.  ``maintenance``: for a
    tool (``rc-cts cache clear``), which must not trim the running service's store to its own
    idea of the bounds."""
    answers = {"answers_max_entries": settings.answer_cache_size,
               "answers_max_bytes": settings.answer_cache_max_bytes}
    if settings.store == "sqlite":
        from .sqlite import SQLiteStore
        return SQLiteStore(settings.sqlite_path, maxsize=settings.cache_size, ttl=settings.cache_ttl,
                           trim=not maintenance, **answers)
    if settings.store == "redis":
        from .redis import RedisStore
        return RedisStore(settings.redis_url, ttl=settings.cache_ttl, prefix=settings.redis_prefix, **answers)
    return MemoryStore(maxsize=settings.cache_size, ttl=settings.cache_ttl,
                       max_bytes=settings.cache_max_bytes, **answers)
