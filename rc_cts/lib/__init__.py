"""Compatibility: the original rc_cts kept its models in ``rc_cts.lib``."""
