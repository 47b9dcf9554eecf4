"""News ingestion: RSS/Atom feeds (feedparser) → deduplicated, recent, relevant items.

A feed is a URL (downloaded with httpx) or a local file. Each problem with one
feed — a dead URL, an HTTP error, an HTML page where a feed was expected, XML
that does not parse, a feed with no items — becomes a one-line ``FeedProblem``
naming the feed and the fix; ``NewsConfig.on_feed_error`` decides whether it is
a warning (the other feeds still count) or a ``NewsError``. Nothing here turns a
failed feed into "no news, so NEUTRAL": the caller gets the problems and decides.

Selection (``select_items``), in order: drop duplicates by normalised title,
drop items older than ``max_age_hours`` (undated ones per ``keep_undated``),
keep items that mention the ticker or one of its aliases (``require_mention``),
then cap at ``max_items``, newest and most relevant first.

    >>> result = gather_feeds(["tests/data/feeds/valid_rss.xml"], NewsConfig(), ticker="ACME")
    >>> [item.title for item in result.items]
"""

from __future__ import annotations

import calendar
import re
import unicodedata
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Optional, Sequence
from urllib.parse import urlparse

from ..config import NewsConfig
from ..errors import NewsError

_USER_AGENT = "alphasignal-feed-reader/1.0"
_HTML_START = re.compile(rb"^\s*(<!doctype\s+html|<html|<head|<body)", re.IGNORECASE)
_TAGS = re.compile(r"<[^>]+>")


@dataclass(frozen=True)
class FeedItem:
    """One news item read from a feed."""

    title: str
    source: str  # the feed's title, else its host or file name
    feed: str  # where it was read from (URL or path)
    published: Optional[datetime] = None  # UTC
    summary: str = ""
    link: Optional[str] = None
    relevance: float = 1.0  # 1: names the ticker; 0.75: names an alias; 0.5: no ticker to check


@dataclass(frozen=True)
class FeedProblem:
    feed: str
    message: str

    def __str__(self) -> str:
        return f"news feed {self.feed}: {self.message}"


@dataclass
class FeedResult:
    items: list[FeedItem] = field(default_factory=list)
    problems: list[FeedProblem] = field(default_factory=list)
    read: int = 0  # items parsed from all feeds before selection
    dropped: dict[str, int] = field(default_factory=dict)

    @property
    def warnings(self) -> list[str]:
        notes = [str(p) for p in self.problems]
        if self.read and not self.items:
            why = ", ".join(f"{n} {reason}" for reason, n in self.dropped.items() if n)
            notes.append(f"news feeds: none of {self.read} item(s) kept ({why})")
        return notes


# ---------------------------------------------------------------- reading


def is_url(location: str) -> bool:
    return urlparse(location).scheme in ("http", "https")


def expand(location: str, ticker: Optional[str]) -> Optional[str]:
    """Fill ``{ticker}`` in a feed location; None when it needs a ticker and there is none."""
    if "{ticker}" not in location:
        return location
    if not ticker:
        return None
    from urllib.parse import quote

    return location.replace("{ticker}", quote(ticker) if is_url(location) else ticker)


def read_source(location: str, cfg: NewsConfig) -> bytes:
    """The raw bytes of a feed; raises ``NewsError`` with the fix on any failure."""
    if is_url(location):
        return _download(location, cfg)
    path = Path(location)
    if not path.is_file():
        raise NewsError(f"not found: {path} (give an http(s) URL or an existing RSS/Atom file)")
    if path.stat().st_size > cfg.max_feed_bytes:
        raise NewsError(f"larger than news.max_feed_bytes ({cfg.max_feed_bytes:,} bytes)")
    return path.read_bytes()


def _download(url: str, cfg: NewsConfig) -> bytes:
    import httpx

    try:
        with httpx.Client(timeout=cfg.timeout_s, follow_redirects=True, headers={"User-Agent": _USER_AGENT}) as client:
            with client.stream("GET", url) as response:
                if response.status_code >= 400:
                    raise NewsError(f"answered HTTP {response.status_code}; check the feed URL")
                chunks, size = [], 0
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > cfg.max_feed_bytes:
                        raise NewsError(f"larger than news.max_feed_bytes ({cfg.max_feed_bytes:,} bytes)")
                    chunks.append(chunk)
                return b"".join(chunks)
    except httpx.TimeoutException:
        raise NewsError(f"no answer within {cfg.timeout_s:g} s (news.timeout_s); is the URL right and online?") from None
    except httpx.HTTPError as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise NewsError(f"cannot reach it ({reason}); check the URL and your connection") from None


def parse_feed(data: bytes, location: str) -> tuple[list[FeedItem], list[str]]:
    """Items and non-fatal notes; raises ``NewsError`` for HTML, unparseable or empty feeds."""
    import feedparser

    if not data.strip():
        raise NewsError("is empty (0 bytes of feed)")
    if _HTML_START.match(data[:512]):
        raise NewsError("is an HTML page, not an RSS/Atom feed; give the feed's own URL (often ends in /rss or .xml)")
    parsed = feedparser.parse(data)
    version = parsed.get("version", "")
    problem = parsed.get("bozo_exception") if parsed.get("bozo") else None
    if not version and not parsed.entries:
        why = f" ({_one_line(problem)})" if problem else ""
        raise NewsError(f"is not an RSS or Atom feed{why}")
    notes = []
    if problem is not None:
        if not parsed.entries:
            raise NewsError(f"is malformed XML ({_one_line(problem)}) and no item could be read")
        notes.append(f"is malformed XML ({_one_line(problem)}); used the {len(parsed.entries)} item(s) that could be read")
    source = _clean(parsed.feed.get("title", "")) or _default_source(location)
    items = [item for item in (_item(entry, source, location) for entry in parsed.entries) if item is not None]
    if not items:
        raise NewsError("has no items" if not parsed.entries else "has no items with a title")
    return items, notes


