"""Tools around the service: the ``rc-cts`` command, an HTTP client that talks as the platform
does, and the searcher package scaffold.  (The pytest plugin is ``rc_cts.testing``.)"""
