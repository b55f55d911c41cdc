"""Pins the circuits internals that rc_cts/http/listener.py (the one glue module) relies on, and
checks that no other module of rc_cts reads circuits' private attributes."""
import inspect
import subprocess
import sys
from pathlib import Path

from circuits import Manager
from circuits.net.sockets import Server, TCPServer

from rc_cts.http.listener import Listener

ROOT = Path(__file__).resolve().parents[1]
CHECKER = ROOT.parent / "shared" / "checks" / "circuits_private.py"


def params(fn):
    return list(inspect.signature(fn).parameters)


def test_the_private_methods_the_listener_overrides_keep_their_shape():
    assert params(Server._read) == ["self", "sock"]
    assert params(Server._write) == ["self", "sock", "data"]
    assert params(Server._do_handshake) == ["self", "sock", "fire_connect_event"]
    assert params(Server._on_accept_done) == ["self", "sock", "fire_connect_event"]
    assert params(Server._close) == ["self", "sock"]
    assert inspect.isgeneratorfunction(Server._do_handshake)  # circuits drives it with `for _ in`
    # circuits calls them as it did when the listener was written
    accept = inspect.getsource(Server._accept)
    assert "self._do_handshake(newsock)" in accept and "self._on_accept_done(newsock)" in accept
    assert "self._read(sock)" in inspect.getsource(Server._on_read)
    assert "self._write(sock, data)" in inspect.getsource(Server._on_write)
    assert issubclass(Listener, TCPServer)


def test_the_private_state_the_listener_reads_is_there():
    listener = Listener(("127.0.0.1", 0))
    try:
        assert listener._clients == [] and listener._bufsize > 0
        assert listener._sock.getsockname()[0] == "127.0.0.1"
        assert hasattr(listener, "_poller") and listener._poller is None
        assert listener._buffers["x"] is not None  # a defaultdict of deques
        listener.register(Manager())
    finally:
        listener._sock.close()


def test_no_other_module_touches_circuits_private_attributes():
    out = subprocess.run([sys.executable, str(CHECKER), str(ROOT / "rc_cts")], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout
    assert out.stdout.splitlines()[:-1] == [f"{ROOT / 'rc_cts' / 'http' / 'listener.py'}: _buffers _bufsize _clients _on_accept_done _sock"]
