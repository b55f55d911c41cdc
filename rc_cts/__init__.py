"""rc-cts: write Custom Threat Services for IBM Security SOAR as small circuits searchers.

The public API is what searchers import; it is the original ``rc_cts`` one::

    from rc_cts import searcher_channel, Hit, StringProp, NumberProp, UriProp, IpProp, LatLngProp

and, beyond the original, the provider's quota signal: ``RateLimited`` (raise it) and
``check_rate_limit(response)`` (hand it each response); and ``LookupFailed``, a failure
logged as its message alone.
"""
from .events import LookupFailed, ThreatLookupIncompleteException, ThreatServiceLookupEvent
from .hits import Hit, IpProp, LatLngProp, NumberProp, StringProp, UriProp, searcher_channel
from .lookups.provider_quota import RateLimited, check_rate_limit
from .version import __version__

__all__ = [
    "searcher_channel", "Hit", "StringProp", "NumberProp", "UriProp", "IpProp", "LatLngProp",
    "ThreatServiceLookupEvent", "ThreatLookupIncompleteException", "LookupFailed", "RateLimited",
    "check_rate_limit",
    "__version__",
]
