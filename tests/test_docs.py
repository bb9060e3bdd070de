"""The docs and the code agree: every pixelpilot name the README and docs/ show can be imported, and
every page the README links to exists."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

#: ``from pixelpilot.x import a, b`` (also wrapped in parentheses over several lines).
FROM_IMPORT = re.compile(r"from (pixelpilot(?:\.\w+)*) import \(?([\w\s,]+?)\)?(?:\n|$|  #)", re.M)
#: ``pixelpilot.x.y.Name`` written inline in backquotes, where Name is a class or function.
DOTTED = re.compile(r"`(pixelpilot(?:\.\w+)+)(?![\w/])")


def _shown() -> list[tuple[str, str, str]]:
    """(page, module, name) for every import and dotted name the pages show."""
    found = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for module, names in FROM_IMPORT.findall(text):
            for name in (n.strip() for n in names.replace("\n", " ").split(",")):
                if name:
                    found.append((page.name, module, name))
        for dotted in DOTTED.findall(text):
            found.append((page.name, dotted, ""))
    return found


SHOWN = _shown()


def test_the_pages_show_names():
    assert len(SHOWN) > 20  # the pattern still matches what the pages write


@pytest.mark.parametrize(("page", "module", "name"), SHOWN, ids=[f"{p}:{m}:{n}" for p, m, n in SHOWN])
def test_every_name_the_docs_show_imports(page, module, name):
    if name:
        assert hasattr(importlib.import_module(module), name), f"{page} shows `from {module} import {name}`"
        return
    # A dotted path: the longest importable module prefix, then attributes.
    parts = module.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            assert hasattr(obj, attr), f"{page} shows `{module}`, but {'.'.join(parts[:cut])} has no {attr}"
            obj = getattr(obj, attr)
        return
    pytest.fail(f"{page} shows `{module}`, which does not import")


def test_every_page_the_readme_links_exists():
    links = re.findall(r"\]\(((?:docs/)[^)#]+)", (ROOT / "README.md").read_text(encoding="utf-8"))
    assert links, "the README links to its docs pages"
    for link in links:
        assert (ROOT / link).is_file(), f"README links to {link}, which does not exist"


def test_the_changelog_describes_this_version():
    import pixelpilot

    newest = re.search(r"(?m)^## (\d+\.\d+\.\d+)", (ROOT / "CHANGELOG.md").read_text(encoding="utf-8"))
    assert newest is not None and newest.group(1) == pixelpilot.__version__
