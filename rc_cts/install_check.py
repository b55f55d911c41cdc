"""Is the ``rc_cts`` that Python imports this project's, and this project's alone?

IBM's original package has the same distribution name, ``rc-cts`` (its last release, 45.1.3279,
is on the package index), and the same module, ``rc_cts``. pip replaces one with the other in
one environment, but both end up on one path when they are installed in two places (a user
site and a system site, ``pip install --target``, ``PYTHONPATH``, a checkout). Then whichever
comes first is imported, and IBM's ``rc_cts/__init__.py`` declares a pkg_resources namespace,
which merges every ``rc_cts`` directory on the path into one package: a mix of both. IBM's
installed metadata also makes pip take it for this project's, and gives resilient-circuits
IBM's components to load.

``problems()`` finds this from the files and the installed metadata, without importing rc_cts
(which IBM's ``__init__`` may not survive: it needs ``rc_webserver``); ``report()`` logs each
problem and the fix as ERROR lines, once per process. The ``rc-cts`` command and the service
call it as they start.

Only the standard library, and no relative import: the ``rc-cts`` launcher
(``rc_cts_launcher.py``) loads this file by its path when importing rc_cts fails.
"""
from __future__ import annotations

import importlib.machinery
import importlib.util
import logging
import os
import re
import sys
from importlib import metadata
from typing import Dict, List, Optional, Sequence

LOG = logging.getLogger("rc_cts")

PACKAGE = "rc_cts"
MIN_MAJOR = 46                       # this project's releases; IBM's stopped at 45.1.3279
IBM_ONLY = ("components/searcher_example.py", "lib/resilient_mock.py", "data/app.config.cts")
OURS_ONLY = ("service.py", "install_check.py")
FIX = ("to fix it: pip uninstall rc-cts (repeat until pip says it is not installed), then install "
       f"this project's rc-cts {MIN_MAJOR} or later again: pip install rc_cts-<version>-py3-none-any.whl, "
       "or pip install <the rc-cts repository>")


def kind_of(package_dir: str) -> str:
    """``"ours"``, ``"ibm"``, ``"mixed"`` (files of both) or ``"unknown"``, from the files in an
    ``rc_cts`` package directory."""
    ibm = [f for f in IBM_ONLY if os.path.exists(os.path.join(package_dir, f))]
    ibm += [f for f, mark in (("__init__.py", "declare_namespace"),
                              ("components/threat_webservice.py", "rc_webserver"))
            if mark in _read(os.path.join(package_dir, f))]
    ours = all(os.path.exists(os.path.join(package_dir, f)) for f in OURS_ONLY)
    if ibm and ours:
        return "mixed"
    return "ibm" if ibm else "ours" if ours else "unknown"


def _describe(kind: str, version: Optional[str]) -> str:
    ibm = f"IBM's rc-cts {version}" if version else "IBM's rc-cts"
    return {"ibm": f"{ibm}, not this project's",
            "mixed": f"a mix of {ibm} and this project's"}.get(kind, "not this project's")


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except OSError:
        return ""


def package_dirs(path: Sequence[str]) -> List[str]:
    """The ``rc_cts`` package Python imports first from ``path`` (also through an import hook,
    such as an editable install's), then every other ``rc_cts`` directory on ``path``."""
    found: List[str] = []
    module = sys.modules.get(PACKAGE) if path is sys.path else None
    if module is not None:
        first = list(getattr(module, "__path__", []))
    else:
        spec = importlib.util.find_spec(PACKAGE) if path is sys.path else \
            importlib.machinery.PathFinder.find_spec(PACKAGE, list(path))
        first = list(spec.submodule_search_locations or []) if spec else []
    for entry in [*first, *(os.path.join(p or os.curdir, PACKAGE) for p in path)]:
        real = os.path.realpath(entry)
        if real not in found and os.path.isfile(os.path.join(real, "__init__.py")):
            found.append(real)
    return found


def ibm_distributions(path: Sequence[str]) -> Dict[str, str]:
    """IBM's installed ``rc-cts`` distributions: ``{location: version}``. IBM's is one below
    version 46 without this project's ``rc-cts`` command (an old checkout of this project,
    1.0.0, has the command)."""
    found: Dict[str, str] = {}
    for name in ("rc-cts", "rc_cts"):  # Python 3.9 does not normalize the name
        for dist in metadata.distributions(name=name, path=list(path)):
            major = re.sub(r"\D.*", "", dist.version or "")
            ours = any(ep.group == "console_scripts" and ep.name == "rc-cts" for ep in dist.entry_points)
            if major and int(major) < MIN_MAJOR and not ours:
                found.setdefault(os.path.realpath(str(dist.locate_file(""))), dist.version)
    return found


def problems(path: Optional[Sequence[str]] = None) -> List[str]:
    """What is wrong with the rc_cts that ``path`` (default ``sys.path``) gives; empty when
    it is this project's alone."""
    path = sys.path if path is None else path
    dirs = package_dirs(path)
    ibm = ibm_distributions(path)
    found = []
    for n, package_dir in enumerate(dirs):
        kind = kind_of(package_dir)
        text = _describe(kind, ibm.pop(os.path.dirname(package_dir), None))
        if n == 0 and kind != "ours":
            found.append(f"the rc_cts package Python imports, {package_dir}, is {text}")
        elif n > 0 and kind in ("ibm", "mixed"):
            found.append(f"another rc_cts package is on the path, {package_dir}: {text}")
    for location, version in ibm.items():
        found.append(f"IBM's rc-cts {version} is installed in {location}: pip takes it for this "
                     "project's, and resilient-circuits loads its components")
    return found


_reported: Optional[List[str]] = None


def report(logger: logging.Logger = LOG) -> List[str]:
    """Log each problem, then the fix, as ERROR lines; only the first call logs."""
    global _reported
    if _reported is None:
        _reported = problems()
        for problem in _reported:
            logger.error("wrong rc_cts installed: %s", problem)
        if _reported:
            logger.error("wrong rc_cts installed: %s", FIX)
    return _reported
