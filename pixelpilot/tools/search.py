"""Search: one interface, two backends.

``LocalIndex`` is the embedded default: a SQLite FTS5 index over a folder of documents (text,
Markdown, HTML, reStructuredText), ranked by BM25 with highlighted snippets; ``pixelpilot index DIR``
builds it. ``SearxngSearch`` asks a SearxNG instance through its JSON API. Both return
``SearchResult``s (title, url or path, snippet); ``search_tool`` puts either into a registry.
"""

from __future__ import annotations

import asyncio
import html
import os
import re
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Protocol

import httpx
from pydantic import Field

from .registry import Tool, ToolError, function_tool

DEFAULT_EXTENSIONS = (".txt", ".md", ".markdown", ".rst", ".html", ".htm")
#: Documents larger than this are indexed up to this many bytes.
MAX_DOC_BYTES = 2_000_000


@dataclass
class SearchResult:
    title: str
    #: A URL for web results, a file path for local documents.
    url: str
    snippet: str
    score: float | None = None


class SearchBackend(Protocol):
    """Anything that answers a text query with ranked results."""

    async def search(self, query: str, limit: int = 5) -> list[SearchResult]: ...


class SearchError(ToolError):
    """A search could not be done (no index, unreachable server); the message says how to fix it."""


def default_db_path() -> Path:
    """Where ``pixelpilot index`` writes unless told: ``$XDG_CACHE_HOME/pixelpilot/search.sqlite``."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "pixelpilot" / "search.sqlite"


_SCHEMA = """
CREATE VIRTUAL TABLE IF NOT EXISTS docs USING fts5(path UNINDEXED, title, body, tokenize='porter unicode61');
CREATE TABLE IF NOT EXISTS files(path TEXT PRIMARY KEY, mtime_ns INTEGER, size INTEGER, doc INTEGER);
"""


@dataclass
class IndexReport:
    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0


class LocalIndex:
    """A SQLite FTS5 index of local documents. Re-indexing a folder only reads files that changed."""

    def __init__(self, db: str | Path | None = None) -> None:
        self.db = Path(db) if db is not None else default_db_path()

    def _connect(self, create: bool) -> sqlite3.Connection:
        if not create and not self.db.exists():
            raise SearchError(f"no search index at {self.db}; build one with `pixelpilot index DIR --db {self.db}`")
        self.db.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(self.db)
        if create:
            con.executescript(_SCHEMA)
        return con

    def add_folder(self, folder: str | Path, *, extensions: Iterable[str] = DEFAULT_EXTENSIONS) -> IndexReport:
        """Index every document under ``folder`` (recursively); drop ones that disappeared from it."""
        root = Path(folder).resolve()
        if not root.is_dir():
            raise SearchError(f"{folder} is not a folder")
        exts = {e.lower() for e in extensions}
        report = IndexReport()
        con = self._connect(create=True)
        try:
            with con:
                known = {
                    p: (m, s, d)
                    for p, m, s, d in con.execute(
                        "SELECT path, mtime_ns, size, doc FROM files WHERE path >= ? AND path < ?",
                        (str(root) + os.sep, str(root) + chr(ord(os.sep) + 1)),
                    )
                }
                seen = set()
                for path in sorted(root.rglob("*")):
                    if path.suffix.lower() not in exts or not path.is_file():
                        continue
                    key = str(path)
                    seen.add(key)
                    st = path.stat()
                    old = known.get(key)
                    if old and old[:2] == (st.st_mtime_ns, st.st_size):
                        report.unchanged += 1
                        continue
                    title, body = read_document(path)
                    if old:
                        con.execute("DELETE FROM docs WHERE rowid = ?", (old[2],))
                    doc = con.execute(
                        "INSERT INTO docs(path, title, body) VALUES (?, ?, ?)", (key, title, body)
                    ).lastrowid
                    con.execute(
                        "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?)", (key, st.st_mtime_ns, st.st_size, doc)
                    )
                    if old:
                        report.updated += 1
                    else:
                        report.added += 1
                for key in known.keys() - seen:
                    con.execute("DELETE FROM docs WHERE rowid = ?", (known[key][2],))
                    con.execute("DELETE FROM files WHERE path = ?", (key,))
                    report.removed += 1
        finally:
            con.close()
        return report

    def search_sync(self, query: str, limit: int = 5) -> list[SearchResult]:
        """BM25-ranked matches for the words of ``query`` (any of them; more matches rank higher)."""
        match = fts_query(query)
        if match is None:
            return []
        con = self._connect(create=False)
        try:
            rows = con.execute(
                # bm25: lower is better; the title counts five times as much as the body.
                "SELECT path, title, snippet(docs, 2, '[', ']', '…', 16), bm25(docs, 0.0, 5.0, 1.0) AS rank "
                "FROM docs WHERE docs MATCH ? ORDER BY rank LIMIT ?",
                (match, limit),
            ).fetchall()
        except sqlite3.OperationalError as e:
            raise SearchError(
                f"the index at {self.db} cannot be searched ({e}); rebuild it with `pixelpilot index`"
            ) from None
        finally:
            con.close()
        return [
            SearchResult(title=t or Path(p).name, url=p, snippet=" ".join(s.split()), score=-r) for p, t, s, r in rows
        ]

    async def search(self, query: str, limit: int = 5) -> list[SearchResult]:
        return await asyncio.to_thread(self.search_sync, query, limit)


def fts_query(text: str) -> str | None:
    """An FTS5 query matching any word of ``text``; words are quoted, so no FTS syntax leaks in."""
    words = re.findall(r"\w+", text)[:32]
    return " OR ".join(f'"{w}"' for w in words) if words else None


_TAG = re.compile(r"<[^>]+>")
_DROP_BLOCKS = re.compile(r"<(script|style)\b.*?</\1\s*>", re.S | re.I)


def read_document(path: Path) -> tuple[str, str]:
    """The title and plain text of a document (HTML tags and Markdown heading marks removed)."""
    with open(path, "rb") as f:
        text = f.read(MAX_DOC_BYTES).decode("utf-8", "replace")
    if path.suffix.lower() in (".html", ".htm"):
        m = re.search(r"<title[^>]*>(.*?)</title>", text, re.S | re.I)
        title = html.unescape(" ".join(m.group(1).split())) if m else ""
        text = html.unescape(_TAG.sub(" ", _DROP_BLOCKS.sub(" ", text)))
        return title or path.stem, " ".join(text.split())
    first = next((line for line in text.splitlines() if line.strip()), "")
    return (first.strip().lstrip("#").strip()[:200] or path.stem), text


class SearxngSearch:
    """Web search through a SearxNG instance's JSON API (``format=json`` must be enabled there)."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 10.0,
        language: str | None = None,
        categories: str | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.params = {k: v for k, v in {"language": language, "categories": categories}.items() if v}
        self._client = client

    async def search(self, query: str, limit: int = 5) -> list[SearchResult]:
        params = {"q": query, "format": "json", **self.params}
        url = f"{self.base_url}/search"
        try:
            if self._client is not None:
                r = await self._client.get(url, params=params, timeout=self.timeout)
            else:
                async with httpx.AsyncClient() as client:
                    r = await client.get(url, params=params, timeout=self.timeout)
        except httpx.HTTPError as e:
            raise SearchError(f"SearxNG at {self.base_url} is unreachable ({type(e).__name__}: {e})") from None
        if r.status_code == 403:
            raise SearchError(
                f"SearxNG at {self.base_url} refused JSON (403): add `json` to `search.formats` in its settings.yml"
            )
        if r.status_code != 200:
            raise SearchError(f"SearxNG at {self.base_url} answered HTTP {r.status_code}")
        try:
            data = r.json()
            items: list[dict[str, Any]] = data["results"]
        except (ValueError, KeyError, TypeError):
            raise SearchError(f"SearxNG at {self.base_url} did not answer with its JSON format") from None
        return [
            SearchResult(
                title=str(i.get("title") or i.get("url", "")),
                url=str(i.get("url", "")),
                snippet=" ".join(str(i.get("content") or "").split()),
                score=i.get("score") if isinstance(i.get("score"), (int, float)) else None,
            )
            for i in items[:limit]
            if isinstance(i, dict)
        ]


def format_results(results: list[SearchResult]) -> str:
    """Results as numbered text for a model."""
    if not results:
        return "no results"
    return "\n".join(f"{n}. {r.title}\n   {r.url}\n   {r.snippet}" for n, r in enumerate(results, 1))


def search_tool(backend: SearchBackend, name: str = "search") -> Tool:
    """A registry ``Tool`` that searches ``backend`` and returns numbered results as text."""

    async def search(
        query: Annotated[str, Field(min_length=1, max_length=300)], limit: Annotated[int, Field(ge=1, le=10)] = 5
    ) -> str:
        """Search for documents and return the best matches with a snippet each.

        Args:
            query: words to look for
            limit: how many results to return (1-10)
        """
        return format_results(await backend.search(query, limit))

    return function_tool(search, name=name, timeout=30.0)
