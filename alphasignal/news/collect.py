"""Everything the news branch will read, gathered in one place.

``collect_news`` merges the items a caller typed (``--news``, ``--news-file``)
with the items selected from feeds (``--news-feed``, ``news.feeds``), weighs
each by recency and relevance, screens them for prompt injection, and returns
the ``NewsInput`` for the model plus what the decision's meta must say: the
items used, the injection flags, and the warnings (failed feeds, dropped items).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Optional, Sequence

from ..config import Settings
from ..errors import NewsError
from ..inputs import clean_news
from ..schemas import NewsInput, NewsItemMeta
from .feeds import FeedItem, gather_feeds
from .injection import screen


@dataclass(frozen=True)
class CollectedNews:
    news: Optional[NewsInput]  # None: no news at all (the chart decides alone)
    flags: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


def feed_locations(extra: Sequence[str], settings: Settings, ticker: Optional[str]) -> list[str]:
    """Feeds for this run: the caller's, then the configured ones, then the ticker's template."""
    cfg = settings.news
    locations = [*extra, *cfg.feeds]
    if cfg.ticker_feed and ticker:
        locations.append(cfg.ticker_feed_template)
    return list(dict.fromkeys(locations))  # each feed once, in order


def recency_weight(published: Optional[datetime], now: datetime, half_life_hours: float) -> float:
    """1 for a fresh (or undated) item, halving every ``half_life_hours``."""
    if published is None:
        return 1.0
    age = max(0.0, (now - published).total_seconds() / 3600.0)
    return 0.5 ** (age / half_life_hours)


def collect_news(
    given: Optional[Sequence[tuple[str, str]]],
    feeds: Sequence[str],
    settings: Settings,
    ticker: Optional[str] = None,
    now: Optional[datetime] = None,
) -> CollectedNews:
    """``given``: (text, source) pairs typed by the caller (None: none given); ``feeds``: URLs or files."""
    now = now or datetime.now(timezone.utc)
    limits = settings.pipeline
    cleaned = clean_news(
        [text for text, _ in given] if given is not None else None,
        max_items=limits.max_news_items, max_chars=limits.max_news_chars, ticker=ticker,
    )
    details = _given_details(given, cleaned)
    warnings: list[str] = []
    if feeds:
        result = gather_feeds(feeds, settings.news, ticker=ticker, now=now)
        warnings += result.warnings
        details += [_feed_detail(item, limits.max_news_chars) for item in result.items]
    if not details:
        if feeds:
            warnings.append("no news items to score: the chart decides alone")
        return CollectedNews(news=None, warnings=tuple(warnings))
    if len(details) > limits.max_news_items:
        raise NewsError(f"too many news items: {len(details)} (limit {limits.max_news_items})")
    details, flags = _screen(details, settings.news.injection)
    if not details:
        warnings.append("every news item was dropped as a prompt injection: the chart decides alone")
        return CollectedNews(news=None, flags=tuple(flags), warnings=tuple(warnings))
    details = _weigh(details, now, settings.news.recency_half_life_hours)
    news = NewsInput(items=tuple(d.title for d in details), ticker=ticker, details=tuple(details))
    return CollectedNews(news=news, flags=tuple(flags), warnings=tuple(warnings))


def _given_details(given: Optional[Sequence[tuple[str, str]]], cleaned: Optional[NewsInput]) -> list[NewsItemMeta]:
    if cleaned is None or given is None:
        return []
    sources = {" ".join(text.split()): source for text, source in given}
    return [NewsItemMeta(title=text, source=sources.get(text, "input")) for text in cleaned.items]


def _feed_detail(item: FeedItem, max_chars: int) -> NewsItemMeta:
    from .model import trim

    return NewsItemMeta(
        title=trim(item.title, max_chars),
        source=item.source,
        published=item.published,
        link=item.link,
        relevance=round(item.relevance, 4),
    )


def _screen(details: list[NewsItemMeta], policy: str) -> tuple[list[NewsItemMeta], list[str]]:
    flagged = {flag.index: flag for flag in screen([d.title for d in details])}
    from .model import trim

    action = "dropped" if policy == "drop" else "kept (news.injection = keep)"
    notes = [
        f"news item {i + 1} from {details[i].source or 'input'}: {trim(details[i].title, 100)!r} reads like an "
        f"instruction to a model ({'/'.join(flag.kinds)}: {flag.excerpt!r}); {action}"
        for i, flag in flagged.items()
    ]
    kept = [d for i, d in enumerate(details) if policy != "drop" or i not in flagged]
    return kept, notes


def _weigh(details: list[NewsItemMeta], now: datetime, half_life: float) -> list[NewsItemMeta]:
    raw = [
        recency_weight(d.published, now, half_life) * (d.relevance if d.relevance is not None else 1.0)
        for d in details
    ]
    total = sum(raw) or 1.0
    return [d.model_copy(update={"weight": round(r / total, 4)}) for d, r in zip(details, raw)]