def _item(entry, source: str, location: str) -> Optional[FeedItem]:
    title = _clean(entry.get("title", ""))
    if not title:
        return None
    stamp = entry.get("published_parsed") or entry.get("updated_parsed")
    published = datetime.fromtimestamp(calendar.timegm(stamp), tz=timezone.utc) if stamp else None
    item_source = _clean((entry.get("source") or {}).get("title", "")) or source
    return FeedItem(
        title=title,
        source=item_source,
        feed=location,
        published=published,
        summary=_clean(entry.get("summary", "")),
        link=entry.get("link"),
    )


def _clean(text: str) -> str:
    """Tags stripped, entities already decoded by feedparser, whitespace collapsed."""
    return " ".join(_TAGS.sub(" ", str(text or "")).split())


def _default_source(location: str) -> str:
    return urlparse(location).netloc if is_url(location) else Path(location).name


def _one_line(exc: object) -> str:
    return " ".join(str(exc).split())[:160]


# ---------------------------------------------------------------- selection


def normalise_title(title: str) -> str:
    """Case, accents, punctuation and spacing removed: the key duplicates share."""
    text = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode().lower()
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text).split())


def mention_patterns(ticker: str, aliases: Sequence[str]) -> tuple[re.Pattern, Optional[re.Pattern]]:
    """The ticker as a word (case-sensitive, optional ``$``), aliases as words (any case)."""
    symbol = re.compile(r"(?<![A-Za-z0-9])\$?" + re.escape(ticker.upper()) + r"(?![A-Za-z0-9])")
    names = [a.strip() for a in aliases if a.strip()]
    alias = re.compile(r"\b(" + "|".join(re.escape(a) for a in names) + r")\b", re.IGNORECASE) if names else None
    return symbol, alias


def relevance(item: FeedItem, patterns: Optional[tuple[re.Pattern, Optional[re.Pattern]]]) -> float:
    """1.0 ticker named in the title, 0.75 alias in the title, 0.6 / 0.45 in the summary only, 0 not at all."""
    if patterns is None:
        return 0.5
    symbol, alias = patterns
    for text, scale in ((item.title, 1.0), (item.summary, 0.6)):
        if symbol.search(text):
            return 1.0 * scale
        if alias is not None and alias.search(text):
            return 0.75 * scale
    return 0.0


def select_items(
    items: Sequence[FeedItem], cfg: NewsConfig, ticker: Optional[str], now: Optional[datetime] = None
) -> tuple[list[FeedItem], dict[str, int]]:
    """Deduplicate, drop old and off-topic items, cap; returns (kept, dropped counts by reason)."""
    now = now or datetime.now(timezone.utc)
    dropped = {"duplicate": 0, "too old": 0, "undated": 0, "not about the ticker": 0, "over the cap": 0}
    unique: dict[str, FeedItem] = {}
    for item in items:
        key = normalise_title(item.title)
        if key in unique:
            dropped["duplicate"] += 1
            if unique[key].published is None and item.published is not None:
                unique[key] = item
            continue
        unique[key] = item
    oldest = now - timedelta(hours=cfg.max_age_hours)
    patterns = mention_patterns(ticker, cfg.aliases.get(ticker.upper(), [])) if ticker else None
    kept = []
    for item in unique.values():
        if item.published is None and not cfg.keep_undated:
            dropped["undated"] += 1
            continue
        if item.published is not None and item.published < oldest:
            dropped["too old"] += 1
            continue
        score = relevance(item, patterns)
        if cfg.require_mention and score == 0.0:
            dropped["not about the ticker"] += 1
            continue
        kept.append(replace(item, relevance=max(score, 0.25)))
    kept.sort(key=lambda i: (-i.relevance, -(i.published or oldest).timestamp()))
    dropped["over the cap"] = max(0, len(kept) - cfg.max_items)
    return kept[: cfg.max_items], dropped


def gather_feeds(
    locations: Sequence[str], cfg: NewsConfig, ticker: Optional[str] = None, now: Optional[datetime] = None
) -> FeedResult:
    """Read every feed, collect problems per feed, select items; raises per ``cfg.on_feed_error``."""
    result = FeedResult()
    parsed: list[FeedItem] = []
    for raw in locations:
        location = expand(raw, ticker)
        if location is None:
            result.problems.append(FeedProblem(raw, "needs a ticker for '{ticker}'; pass --ticker"))
            continue
        try:
            items, notes = parse_feed(read_source(location, cfg), location)
        except NewsError as exc:
            result.problems.append(FeedProblem(location, exc.one_line()))
            continue
        result.problems += [FeedProblem(location, note) for note in notes]
        parsed += items
    result.read = len(parsed)
    result.items, result.dropped = select_items(parsed, cfg, ticker, now)
    if cfg.on_feed_error == "error" and (result.problems or not result.items):
        reasons = result.warnings or ["no feed given"]
        raise NewsError(
            "; ".join(reasons) + " (set news.on_feed_error = \"warn\" to go on without the failing feeds)"
        )
    return result
