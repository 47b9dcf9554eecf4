"""Feed ingestion: RSS/Atom files and a loopback HTTP server; every broken-feed case is a clear note."""

from __future__ import annotations

import socket
import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from alphasignal.config import NewsConfig, Settings
from alphasignal.errors import NewsError
from alphasignal.news.collect import collect_news, feed_locations, recency_weight
from alphasignal.news.feeds import (
    FeedItem,
    expand,
    gather_feeds,
    normalise_title,
    parse_feed,
    select_items,
)

FEEDS = Path(__file__).resolve().parent / "data" / "feeds"
NOW = datetime(2025, 3, 10, 12, 0, tzinfo=timezone.utc)
CFG = NewsConfig(aliases={"ACME": ["Acme Corp"]})


def gather(*names: str, cfg: NewsConfig = CFG, ticker: str = "ACME"):
    return gather_feeds([str(FEEDS / n) if "://" not in n else n for n in names], cfg, ticker=ticker, now=NOW)


# ------------------------------------------------------------------ parsing


def test_rss_items_are_deduplicated_recent_and_about_the_ticker():
    result = gather("valid_rss.xml")
    titles = [item.title for item in result.items]
    assert titles == [
        "ACME operating profit rose to EUR 13.1 mn from EUR 8.7 mn",  # ticker in the title
        "Acme Corp wins a EUR 40 mn order from a Nordic utility",  # alias in the title
        "Suppliers expect demand to pick up",  # ticker in the summary only
    ]
    assert result.dropped == {
        "duplicate": 1, "too old": 1, "undated": 0, "not about the ticker": 1, "over the cap": 0,
    }
    assert [item.relevance for item in result.items] == [1.0, 0.75, 0.6]
    first = result.items[0]
    assert first.source == "Market Wire" and first.link == "https://example.com/1"
    assert first.published == datetime(2025, 3, 10, 9, 0, tzinfo=timezone.utc)
    assert result.problems == [] and result.warnings == []


def test_atom_items_and_html_in_titles():
    result = gather("valid_atom.xml")
    assert [i.title for i in result.items] == [
        "ACME swung to a net loss and cut its dividend",
        "ACME appoints a new chief financial officer",  # <b> tags stripped
    ]
    assert result.items[0].source == "Exchange Releases"


@pytest.mark.parametrize(
    "name, message",
    [
        ("html_page.xml", "is an HTML page, not an RSS/Atom feed"),
        ("malformed.xml", "is malformed XML"),
        ("empty.xml", "has no items"),
        ("missing.xml", "not found"),
    ],
)
def test_broken_feeds_warn_by_default_and_never_crash(name, message):
    result = gather(name, "valid_atom.xml")
    assert len(result.items) == 2  # the good feed still counts
    (problem,) = result.problems
    assert message in str(problem) and name in str(problem)
    assert len(str(problem).splitlines()) == 1


@pytest.mark.parametrize("name", ["html_page.xml", "malformed.xml", "empty.xml", "missing.xml"])
def test_broken_feeds_are_errors_when_configured(name):
    strict = CFG.model_copy(update={"on_feed_error": "error"})
    with pytest.raises(NewsError, match=name):
        gather(name, "valid_atom.xml", cfg=strict)


def test_a_feed_with_nothing_relevant_says_so():
    result = gather("valid_rss.xml", ticker="INITECH")
    assert result.items == []
    (note,) = result.warnings
    assert "none of 6 item(s) kept" in note and "not about the ticker" in note


def test_partly_readable_feed_keeps_items_with_a_note():
    data = (FEEDS / "valid_rss.xml").read_bytes().replace(b"</channel>", b"<item><title>x &bogus; y</title></item></channel>")
    items, notes = parse_feed(data, "partial.xml")
    assert len(items) >= 6
    assert notes and "malformed XML" in notes[0] and "used the" in notes[0]


def test_plain_text_and_empty_bytes_are_not_feeds():
    with pytest.raises(NewsError, match="not an RSS or Atom feed"):
        parse_feed(b"just some text", "x.txt")
    with pytest.raises(NewsError, match="empty"):
        parse_feed(b"  \n", "x.xml")


# ------------------------------------------------------------------ selection


def test_cap_keeps_the_most_relevant_then_newest():
    items = [
        FeedItem(title=f"ACME item {i}", source="s", feed="f", published=NOW - timedelta(hours=i)) for i in range(5)
    ] + [FeedItem(title="Acme Corp alias item", source="s", feed="f", published=NOW)]
    kept, dropped = select_items(items, CFG.model_copy(update={"max_items": 3}), "ACME", NOW)
    assert [k.title for k in kept] == ["ACME item 0", "ACME item 1", "ACME item 2"]
    assert dropped["over the cap"] == 3


def test_undated_items_follow_the_setting():
    items = [FeedItem(title="ACME undated", source="s", feed="f")]
    assert len(select_items(items, CFG, "ACME", NOW)[0]) == 1
    kept, dropped = select_items(items, CFG.model_copy(update={"keep_undated": False}), "ACME", NOW)
    assert kept == [] and dropped["undated"] == 1


