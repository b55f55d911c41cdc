"""Sphinx configuration: ``sphinx-build -W -b html docs docs/_build`` builds the docs."""
project = "rc-cts"
author = "rc-cts developers"
copyright = "2026, rc-cts developers"
extensions = []
exclude_patterns = ["_build"]
html_theme = "alabaster"
highlight_language = "none"  # literal blocks are shell and diagrams; Python ones say so
