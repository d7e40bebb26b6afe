import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from parsers.framing import Framer

messages = st.lists(
    st.binary(min_size=1, max_size=200).map(lambda b: b"<13>" + b.replace(b"\n", b" ").replace(b"\r", b" ")),
    min_size=1,
    max_size=20,
)


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


def run(framer: Framer, chunks: list[bytes]) -> list[bytes]:
    out = []
    for chunk in chunks:
        out.extend(framer.feed(chunk))
    return out + framer.close()


@settings(max_examples=300, deadline=None)
@given(msgs=messages, cuts=st.lists(st.integers(min_value=0), max_size=30))
def test_octet_counted_stream_reassembles_exactly_however_it_is_split(msgs, cuts):
    stream = b"".join(b"%d %s" % (len(m), m) for m in msgs)
    framer = Framer()
    assert run(framer, chunked(stream, cuts)) == msgs
    assert framer.mode == "octet" and framer.malformed == 0


# In non-transparent framing LF and NUL both end a frame (RFC 6587 section 3.4.2).
lf_messages = messages.map(lambda ms: [m.replace(b"\x00", b" ") for m in ms])


@settings(max_examples=300, deadline=None)
@given(msgs=lf_messages, cuts=st.lists(st.integers(min_value=0), max_size=30), crlf=st.booleans())
def test_lf_stream_reassembles_exactly_however_it_is_split(msgs, cuts, crlf):
    stream = b"".join(m + (b"\r\n" if crlf else b"\n") for m in msgs)
    framer = Framer()
    assert run(framer, chunked(stream, cuts)) == msgs
    assert framer.mode == "lf"


@settings(max_examples=300, deadline=None)
@given(
    msgs=lf_messages,
    cuts=st.lists(st.integers(min_value=0), max_size=30),
    trailers=st.lists(st.sampled_from([b"\x00", b"\n", b"\r\n", b"\x00\n"]), min_size=1),
)
def test_nul_and_mixed_trailers_end_frames_however_the_stream_is_split(msgs, cuts, trailers):
    """Python's SysLogHandler over TCP ends each message with NUL; some senders add LF after it."""
    stream = b"".join(m + trailers[i % len(trailers)] for i, m in enumerate(msgs))
    framer = Framer()
    assert run(framer, chunked(stream, cuts)) == msgs
    assert framer.mode == "lf" and framer.oversize == 0


def test_an_oversize_nul_terminated_frame_is_cut_and_the_next_one_kept():
    framer = Framer(max_message=480)
    out = framer.feed(b"<13>" + b"x" * 1000 + b"\x00<13>next\x00")
    assert out == [b"<13>" + b"x" * 476, b"<13>next"] and framer.oversize == 1


def test_lines_starting_with_digits_stay_lines_in_lf_mode():
    framer = Framer()
    assert framer.feed(b"<13>first\n2015 Dec 29 10:00:01 host sshd[1]: x\n") == [
        b"<13>first",
        b"2015 Dec 29 10:00:01 host sshd[1]: x",
    ]


def test_file_lines_without_pri_starting_with_digits_are_lf():
    framer = Framer()
    assert framer.feed(b"2015 Dec 29 10:00:01 host sshd[1]: x\n") == [b"2015 Dec 29 10:00:01 host sshd[1]: x"]
    assert framer.mode == "lf"


def test_unterminated_last_line_is_delivered_at_close():
    framer = Framer()
    assert framer.feed(b"<13>a\n<13>b") == [b"<13>a"]
    assert framer.close() == [b"<13>b"]


def test_oversize_octet_frame_is_cut_counted_and_the_stream_stays_in_sync():
    framer = Framer(max_message=10)
    big = b"<13>" + b"x" * 30
    stream = b"%d %s" % (len(big), big) + b"5 <13>y"
    out = [m for i in range(len(stream)) for m in framer.feed(stream[i : i + 1])]
    assert out == [big[:10], b"<13>y"]
    assert framer.oversize == 1
    assert framer.buffered == 0


def test_oversize_line_is_cut_counted_and_the_rest_discarded():
    framer = Framer(max_message=10)
    out = framer.feed(b"<13>" + b"z" * 50)
    out += framer.feed(b"zzz\n<13>ok\n")
    assert out == [b"<13>zzzzzz", b"<13>ok"]
    assert framer.oversize == 1


def test_a_bad_length_in_octet_mode_is_counted_and_read_as_a_line():
    framer = Framer()
    assert framer.feed(b"4 <13>") == [b"<13>"]
    assert framer.feed(b"x12 <13>junk\n3 <1>") == [b"x12 <13>junk", b"<1>"]
    assert framer.malformed == 1


def test_a_frame_cut_short_by_the_peer_is_counted():
    framer = Framer()
    framer.feed(b"20 <13>only")
    assert framer.close() == [] and framer.malformed == 1


@settings(max_examples=1000, deadline=None)
@given(chunks=st.lists(st.binary(max_size=400), max_size=20), limit=st.integers(min_value=1, max_value=300))
def test_arbitrary_bytes_never_raise_and_memory_stays_bounded(chunks, limit):
    framer = Framer(max_message=limit)
    for chunk in chunks:
        for message in framer.feed(chunk):
            assert len(message) <= limit
        assert framer.buffered <= limit + 11
    for message in framer.close():
        assert len(message) <= limit
