"""Compatibility: the original module path of the threat-service component and its events."""
from ..events import ThreatLookupIncompleteException, ThreatServiceLookupEvent
from ..service import CustomThreatService

__all__ = ["CustomThreatService", "ThreatLookupIncompleteException", "ThreatServiceLookupEvent"]
