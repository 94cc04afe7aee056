"""certgate.edge.http1: request and response readers as scripts of bytes in, events out (no sockets)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from certgate.edge.http1 import (
    LAST_CHUNK,
    MESSAGE_END,
    BodyChunk,
    HTTP1Limits,
    MessageEnd,
    RequestError,
    RequestEvent,
    RequestHead,
    RequestReader,
    ResponseError,
    ResponseEvent,
    ResponseHead,
    ResponseReader,
    encode_chunk,
    simple_response,
    status_line,
)


def feed(data: bytes | list[bytes], limits: HTTP1Limits | None = None) -> list[RequestEvent]:
    reader = RequestReader(limits)
    events: list[RequestEvent] = []
    for chunk in [data] if isinstance(data, bytes) else data:
        events += reader.feed(chunk)
    return events


def heads(events: list[RequestEvent]) -> list[RequestHead]:
    return [e for e in events if isinstance(e, RequestHead)]


def body(events: list[RequestEvent] | list[ResponseEvent]) -> bytes:
    return b"".join(e.data for e in events if isinstance(e, BodyChunk))


def error(events: list[RequestEvent]) -> RequestError:
    assert isinstance(events[-1], RequestError), events
    assert sum(isinstance(e, RequestError) for e in events) == 1
    return events[-1]


def rejected(data: bytes | list[bytes], status: int = 400, limits: HTTP1Limits | None = None) -> RequestError:
    """The request is refused before any RequestHead exists, so it can never be forwarded."""
    events = feed(data, limits)
    assert heads(events) == [], events
    err = error(events)
    assert err.status == status, err
    return err


GET = b"GET /p?q=1 HTTP/1.1\r\nHost: a.test\r\nUser-Agent: t\r\n\r\n"


# --- well-formed requests ---------------------------------------------------------------------


def test_simple_get() -> None:
    events = feed(GET)
    assert len(events) == 2 and events[1] is MESSAGE_END
    head = events[0]
    assert isinstance(head, RequestHead)
    assert head.method == b"GET" and head.target == b"/p?q=1" and head.version == "1.1"
    assert head.headers == ((b"host", b"a.test"), (b"user-agent", b"t"))
    assert head.keep_alive and head.host == "a.test" and head.port is None and head.authority == b"a.test"
    assert head.content_length is None and not head.chunked and not head.has_body
    assert not head.expect_continue and head.connection_tokens == frozenset()
    assert head.header(b"user-agent") == b"t" and head.header(b"cookie") is None


def test_host_with_port_is_split_and_lowercased() -> None:
    (head,) = heads(feed(b"GET / HTTP/1.1\r\nHost: A.Test:8443\r\n\r\n"))
    assert head.host == "a.test" and head.port == 8443 and head.authority == b"A.Test:8443"
    (head,) = heads(feed(b"GET / HTTP/1.1\r\nHost: [::1]:8443\r\n\r\n"))
    assert head.host == "[::1]" and head.port == 8443


def test_values_are_trimmed_and_names_lowercased() -> None:
    (head,) = heads(feed(b"GET / HTTP/1.1\r\nHost: a\r\nX-Thing:   v  w \t\r\n\r\n"))
    assert head.headers[1] == (b"x-thing", b"v  w")


def test_byte_by_byte_feeding_gives_the_same_events() -> None:
    data = (
        b"POST /u HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n3\r\nabc\r\n0\r\n\r\n"
    )
    events = feed([data[i : i + 1] for i in range(len(data))])
    (head,) = heads(events)
    assert head.chunked and body(events) == b"helloabc" and events[-1] is MESSAGE_END


def test_content_length_body() -> None:
    events = feed(b"PUT /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello")
    (head,) = heads(events)
    assert head.content_length == 5 and head.has_body and body(events) == b"hello"
    assert events[-1] is MESSAGE_END


def test_chunked_body_trailers_are_dropped() -> None:
    data = (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n"
        b"5;ext=1\r\nhello\r\n0\r\nX-T: 1\r\n\r\n"
    )
    events = feed(data)
    (head,) = heads(events)
    assert head.chunked and head.content_length is None
    assert body(events) == b"hello" and events[-1] is MESSAGE_END
    assert (b"x-t", b"1") not in head.headers


def test_pipelined_requests_come_out_in_order() -> None:
    data = (
        b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"
        b"POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"
        b"GET /3 HTTP/1.1\r\nHost: a\r\n\r\n"
    )
    events = feed(data)
    kinds = [type(e).__name__ if e is not MESSAGE_END else "End" for e in events]
    assert kinds == ["RequestHead", "End", "RequestHead", "BodyChunk", "End", "RequestHead", "End"]
    assert [h.target for h in heads(events)] == [b"/1", b"/2", b"/3"]


def test_keep_alive_rules() -> None:
    assert heads(feed(b"GET / HTTP/1.0\r\n\r\n"))[0].keep_alive is False
    (h10,) = heads(feed(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"))
    assert h10.keep_alive and h10.host == "" and h10.authority == b""
    assert heads(feed(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"))[0].keep_alive is False


def test_connection_tokens_name_extra_hop_by_hop_fields() -> None:
    (head,) = heads(
        feed(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, X-Secret\r\nConnection: Foo\r\n\r\n")
    )
    assert head.connection_tokens == {b"x-secret", b"foo"}


def test_expect_continue() -> None:
    data = b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 2\r\n\r\n"
    (head,) = heads(feed(data))
    assert head.expect_continue


def test_absolute_form_is_rewritten_and_replaces_host() -> None:
    (head,) = heads(feed(b"GET http://B.test:8080/x?y HTTP/1.1\r\nHost: a.test\r\n\r\n"))
    assert head.target == b"/x?y" and head.host == "b.test" and head.port == 8080
    assert head.authority == b"B.test:8080"
    (head,) = heads(feed(b"GET https://b.test HTTP/1.1\r\nHost: b.test\r\n\r\n"))
    assert head.target == b"/" and head.authority == b"b.test"


def test_options_asterisk() -> None:
    (head,) = heads(feed(b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"))
    assert head.target == b"*"


def test_upgrade_without_body_is_a_plain_request_and_parsing_continues() -> None:
    data = (
        b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
        b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n"
    )
    events = feed(data)
    assert [h.target for h in heads(events)] == [b"/ws", b"/next"]
    assert heads(events)[0].connection_tokens == {b"upgrade"}


def test_a_chunked_body_full_of_blank_lines_then_a_pipelined_request() -> None:
    # The reader finds where each head starts by cutting the input after every CRLFCRLF; body
    # bytes that look like the end of a head (or of a chunked body) must not confuse it.
    data = (
        b"POST /1 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"8\r\n\r\n\r\n\r\n\r\n\r\n7\r\n0\r\n\r\n\r\n\r\n0\r\nX-T: 1\r\n\r\n"
        b"POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\n\r\n\r\n"
        b"GET /3 HTTP/1.1\r\nHost: a\r\nX-Last: 1\r\n\r\n"
    )
    for chunks in (
        [data],
        [data[i : i + 1] for i in range(len(data))],
        [data[:70], data[70:131], data[131:]],
    ):
        events = feed(chunks)
        assert [h.target for h in heads(events)] == [b"/1", b"/2", b"/3"]
        assert body(events) == b"\r\n\r\n\r\n\r\n" + b"0\r\n\r\n\r\n" + b"\r\n\r\n"
        assert heads(events)[2].headers == ((b"host", b"a"), (b"x-last", b"1"))
        assert sum(e is MESSAGE_END for e in events) == 3 and not any(
            isinstance(e, RequestError) for e in events
        )


def test_a_repeated_field_block_shares_its_parse() -> None:
    reader = RequestReader()
    first = heads(reader.feed(GET))[0]
    second = heads(reader.feed(GET.replace(b"/p?q=1", b"/other")))[0]
    assert second.target == b"/other" and second.headers is first.headers
    third = heads(reader.feed(GET.replace(b"User-Agent: t", b"User-Agent: u")))[0]
    assert third.headers == ((b"host", b"a.test"), (b"user-agent", b"u"))
    # a block that is refused is refused every time, whatever came before
    bad = b"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"
    for prefix in (b"", bad.replace(b"\r\nContent-Length: 2", b"") + b"x"):
        assert error(feed(prefix + bad)).status == 400


def test_blank_lines_inside_a_long_chunked_body_are_not_trailers() -> None:
    # Every chunk's data ends in CRLFCRLF, so its chunk terminator is a piece without body
    # bytes; only such pieces in a row count against the limit.
    reader = RequestReader(HTTP1Limits(max_head_bytes=256))
    events = reader.feed(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
    for _ in range(500):
        events += reader.feed(b"6\r\nab\r\n\r\n\r\n")
    events += reader.feed(b"0\r\n\r\n")
    assert body(events) == b"ab\r\n\r\n" * 500 and events[-1] is MESSAGE_END


def test_blank_lines_inside_a_content_length_body_do_not_split_it() -> None:
    # The reader cuts what it feeds llhttp after every CRLFCRLF to find where heads end; inside
    # a Content-Length body no head can end, so the body of one read stays one event (a body
    # of CRLFs must not become one event per two bytes: CPU per byte ~1,000x a plain upload).
    data = b"\r\n" * 4096
    reader = RequestReader()
    head = b"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: %d\r\n\r\n" % len(data)
    events = reader.feed(head + data[:10])
    assert [type(e) for e in events] == [RequestHead, BodyChunk]
    events = reader.feed(data[10:] + b"\r\n\r\nGET /next HTTP/1.1\r\nHost: a.test\r\n\r\n")
    assert [type(e) for e in events] == [BodyChunk, MessageEnd, RequestHead, MessageEnd]
    assert events[0].data == data[10:] and heads(events)[0].target == b"/next"  # type: ignore[union-attr]


def test_blank_lines_inside_a_chunk_are_one_body_event_per_read() -> None:
    # Inside a chunked body the reader must still cut after every CRLFCRLF (one may end the
    # body), but the pieces of one read are one event: a chunk of CRLFs must not become one
    # event, and one chunk to the origin (7 bytes for 2), per two bytes.
    data = b"\r\n" * 4096
    reader = RequestReader()
    events = reader.feed(b"POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n")
    events += reader.feed(b"%x\r\n%s\r\n" % (len(data), data))
    events += reader.feed(b"3\r\n\r\n\r\r\n0\r\n\r\nGET /next HTTP/1.1\r\nHost: a.test\r\n\r\n")
    kinds = [type(e) for e in events]
    assert kinds == [RequestHead, BodyChunk, BodyChunk, MessageEnd, RequestHead, MessageEnd]
    assert body(events) == data + b"\r\n\r"


def test_a_chunk_of_blank_lines_costs_no_more_than_any_chunk() -> None:
    # The reader follows the chunk sizes, so it cuts no piece inside chunk data: 1 MiB of CRLFs
    # in one chunk took ~0.3 s of CPU when every CRLFCRLF in it was a piece of its own.
    import time

    data = b"\r\n" * (512 * 1024)
    stream = (
        b"POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"%X;ext=1\r\n%s\r\n" % (len(data), data)
        + b"0\r\n\r\nGET /next HTTP/1.1\r\nHost: a.test\r\n\r\n"
    )
    started = time.process_time()
    reader = RequestReader()
    events: list[RequestEvent] = []
    for at in range(0, len(stream), 65536):  # as a socket delivers it
        events += reader.feed(stream[at : at + 65536])
    spent = time.process_time() - started
    assert body(events) == data
    assert [h.target for h in heads(events)] == [b"/", b"/next"]
    assert sum(isinstance(e, MessageEnd) for e in events) == 2
    assert spent < 0.1, spent


@pytest.mark.parametrize("split", [1, 2, 3, 7, 64, 10_000])
def test_chunked_bodies_end_where_llhttp_says_whatever_the_reads(split: int) -> None:
    # Chunk data that looks like framing (CRLFCRLF, a last chunk, a request), upper-case and
    # zero-padded sizes, extensions, trailers, an empty chunked body; each message must end
    # exactly where llhttp ends it, and the requests after it must be read as they are.
    bodies = [b"\r\n\r\n", b"0\r\n\r\n", b"GET /x HTTP/1.1\r\nHost: a.test\r\n\r\n", b"a" * 300]
    chunked = b"".join(b"%s%X;n=v\r\n%s\r\n" % (b"0" * n, len(d), d) for n, d in enumerate(bodies))
    stream = (
        b"POST /1 HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n"
        + chunked
        + b"000\r\nT: x\r\n\r\n"
        + b"POST /2 HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        + b"GET /3 HTTP/1.1\r\nHost: a.test\r\n\r\n"
    )
    reader = RequestReader()
    events: list[RequestEvent] = []
    for at in range(0, len(stream), split):
        events += reader.feed(stream[at : at + split])
    assert [h.target for h in heads(events)] == [b"/1", b"/2", b"/3"]
    assert sum(isinstance(e, MessageEnd) for e in events) == 3
    assert body(events) == b"".join(bodies)
    assert not any(isinstance(e, RequestError) for e in events)


def test_the_reader_keeps_no_reference_to_a_fed_chunk() -> None:
    import sys

    reader = RequestReader()
    data = GET + b"GET /2 HTTP/1.1\r\nHost: a.test\r\n\r\n"
    before = sys.getrefcount(data)
    assert len(heads(reader.feed(data))) == 2
    assert sys.getrefcount(data) == before


def test_readers_share_parses_but_not_limits() -> None:
    data = b"GET / HTTP/1.1\r\nHost: a\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(8)) + b"\r\n"
    heads(feed(data))  # (its lines are seen for the first time here: not shared yet)
    one, two = heads(feed(data))[0], heads(feed(data))[0]
    assert one.headers is two.headers  # one parse, shared by two connections
    assert error(feed(data, HTTP1Limits(max_header_count=5))).reason == "http.too_many_headers"
    assert heads(feed(data, HTTP1Limits(max_header_count=9)))[0].headers is one.headers


def test_the_shared_host_cache_keeps_only_short_values() -> None:
    # The process-wide Host cache is bounded in entries; its keys must be bounded too, or a
    # client sending long well-formed Host values (up to max_head_bytes each) makes every
    # worker hold ~512 of them (tens of MB) on behalf of all connections.
    from certgate.edge import http1

    long_host = b"h" * 40_000 + b".test"
    (head,) = heads(feed(b"GET / HTTP/1.1\r\nHost: %s\r\n\r\n" % long_host))
    assert head.authority == long_host and head.host == long_host.decode()
    assert long_host not in http1._AUTHORITIES
    short = b"short-host-7c1e.test:8443"
    assert heads(feed(b"GET / HTTP/1.1\r\nHost: %s\r\n\r\n" % short))[0].port == 8443
    assert http1._AUTHORITIES[short] == ("short-host-7c1e.test", 8443)


def test_a_block_with_a_line_never_seen_is_shared_from_its_second_sighting() -> None:
    data = b"GET / HTTP/1.1\r\nHost: a\r\nCookie: s=never-seen-1f3a\r\n\r\n"
    first, second, third = (heads(feed(data))[0] for _ in range(3))
    assert first.headers == second.headers == third.headers
    assert first.headers is not second.headers and second.headers is third.headers


@pytest.mark.parametrize(
    ("before", "after", "expect"),
    [
        # a line at the same position turns into a framing field, or stops being one
        (b"X-Length: 3", b"Content-Length: 3", (3, False, b"a.test", frozenset())),
        (b"Content-Length: 3", b"X-Length: 3", (None, False, b"a.test", frozenset())),
        (b"X-Coding: chunked", b"Transfer-Encoding: chunked", (None, True, b"a.test", frozenset())),
        (b"X-Host: b.test", b"Host: b.test", None),  # two Host fields
        (b"Connection: x-a", b"Connection: x-b", (None, False, b"a.test", frozenset({b"x-b"}))),
        (b"Connection: x-a", b"X-Other: x-a", (None, False, b"a.test", frozenset())),
        (b"Content-Length: 3", b"Content-Length: 4", (4, False, b"a.test", frozenset())),
    ],
)
def test_a_changed_line_at_the_same_position_is_read_again(
    before: bytes, after: bytes, expect: tuple[int | None, bool, bytes, frozenset[bytes]] | None
) -> None:
    # The next block on a connection takes each unchanged line's field from the previous block
    # by position; the framing fields must follow a changed line in both directions.
    reader = RequestReader()
    template = b"POST / HTTP/1.1\r\nHost: a.test\r\n%s\r\nAccept: */*\r\n\r\n"
    first = reader.feed(template % before + (b"abc" if before.startswith(b"Content-Length") else b""))
    if before.startswith(b"Transfer-Encoding"):
        first += reader.feed(b"0\r\n\r\n")
    assert heads(first) and first[-1] is MESSAGE_END
    events = reader.feed(template % after)
    if expect is None:
        assert error(events).reason == "http.host"
        return
    (head,) = heads(events)
    assert (head.content_length, head.chunked, head.authority, head.connection_tokens) == expect
    assert head.headers == tuple(
        (n.lower(), v) for n, v in (f.split(b": ") for f in (b"Host: a.test", after, b"Accept: */*"))
    )


def test_trailers_spanning_many_reads_are_cut_off() -> None:
    reader = RequestReader(HTTP1Limits(max_head_bytes=1024))
    events = reader.feed(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n"
    )
    for i in range(100):
        events += reader.feed(b"X-T%d: %s\r\n" % (i, b"v" * 100))
        if reader.failed:
            break
    assert i < 15 and error(events).status == 431 and error(events).reason == "http.trailers_too_large"
    assert MESSAGE_END not in events


def test_in_head_tracks_a_partial_head() -> None:
    reader = RequestReader()
    assert not reader.in_head
    assert reader.feed(b"GET / HT") == []
    assert reader.in_head
    assert len(reader.feed(b"TP/1.1\r\nHost: a\r\n\r\n")) == 2
    assert not reader.in_head


# --- smuggling and malformed framing: never a RequestHead ----------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nContent-Length: 5\r\n\r\nhello",
    ],
    ids=["cl-te", "te-cl", "te-gzip-cl"],
)
def test_content_length_with_transfer_encoding_is_400(data: bytes) -> None:
    rejected(data)


@pytest.mark.parametrize(
    "value",
    [
        b"5\r\nContent-Length: 5",
        b"5\r\nContent-Length: 6",
        b"5, 5",
        b"+5",
        b"-5",
        b"abc",
        b"",
        b"1 2",
        b"0x5",
    ],
)
def test_duplicate_or_non_numeric_content_length_is_400(value: bytes) -> None:
    err = rejected(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: " + value + b"\r\n\r\nhello!")
    assert err.reason.startswith("http.framing")


def test_content_length_overflow_is_400() -> None:
    rejected(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n")


@pytest.mark.parametrize(
    "te",
    [b"xchunked", b"chunked\r\nTransfer-Encoding: chunked", b"chunked, identity", b"identity", b"gzip"],
)
def test_obfuscated_or_repeated_transfer_encoding_is_400(te: bytes) -> None:
    rejected(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: " + te + b"\r\n\r\n0\r\n\r\n")


def test_other_transfer_codings_are_501() -> None:
    err = rejected(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501)
    assert err.reason == "http.framing.unsupported_coding"


def test_transfer_encoding_in_http10_is_400() -> None:
    err = rejected(b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
    assert err.reason == "http.framing.te_in_http10"


@pytest.mark.parametrize(
    "chunks",
    [
        b"zz\r\nhello\r\n0\r\n\r\n",
        b"fffffffffffffffff1\r\nhello\r\n",
        b"5\r\nhelloX0\r\n\r\n",
        b"5\nhello\n0\n\n",
    ],
    ids=["non-hex", "overflow", "no-crlf-after-data", "bare-lf"],
)
def test_bad_chunk_is_400_after_the_head(chunks: bytes) -> None:
    # The head was fine and went out as an event; the error ends the stream, so the proxy aborts
    # the origin request (which never got a last-chunk and so is never complete).
    events = feed(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks)
    assert len(heads(events)) == 1 and MESSAGE_END not in events
    assert error(events).status == 400


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.1\nHost: a\n\n",  # bare LF
        b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n",  # obs-fold
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",  # space before colon
        b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n",  # NUL
        b"GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n",  # lone CR
        b"GET / HTTP/1.1\r\nHost: a\r\n: v\r\n\r\n",  # empty name
        b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n",  # space in target
        b"GET /a\x01 HTTP/1.1\r\nHost: a\r\n\r\n",  # control char in target
    ],
    ids=["bare-lf", "obs-fold", "obs-fold-te", "space-colon", "nul", "cr", "empty-name", "space", "ctl"],
)
def test_malformed_heads_are_400(data: bytes) -> None:
    rejected(data)


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.2\r\nHost: a\r\n\r\n",
        b"GET / HTTP/2.0\r\nHost: a\r\n\r\n",
        b"GET / HTTP/3.1\r\nHost: a\r\n\r\n",
        b"GET /\r\n\r\n",  # HTTP/0.9
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",  # HTTP/2 preface
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS ClientHello on the plain port
        b"get / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"FOO / HTTP/1.1\r\nHost: a\r\n\r\n",
    ],
    ids=["1.2", "2.0", "3.1", "0.9", "h2-preface", "tls", "lowercase-method", "unknown-method"],
)
def test_invalid_version_method_or_garbage_is_400(data: bytes) -> None:
    rejected(data)


def test_connect_is_405() -> None:
    rejected(b"CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n", 405)


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: \r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a@b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a:99999\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a:\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: [::1\r\n\r\n",
        b"GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n",
    ],
    ids=["missing", "twice", "empty", "slash", "userinfo", "port-range", "empty-port", "ipv6", "1.0-twice"],
)
def test_bad_or_missing_host_is_400(data: bytes) -> None:
    assert rejected(data).reason == "http.host"


@pytest.mark.parametrize(
    "target",
    [b"a.test:443", b"http://user@b.test/", b"http:///x", b"*"],
)
def test_bad_targets_are_400(target: bytes) -> None:
    rejected(b"GET " + target + b" HTTP/1.1\r\nHost: a\r\n\r\n")


def test_upgrade_with_a_body_is_400() -> None:
    rejected(
        b"POST / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: x\r\nContent-Length: 3\r\n\r\nabc"
    )


# --- limits ------------------------------------------------------------------------------------


def test_header_block_over_the_limit_is_431() -> None:
    limits = HTTP1Limits(max_head_bytes=4096)
    many = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 100) for i in range(40))
    err = rejected(b"GET / HTTP/1.1\r\nHost: a\r\n" + many + b"\r\n", 431, limits)
    assert err.reason == "http.head_too_large"
    # just under the limit is fine
    few = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 100) for i in range(30))
    assert len(heads(feed(b"GET / HTTP/1.1\r\nHost: a\r\n" + few + b"\r\n", limits))) == 1


def test_default_limit_is_64_kib() -> None:
    assert HTTP1Limits().max_head_bytes == 64 * 1024
    big = b"X-Big: " + b"v" * (64 * 1024) + b"\r\n"
    rejected(b"GET / HTTP/1.1\r\nHost: a\r\n" + big + b"\r\n", 431)


def test_one_endless_header_line_is_cut_off_while_it_streams() -> None:
    # The line never completes; the reader must not buffer it forever.
    reader = RequestReader(HTTP1Limits(max_head_bytes=4096))
    events = reader.feed(b"GET / HTTP/1.1\r\nHost: a\r\nX-Endless: ")
    fed = 0
    while not events and fed < 100_000:
        events = reader.feed(b"v" * 1000)
        fed += 1000
    assert fed <= 4096 + 1000
    assert isinstance(events[-1], RequestError) and events[-1].status == 431


def test_endless_target_is_431() -> None:
    reader = RequestReader(HTTP1Limits(max_head_bytes=4096))
    events = reader.feed(b"GET /")
    for _ in range(10):
        events += reader.feed(b"a" * 1000)
    assert isinstance(events[-1], RequestError) and events[-1].status == 431


def test_too_many_headers_is_431() -> None:
    limits = HTTP1Limits(max_header_count=10)
    many = b"".join(b"X-%d: v\r\n" % i for i in range(10))
    err = rejected(b"GET / HTTP/1.1\r\nHost: a\r\n" + many + b"\r\n", 431, limits)
    assert err.reason == "http.too_many_headers"


def test_oversized_trailers_are_431() -> None:
    limits = HTTP1Limits(max_head_bytes=1024)
    trailers = b"".join(b"X-T%d: %s\r\n" % (i, b"v" * 100) for i in range(20))
    events = feed(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n" + trailers + b"\r\n", limits
    )
    assert error(events).status == 431


def test_limits_are_validated() -> None:
    with pytest.raises(ValueError):
        HTTP1Limits(max_head_bytes=10)
    with pytest.raises(ValueError):
        HTTP1Limits(max_header_count=0)


# --- pipelining with errors ----------------------------------------------------------------------


def test_error_after_good_pipelined_requests_comes_last() -> None:
    events = feed(GET + GET + b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\n\r\n")
    assert len(heads(events)) == 2 and error(events).status == 400


def test_reader_is_dead_after_an_error() -> None:
    reader = RequestReader()
    events = reader.feed(b"BAD\r\n\r\n")
    assert isinstance(events[-1], RequestError) and reader.failed
    assert reader.feed(GET) == []


def test_data_after_connection_close_is_an_error_after_that_request() -> None:
    events = feed(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n" + GET)
    assert len(heads(events)) == 1 and events[1] is MESSAGE_END and isinstance(events[2], RequestError)


# --- property tests --------------------------------------------------------------------------------

STREAM = (
    b"GET /1 HTTP/1.1\r\nHost: a.test\r\nAccept: */*\r\n\r\n"
    b"POST /2 HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"4\r\nwiki\r\n5\r\npedia\r\n0\r\n\r\n"
    b"PUT /3 HTTP/1.1\r\nHost: a.test\r\nContent-Length: 10\r\n\r\n0123456789"
)


def _summary(events: list[RequestEvent]) -> list[object]:
    out: list[object] = []
    for e in events:
        if isinstance(e, RequestHead):
            out.append((e.method, e.target, tuple(e.headers), e.content_length, e.chunked))
        elif isinstance(e, BodyChunk):
            if out and isinstance(out[-1], bytes):
                out[-1] += e.data
            else:
                out.append(e.data)
        else:
            out.append(e)
    return out


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=12))
def test_any_split_of_a_stream_gives_the_same_events(cuts: list[int]) -> None:
    points = sorted(set(cuts))
    pieces = [STREAM[a:b] for a, b in zip([0, *points], [*points, len(STREAM)], strict=True)]
    assert _summary(feed([p for p in pieces if p])) == _summary(feed(STREAM))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_garbage_never_crashes(data: bytes) -> None:
    events = feed(data)
    assert sum(isinstance(e, RequestError) for e in events) <= 1


_FRAGMENTS = [
    b"Content-Length: 5\r\n",
    b"Content-Length: 0\r\n",
    b"Content-Length: 5, 5\r\n",
    b"Transfer-Encoding: chunked\r\n",
    b"Transfer-Encoding: identity\r\n",
    b"Transfer-Encoding : chunked\r\n",
    b"Transfer-Encoding: chunked \r\n",
    b"Transfer-Encoding:\tchunked\r\n",
    b"transfer-encoding: CHUNKED\r\n",
    b"Host: a\r\n",
    b"Host: b\r\n",
    b"Connection: close\r\n",
    b"X-A: 1\r\n",
]


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from([b"GET", b"POST"]),
    st.sampled_from([b"1.1", b"1.0"]),
    st.lists(st.sampled_from(_FRAGMENTS), max_size=5),
)
def test_no_head_ever_has_ambiguous_framing(method: bytes, version: bytes, fields: list[bytes]) -> None:
    data = method + b" / HTTP/" + version + b"\r\n" + b"".join(fields) + b"\r\n0\r\n\r\nhello"
    for head in heads(feed(data)):
        lower = [f.lower().replace(b" ", b"").replace(b"\t", b"") for f in fields]
        n_cl = sum(f.startswith(b"content-length") for f in lower)
        n_te = sum(f.startswith(b"transfer-encoding") for f in lower)
        n_host = sum(f.startswith(b"host") for f in lower)
        assert not (head.chunked and head.content_length is not None)
        assert n_cl + n_te <= 1 and n_host <= 1
        if head.chunked:
            assert version == b"1.1"


# --- responses -----------------------------------------------------------------------------------


def rfeed(
    data: bytes | list[bytes], *, head_request: bool = False
) -> tuple[ResponseReader, list[ResponseEvent]]:
    reader = ResponseReader()
    reader.start(head_request=head_request)
    events: list[ResponseEvent] = []
    for chunk in [data] if isinstance(data, bytes) else data:
        events += reader.feed(chunk)
    return reader, events


def test_response_with_content_length() -> None:
    reader, events = rfeed(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-O: 1\r\n\r\nok")
    head = events[0]
    assert isinstance(head, ResponseHead)
    assert (
        head.status == 200 and head.reason == b"OK" and head.framing == "length" and head.content_length == 2
    )
    assert head.headers == [(b"content-length", b"2"), (b"x-o", b"1")]
    assert body(events) == b"ok" and events[-1] is MESSAGE_END
    assert reader.done and reader.reusable


def test_chunked_response_is_dechunked_and_trailers_dropped() -> None:
    data = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n3\r\n!!!\r\n0\r\nX-T: 1\r\n\r\n"
    reader, events = rfeed([data[i : i + 3] for i in range(0, len(data), 3)])
    assert isinstance(events[0], ResponseHead) and events[0].framing == "chunked"
    assert body(events) == b"ok!!!" and reader.reusable


def test_close_delimited_response_ends_at_eof() -> None:
    reader, events = rfeed(b"HTTP/1.1 200 OK\r\n\r\nabc")
    assert isinstance(events[0], ResponseHead) and events[0].framing == "close"
    assert MESSAGE_END not in events
    assert reader.feed_eof() == [MESSAGE_END]
    assert reader.done and not reader.reusable


def test_truncated_response_is_an_error_at_eof() -> None:
    reader, _ = rfeed(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
    (err,) = reader.feed_eof()
    assert isinstance(err, ResponseError) and err.reason == "http.origin.truncated"
    reader, _ = rfeed(b"HTTP/1.1 200 O")
    (err,) = reader.feed_eof()
    assert isinstance(err, ResponseError) and err.reason == "http.origin.closed"


@pytest.mark.parametrize("status", [204, 304])
def test_204_and_304_have_no_body(status: int) -> None:
    reader, events = rfeed(b"HTTP/1.1 %d X\r\nContent-Length: 5\r\n\r\n" % status)
    assert isinstance(events[0], ResponseHead) and events[0].framing == "none"
    assert events[-1] is MESSAGE_END and reader.reusable


def test_head_response_has_no_body_whatever_its_length() -> None:
    reader, events = rfeed(b"HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n", head_request=True)
    head = events[0]
    assert isinstance(head, ResponseHead) and head.framing == "none" and head.content_length == 500
    assert events[-1] is MESSAGE_END and reader.reusable
    # and the reader goes on with the next response on the same connection
    reader.start(head_request=False)
    events = reader.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    assert body(events) == b"ok" and reader.reusable


def test_head_response_split_and_followed_by_stray_bytes() -> None:
    reader, events = rfeed([b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r", b"\n"], head_request=True)
    assert events[-1] is MESSAGE_END and reader.reusable
    reader, events = rfeed(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", head_request=True)
    assert events[-1] is MESSAGE_END and not reader.reusable


def test_interim_responses_are_dropped() -> None:
    data = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 103 Early Hints\r\nLink: </s>\r\n\r\n"
        b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"
    )
    reader, events = rfeed(data)
    assert len(events) == 2 and isinstance(events[0], ResponseHead) and events[0].status == 201
    assert events[0].headers == [(b"content-length", b"0")] and reader.reusable


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (
            b"HTTP/1.1 101 Switching\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n",
            "http.origin.unexpected_upgrade",
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
            "http.origin.framing.content_length",
        ),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nabc", "http.origin.unsupported_coding"),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\na",
            "http.origin.framing.content_length",
        ),
        (b"HTTP/1.1 200 OK\nContent-Length: 0\n\n", "http.origin.malformed"),
        (b"HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n", "http.origin.invalid_version"),
        (b"garbage\r\n\r\n", "http.origin.invalid_version"),
    ],
    ids=["101", "cl-te", "gzip", "dup-cl", "bare-lf", "h2", "garbage"],
)
def test_malformed_responses_are_errors(data: bytes, reason: str) -> None:
    reader, events = rfeed(data)
    assert isinstance(events[-1], ResponseError), events
    assert events[-1].reason == reason and not reader.reusable
    with pytest.raises(RuntimeError):
        reader.start(head_request=False)


def test_keep_alive_decides_reuse() -> None:
    assert not rfeed(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")[0].reusable
    assert not rfeed(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n")[0].reusable
    reader, _ = rfeed(b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n")
    assert reader.reusable


def test_a_reused_reader_judges_every_head_on_its_own() -> None:
    # One origin connection, several responses: an equal field block may reuse the previous
    # scan, a different one never does.
    reader = ResponseReader()
    a = b"HTTP/1.1 200 OK\r\nServer: s\r\nContent-Length: 2\r\n\r\nok"
    b = (
        b"HTTP/1.1 200 OK\r\nServer: s\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    )
    for data, framing, length, kept in (
        (a, "length", 2, b"Server: s\r\n"),
        (b, "chunked", None, b"Server: s\r\nX-Hop: 1\r\n"),
        (a, "length", 2, b"Server: s\r\n"),
        (a.replace(b": 2", b": 0").replace(b"ok", b""), "length", 0, b"Server: s\r\n"),
    ):
        reader.start(head_request=False)
        events = reader.feed(data)
        head = events[0]
        assert isinstance(head, ResponseHead) and events[-1] is MESSAGE_END
        assert (head.framing, head.content_length, head.end_to_end) == (framing, length, kept)
        assert head.connection_tokens == ({b"x-hop"} if data is b else set())
    reader.start(head_request=False)
    events = reader.feed(a.replace(b"Content-Length: 2", b"Content-Length: 1000000000000000000"))  # 19 digits
    assert isinstance(events[-1], ResponseError) and events[-1].reason == "http.origin.content_length"


def test_bytes_after_a_complete_response_spoil_the_connection() -> None:
    reader, events = rfeed(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n")
    assert events[-1] is MESSAGE_END and body(events) == b"ok" and not reader.reusable
    reader, _ = rfeed(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    assert reader.feed(b"junk") == [] and not reader.reusable


def test_response_head_limits() -> None:
    reader = ResponseReader(HTTP1Limits(max_head_bytes=1024, max_header_count=5))
    events = reader.feed(b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(6)) + b"\r\n")
    assert isinstance(events[-1], ResponseError) and events[-1].reason == "http.origin.too_many_headers"
    reader = ResponseReader(HTTP1Limits(max_head_bytes=1024))
    events = reader.feed(b"HTTP/1.1 200 OK\r\nX: " + b"v" * 2000 + b"\r\n\r\n")
    assert isinstance(events[-1], ResponseError) and events[-1].reason == "http.origin.head_too_large"
    reader = ResponseReader(HTTP1Limits(max_head_bytes=1024))
    events = reader.feed(b"HTTP/1.1 200 OK\r\nX: ")
    for _ in range(5):
        events += reader.feed(b"v" * 500)
    assert isinstance(events[-1], ResponseError) and events[-1].reason == "http.origin.head_too_large"


# --- writing -------------------------------------------------------------------------------------


def test_writers() -> None:
    assert status_line(404) == b"HTTP/1.1 404 Not Found\r\n"
    assert status_line(299) == b"HTTP/1.1 299 \r\n"
    assert status_line(200, b"Fine") == b"HTTP/1.1 200 Fine\r\n"
    assert encode_chunk(b"x" * 26) == b"1a\r\n" + b"x" * 26 + b"\r\n"
    assert LAST_CHUNK == b"0\r\n\r\n"
    assert simple_response(403, [(b"content-type", b"text/plain")], b"no\n", close=False) == (
        b"HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain\r\ncontent-length: 3\r\n\r\nno\n"
    )
    assert simple_response(404, (), b"x", close=True, send_body=False) == (
        b"HTTP/1.1 404 Not Found\r\ncontent-length: 1\r\nconnection: close\r\n\r\n"
    )
    assert simple_response(204, (), b"", close=False, keep_alive_header=True) == (
        b"HTTP/1.1 204 No Content\r\nconnection: keep-alive\r\n\r\n"
    )


def test_the_chunk_scan_follows_sizes_across_reads_and_gives_up_on_what_it_cannot_read() -> None:
    from certgate.edge.http1 import _ChunkScan

    body = b"00A;x=" + b"e" * 100 + b"\r\n" + b"\r\n" * 5 + b"\r\n" + b"0\r\nT: 1\r\n\r\n"
    trailers_at = body.index(b"0\r\nT") + 3  # just after the last chunk's line
    for split in (1, 2, 5, 33, len(body)):
        scan = _ChunkScan(1000)  # the body starts at stream offset 1000
        allowed = -2
        for at in range(0, len(body), split):
            allowed = scan.cuts_from(body[at : at + split], 1000 + at)
            if 1000 + at + split <= 1000 + trailers_at - 1:
                assert allowed > 1000 + len(body), (split, at)  # still inside the chunks
        assert allowed == 1000 + trailers_at - 2, split
    # Not a size llhttp accepts (or bytes it never saw): every cut allowed, as without the scan.
    assert _ChunkScan(0).cuts_from(b" 5\r\nhello\r\n", 0) == -1
    assert _ChunkScan(0).cuts_from(b"1" * 17 + b"\r\n", 0) == -1
    assert _ChunkScan(0).cuts_from(b"5\r\nhello\r\n", 10) == -1
