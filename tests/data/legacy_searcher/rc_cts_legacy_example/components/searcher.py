# -*- coding: utf-8 -*-
"""A searcher as community packages for the original rc-cts wrote them."""
import logging
from circuits import BaseComponent, handler
from rc_cts import searcher_channel, Hit, NumberProp, StringProp, UriProp, IpProp, LatLngProp
from rc_cts.components.threat_webservice import ThreatServiceLookupEvent as OrigEvent
from rc_cts import ThreatServiceLookupEvent
from rc_cts.lib.threat_models import Hit as OrigHit

LOG = logging.getLogger(__name__)

CONFIG_DATA_SECTION = 'legacy_example'


class LegacyExampleSearcher(BaseComponent):
    """Example of a custom threat searcher component"""

    # Register this as an async searcher for the URL /<root>/legacy_example
    channel = searcher_channel("legacy_example")

    def __init__(self, opts):
        super(LegacyExampleSearcher, self).__init__(opts)
        self.options = opts.get(CONFIG_DATA_SECTION, {})
        self.prefix = self.options.get("prefix", "seen")
        assert OrigEvent is ThreatServiceLookupEvent
        assert OrigHit is Hit

    @handler()
    def _lookup(self, event, *args, **kwargs):
        if not isinstance(event, ThreatServiceLookupEvent):
            # the original had to filter circuits' own events itself
            raise AssertionError("a non-lookup event reached the searcher: %r" % event)
        artifact_type = event.artifact['type']
        artifact_value = event.artifact['value']
        LOG.info("legacy lookup %s %s", artifact_type, artifact_value)
        if artifact_type not in ("net.uri", "net.ip"):
            return None
        hits = []
        hits.append(Hit(
            NumberProp(name="id", value="123"),
            StringProp(name="Type", value=artifact_type),
            StringProp(name="Prefix", value=self.prefix),
            UriProp(name="Link", value=artifact_value),
            IpProp(name="IP Address", value=""),
            LatLngProp(name="Location", lat=42.366, lng=-71.081)
        ))
        yield hits
