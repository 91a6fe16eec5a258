"""Sphinx configuration of dlopt's documentation (``bash scripts/docs.sh`` builds it)."""

import importlib.util

import dlopt

# torch is optional: without it, dlopt.torch's page is built against a stand-in torch module.
autodoc_mock_imports = [] if importlib.util.find_spec("torch") else ["torch"]

project = "dlopt"
author = "The dlopt developers"
copyright = "the dlopt developers"
version = release = dlopt.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "myst_parser",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "Doxyfile", "cpp-api.md"]  # cpp-api.md: Doxygen's main page
root_doc = "index"

# The API pages list members explicitly; numpydoc renders the sections, autodoc the members.
numpydoc_show_class_members = False
numpydoc_xref_param_type = False
autodoc_member_order = "bysource"
autodoc_typehints = "none"  # the types are in the Parameters sections
autodoc_default_options = {"members": True, "undoc-members": False, "show-inheritance": False}

myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3
suppress_warnings = ["myst.header"]

html_theme = "alabaster"
html_title = f"dlopt {release}"
