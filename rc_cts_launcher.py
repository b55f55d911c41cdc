"""The ``rc-cts`` command's entry point. It lives outside the rc_cts package so that it can still
name the problem when the ``rc_cts`` Python imports is IBM's package of the same name, or a mix
of IBM's and this project's (``rc_cts/install_check.py``): importing that one fails, e.g. for
want of IBM's ``rc_webserver``."""
import importlib.util
import logging
import os
import sys


def main() -> int:
    try:
        from rc_cts.tools.cli import main as cli_main
    except Exception as exc:
        check = _install_check()
        if check is None or not check.problems():
            raise
        logging.basicConfig(format="%(asctime)s %(levelname)s [%(name)s] %(message)s")
        check.LOG.error("cannot start: importing rc_cts failed: %s: %s", type(exc).__name__, exc)
        check.report()
        return 1
    return cli_main()


def _install_check():
    """rc_cts/install_check.py beside this file, loaded by its path (it imports nothing of rc_cts)."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "rc_cts", "install_check.py")
    if not os.path.isfile(path):
        return None
    spec = importlib.util.spec_from_file_location("rc_cts_install_check", path)
    if spec is None or spec.loader is None:
        return None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


if __name__ == "__main__":
    sys.exit(main())
