"""A searcher built on ResilientComponent: it connects to SOAR when created, as under the daemon."""
from circuits import handler
from resilient_circuits import ResilientComponent
from rc_cts import searcher_channel, Hit, StringProp


class LegacyResilientSearcher(ResilientComponent):
    channel = searcher_channel("legacy_resilient")

    def __init__(self, opts):
        super(LegacyResilientSearcher, self).__init__(opts)
        self.org = opts.get("org")
        self.options = opts.get("legacy_resilient", {})

    @handler("net.ip")
    def _lookup_net_ip(self, event, *args, **kwargs):
        return Hit(StringProp(name="Org", value=self.org),
                   StringProp(name="Note", value=self.options.get("note", "")),
                   StringProp(name="IP", value=event.artifact["value"]))
