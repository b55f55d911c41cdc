"""Example searchers for rc-cts."""
