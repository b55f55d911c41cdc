"""The hits of the overview's ``SearcherExample``, for URL artifacts on the service ``/cts/example``.

The overview names its method ``_lookup_net_uri`` (the original's convention, which rc-cts
also serves); this one is a ``@handler``. Its listing lost the ``Hit(...)`` lines around the
props: these are the two hits it describes."""
from circuits import BaseComponent, handler

from rc_cts import Hit, IpProp, LatLngProp, NumberProp, StringProp, UriProp, searcher_channel


class ExampleSearcher(BaseComponent):
    """Answers every ``net.uri`` lookup with two example hits."""

    channel = searcher_channel("example")

    def __init__(self, opts=None):
        super().__init__()
        self.options = (opts or {}).get("searchers_example", {})

    @handler("net.uri")
    def _lookup_net_uri(self, event, *args, **kwargs):
        artifact_type = event.artifact["type"]
        artifact_value = event.artifact["value"]
        yield [
            Hit(NumberProp(name="id", value=123),
                StringProp(name="Type", value=artifact_type),
                UriProp(name="Link", value=artifact_value),
                IpProp(name="IP Address", value=""),
                LatLngProp(name="Location", lat=42.366, lng=-71.081)),
            Hit(NumberProp(name="id", value=456),
                StringProp(name="Type", value=artifact_type),
                UriProp(name="Link", value=artifact_value),
                IpProp(name="IP Address", value="")),
        ]
