"""Search: a real SQLite FTS5 index over a folder, and the SearxNG backend against a local HTTP server."""

from __future__ import annotations

import os
from urllib.parse import parse_qs, urlparse

import pytest
from typer.testing import CliRunner

from pixelpilot.cli import app
from pixelpilot.testing.http import LoopbackServer, QuietHandler, respond
from pixelpilot.tools.registry import ToolRegistry
from pixelpilot.tools.search import LocalIndex, SearchError, SearxngSearch, search_tool

CORPUS = {
    "cheese.md": "# Cheese making\n\nRennet curdles milk. Aged cheddar needs months; brie ripens fast.\n",
    "volcano.txt": "Volcanoes\nA volcano erupts when magma rises. Lava flows cool into basalt rock.\n",
    "guide/lava.html": "<html><head><title>Lava lamps</title><style>p{color:red}</style></head>"
    "<body><p>A lava lamp heats wax; the wax &amp; water never mix.</p>"
    "<script>var lava = 1;</script></body></html>",
    "guide/basalt.rst": "Basalt\n======\n\nBasalt is a volcanic rock formed from lava. Lava lava lava.\n",
    "ignored.bin": "lava " * 100,
}


@pytest.fixture
def corpus(tmp_path):
    root = tmp_path / "docs"
    for name, text in CORPUS.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


async def test_index_and_search_ranked_with_snippets(corpus, tmp_path):
    index = LocalIndex(tmp_path / "index.sqlite")
    report = index.add_folder(corpus)
    assert (report.added, report.updated, report.removed) == (4, 0, 0)  # .bin is not a document

    results = await index.search("lava", limit=5)
    titles = [r.title for r in results]
    # BM25: the page whose title and body are about lava first, then the one that says it four times.
    assert titles[:2] == ["Lava lamps", "Basalt"] and "Volcanoes" in titles
    assert all(r.url.startswith(str(corpus)) for r in results)
    assert [r.score for r in results] == sorted(r.score for r in results)[::-1]
    lamp = results[0]
    assert "[lava] lamp heats wax" in lamp.snippet and "&amp;" not in lamp.snippet and "color" not in lamp.snippet
    assert "var" not in lamp.snippet  # scripts and styles are not text

    cheese = await index.search("How do I make cheddar cheese?")
    assert cheese[0].title == "Cheese making" and "[cheddar]" in cheese[0].snippet
    assert await index.search("unicorn") == []
    assert await index.search('"); DROP TABLE docs; --') == []  # words only: no FTS syntax, no SQL


async def test_reindexing_reads_only_changes(corpus, tmp_path):
    index = LocalIndex(tmp_path / "index.sqlite")
    index.add_folder(corpus)
    (corpus / "cheese.md").write_text("# Cheese\n\nHalloumi squeaks.\n")
    os.utime(corpus / "cheese.md", ns=(1, 1))
    (corpus / "volcano.txt").unlink()
    (corpus / "new.md").write_text("# Geysers\n\nA geyser spouts hot water.\n")
    report = index.add_folder(corpus)
    assert (report.added, report.updated, report.removed, report.unchanged) == (1, 1, 1, 2)
    assert sorted(r.title for r in await index.search("halloumi geyser volcano cheddar")) == ["Cheese", "Geysers"]


def test_missing_index_says_how_to_build_one(tmp_path):
    with pytest.raises(SearchError, match="pixelpilot index DIR"):
        LocalIndex(tmp_path / "none.sqlite").search_sync("x")


def test_cli_index_and_search(corpus, tmp_path):
    db = tmp_path / "cli.sqlite"
    runner = CliRunner()
    out = runner.invoke(app, ["index", str(corpus), "--db", str(db)])
    assert out.exit_code == 0, out.output
    assert "4 added" in out.output
    found = runner.invoke(app, ["search", "magma", "--db", str(db)])
    assert found.exit_code == 0 and "Volcanoes" in found.output and "[magma]" in found.output
    bad = runner.invoke(app, ["index", str(tmp_path / "nope"), "--db", str(db)])
    assert bad.exit_code == 2 and "is not a folder" in bad.output


@pytest.fixture
def searxng():
    """A SearxNG stand-in: a real HTTP server answering /search?format=json as SearxNG does."""
    seen: list[dict] = []

    class Handler(QuietHandler):
        def do_GET(self):
            url = urlparse(self.path)
            q = {k: v[0] for k, v in parse_qs(url.query).items()}
            seen.append(q)
            if url.path != "/search":
                return respond(self, b"", 404)
            if q.get("format") != "json":
                return respond(self, b"", 403)
            body = {
                "query": q["q"],
                "number_of_results": 3,
                "results": [
                    {
                        "url": "https://example.org/a",
                        "title": "Alpha result",
                        "content": "first  hit\n text",
                        "engine": "wikipedia",
                        "score": 3.0,
                    },
                    {"url": "https://example.org/b", "title": "Beta", "content": "second", "score": 1.5},
                    {"url": "https://example.org/c", "title": "", "content": None},
                ],
            }
            respond(self, body)

    with LoopbackServer(Handler) as server:
        yield server.url.rstrip("/"), seen


async def test_searxng_backend(searxng):
    base, seen = searxng
    results = await SearxngSearch(base + "/", language="en").search("pixel pilots", limit=2)
    assert [(r.title, r.url, r.snippet, r.score) for r in results] == [
        ("Alpha result", "https://example.org/a", "first hit text", 3.0),
        ("Beta", "https://example.org/b", "second", 1.5),
    ]
    assert seen[-1] == {"q": "pixel pilots", "format": "json", "language": "en"}
    third = (await SearxngSearch(base).search("x", limit=3))[2]
    assert (third.title, third.snippet) == ("https://example.org/c", "")


async def test_searxng_errors_are_clear(searxng):
    base, _ = searxng
    with pytest.raises(SearchError, match="HTTP 404"):
        await SearxngSearch(base + "/nothing-here").search("x")
    with pytest.raises(SearchError, match="unreachable"):
        await SearxngSearch("http://127.0.0.1:9", timeout=2).search("x")


async def test_search_tool_in_a_registry(corpus, tmp_path, searxng):
    index = LocalIndex(tmp_path / "index.sqlite")
    index.add_folder(corpus)
    registry = ToolRegistry([search_tool(index), search_tool(SearxngSearch(searxng[0]), name="web_search")])
    local = await registry.call("search", {"query": "basalt rock", "limit": 2})
    assert local.ok and local.info["result"].startswith("1. Basalt\n   " + str(corpus / "guide" / "basalt.rst"))
    web = await registry.call("web_search", {"query": "anything", "limit": 1})
    assert web.info["result"] == "1. Alpha result\n   https://example.org/a\n   first hit text"
    too_many = await registry.call("search", {"query": "lava", "limit": 50})
    assert not too_many.ok and "limit" in too_many.error
    missing = ToolRegistry([search_tool(LocalIndex(tmp_path / "none.sqlite"))])
    err = await missing.call("search", {"query": "x"})
    assert not err.ok and "pixelpilot index DIR" in err.error
