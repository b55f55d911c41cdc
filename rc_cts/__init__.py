"""rc-cts: write Custom Threat Services for IBM Security SOAR as small circuits searchers.

The public API is what searchers import; it is the original ``rc_cts`` one::

    from rc_cts import searcher_channel, Hit, StringProp, NumberProp, UriProp, IpProp, LatLngProp
"""
from .events import ThreatLookupIncompleteException, ThreatServiceLookupEvent
from .hits import Hit, IpProp, LatLngProp, NumberProp, StringProp, UriProp, searcher_channel
from .version import __version__

__all__ = [
    "searcher_channel", "Hit", "StringProp", "NumberProp", "UriProp", "IpProp", "LatLngProp",
    "ThreatServiceLookupEvent", "ThreatLookupIncompleteException", "__version__",
]
