"""Compatibility: the original module path of the hit models (same classes as ``rc_cts``)."""
from ..artifacts import ARTIFACT_TYPES
from ..hits import Hit, IpProp, LatLngProp, NumberProp, StringProp, UriProp, searcher_channel

__all__ = ["ARTIFACT_TYPES", "Hit", "IpProp", "LatLngProp", "NumberProp", "StringProp",
           "UriProp", "searcher_channel"]
