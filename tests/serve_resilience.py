"""``python -m tests.serve_resilience run -c app.config``: the service with the searchers of
tests/resilience_searchers.py, in a process of its own (replicas sharing a Redis quota,
restarts keeping an SQLite cache)."""
from .resilience_searchers import every_searcher
from .serve import main

if __name__ == "__main__":
    main(every_searcher)
