"""Sphinx configuration of Kanal's documentation (Markdown pages, read by MyST).

Built by tests/run.sh with warnings as errors; nothing here fetches from the network
(no intersphinx, no external link check).
"""

project = "Kanal"
author = "The Kanal developers"
copyright = "The Kanal developers"
extensions = ["myst_parser"]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]
myst_heading_anchors = 4
myst_enable_extensions = ["colon_fence"]
html_theme = "alabaster"
html_static_path: list[str] = []
# Examples that abbreviate with `...` (a JSON answer cut short) are shown as written.
suppress_warnings = ["misc.highlighting_failure"]
