"""Compatibility: the original rc_cts kept its components in ``rc_cts.components``."""
