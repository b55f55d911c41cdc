"""Lookups, as the data flows: the searcher registry (which handler answers what), each
searcher's bulkhead (its threads, queue and timeout), the calls themselves, the state of
one lookup, and its results' persistence in the store."""
