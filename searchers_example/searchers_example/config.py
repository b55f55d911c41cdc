"""The ``[searchers_example]`` section of app.config, with every option and its default."""

SECTION = """\
[searchers_example]
# (The example searcher has no options; the feed and reputation searchers add theirs here.)
"""


def config_section_data() -> str:
    return SECTION
