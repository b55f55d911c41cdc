"""rc_cts is typed (it ships py.typed), and mypy finds nothing wrong with it."""
import subprocess
import sys

from .conftest import ROOT


def test_mypy_is_clean_on_rc_cts():
    out = subprocess.run([sys.executable, "-m", "mypy", "--config-file", str(ROOT / "mypy.ini")],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    assert (ROOT / "rc_cts" / "py.typed").exists()
