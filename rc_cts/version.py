"""The release version, in one place: ``setup.py`` reads it from this file, ``rc_cts.__version__``
and ``rc-cts --version`` import it.

This project's distribution is named ``rc-cts``, as IBM's original package is (its last release,
45.1.3279, is on the package index); the two ship the same ``rc_cts`` module. Releases are
numbered 46 and above, so ``rc-cts>=46`` is never satisfied by IBM's, and ``installcheck``
tells the two apart.
"""
__version__ = "46.0.0"
