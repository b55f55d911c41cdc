"""rc_cts touches no private attribute of circuits.  The one contract its own poller
(rc_cts/http/netloop.py) relies on is circuits' public one for pollers: a
``generate_events`` handler waits up to ``event.time_left``, and an event fired from
another thread during that wait calls the waiting component's ``resume()``.  These tests
fail if a circuits release changes either."""
import subprocess
import sys
import threading
import time
from pathlib import Path

from circuits import BaseComponent, Event, Manager, handler

from rc_cts.http.netloop import NetLoop

ROOT = Path(__file__).resolve().parents[1]
CHECKER = ROOT.parent / "shared" / "checks" / "circuits_private.py"


class ping(Event):
    pass


class Pinged(BaseComponent):
    channel = "pinged"

    def __init__(self):
        super().__init__()
        self.seen = threading.Event()

    @handler("ping")
    def _on_ping(self):
        self.seen.set()


def test_an_event_fired_from_another_thread_ends_the_netloop_wait():
    manager = Manager()
    NetLoop().register(manager)
    pinged = Pinged().register(manager)
    manager.start()
    try:
        time.sleep(0.3)  # the loop now waits in select() with no timeout: nothing is due
        t0 = time.monotonic()
        manager.fire(ping(), "pinged")
        assert pinged.seen.wait(2)
        assert time.monotonic() - t0 < 0.5
    finally:
        manager.stop()


def test_no_module_of_rc_cts_touches_circuits_private_attributes():
    out = subprocess.run([sys.executable, str(CHECKER), str(ROOT / "rc_cts")], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout
    assert out.stdout.splitlines() == ["0 files touch circuits' private attributes"], out.stdout