def test_ticker_match_is_a_whole_word_and_case_sensitive():
    cfg = NewsConfig()
    items = [
        FeedItem(title="IT spending rises", source="s", feed="f"),
        FeedItem(title="Shares of $IT rally", source="s", feed="f"),
        FeedItem(title="ITALY bonds", source="s", feed="f"),
    ]
    kept, _ = select_items(items, cfg, "IT", NOW)
    assert [k.title for k in kept] == ["IT spending rises", "Shares of $IT rally"]
    lower = [FeedItem(title="it is what it is", source="s", feed="f")]
    assert select_items(lower, cfg, "IT", NOW)[0] == []


def test_without_a_ticker_nothing_is_filtered_for_relevance():
    kept, _ = select_items([FeedItem(title="Anything at all", source="s", feed="f")], CFG, None, NOW)
    assert [k.relevance for k in kept] == [0.5]


def test_normalised_titles():
    assert normalise_title("  ACME   profit ROSE!! ") == normalise_title("acme profit rose")
    assert normalise_title("Café façade") == "cafe facade"


def test_ticker_templates():
    assert expand("https://x/rss?s={ticker}", "BRK.B") == "https://x/rss?s=BRK.B"
    assert expand("feeds/{ticker}.xml", "ACME") == "feeds/ACME.xml"
    assert expand("https://x/{ticker}", None) is None
    result = gather_feeds(["https://x/{ticker}"], CFG, ticker=None, now=NOW)
    assert "needs a ticker" in result.warnings[0]


def test_ticker_feed_template_is_added_only_when_enabled():
    settings = Settings(news={"feeds": ["a.xml"]})
    assert feed_locations(["b.xml", "a.xml"], settings, "ACME") == ["b.xml", "a.xml"]
    online = Settings(news={"ticker_feed": True})
    (url,) = feed_locations([], online, "ACME")
    assert url.startswith("https://feeds.finance.yahoo.com/") and "{ticker}" in url
    assert feed_locations([], online, None) == []


# ------------------------------------------------------------------ over HTTP


class _Feeds(BaseHTTPRequestHandler):
    routes = {
        "/rss": (200, "application/rss+xml", (FEEDS / "valid_rss.xml").read_bytes()),
        "/html": (200, "text/html", (FEEDS / "html_page.xml").read_bytes()),
        "/gone": (404, "text/plain", b"not here"),
    }

    def do_GET(self):  # noqa: N802
        status, kind, body = self.routes.get(self.path.split("?")[0], (500, "text/plain", b"oops"))
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Feeds)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed on exit: nothing listens there


def test_feed_over_http(server):
    result = gather(f"{server}/rss")
    assert len(result.items) == 3 and result.items[0].feed == f"{server}/rss"


def test_http_failures_are_clear_notes(server):
    dead = f"http://127.0.0.1:{_dead_port()}/rss"
    result = gather(f"{server}/html", f"{server}/gone", dead, f"{server}/rss")
    notes = [str(p) for p in result.problems]
    assert len(result.items) == 3
    assert "HTML page" in notes[0]
    assert "HTTP 404" in notes[1]
    assert "cannot reach it" in notes[2] and dead in notes[2]


def test_oversized_download_is_refused(server):
    result = gather(f"{server}/rss", cfg=CFG.model_copy(update={"max_feed_bytes": 100}))
    assert "larger than news.max_feed_bytes" in str(result.problems[0])


# ------------------------------------------------------------------ collect_news


def _fresh_feed(path: Path, titles: list[tuple[str, float]]) -> Path:
    """An RSS file whose items are ``hours`` old now (the agent filters by the real clock)."""
    from email.utils import format_datetime

    now = datetime.now(timezone.utc)
    items = "".join(
        f"<item><title>{t}</title><pubDate>{format_datetime(now - timedelta(hours=h), usegmt=True)}</pubDate></item>"
        for t, h in titles
    )
    path.write_text(f'<?xml version="1.0"?><rss version="2.0"><channel><title>Wire</title>{items}</channel></rss>')
    return path


def test_collect_news_weighs_by_recency_and_relevance(tmp_path):
    feed = _fresh_feed(tmp_path / "f.xml", [("ACME profit rose", 0.0), ("ACME order intake fell", 24.0)])
    settings = Settings(news={"recency_half_life_hours": 24})
    collected = collect_news([("Typed ACME headline", "input")], [str(feed)], settings, ticker="ACME")
    details = collected.news.details
    assert [d.title for d in details] == ["Typed ACME headline", "ACME profit rose", "ACME order intake fell"]
    assert details[0].source == "input" and details[1].source == "Wire"
    # fresh items weigh 1, a day-old one 0.5: normalised to 0.4 / 0.4 / 0.2
    assert [d.weight for d in details] == pytest.approx([0.4, 0.4, 0.2], abs=1e-3)
    assert collected.flags == () and collected.warnings == ()


def test_collect_news_with_only_failed_feeds_says_the_chart_decides_alone():
    collected = collect_news(None, [str(FEEDS / "html_page.xml")], Settings())
    assert collected.news is None
    assert "HTML page" in collected.warnings[0]
    assert "chart decides alone" in collected.warnings[-1]


def test_recency_weight():
    assert recency_weight(None, NOW, 24) == 1.0
    assert recency_weight(NOW - timedelta(hours=48), NOW, 24) == pytest.approx(0.25)
    assert recency_weight(NOW + timedelta(hours=1), NOW, 24) == 1.0  # clock skew: not above 1
