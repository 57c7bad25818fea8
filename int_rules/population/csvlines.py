"""Reading a CSV file line by line, so that every row carries its true line number.

The rule is strict and simple: **one physical line is one row**. A cell may be quoted (to hold
a comma or a quote, doubled), but it may not hold a line break, so a stray ``"`` can never
swallow the lines after it: the line with the unbalanced quote is rejected on its own, and the
next line is read as the next row. Every line of the file is then exactly one of: the header
(line 1), a blank line (counted and skipped), or a row, numbered by its line. Nothing is
inferred ("sniffed") from the data.

The file is read in pieces of bytes (:data:`PIECE_BYTES`). Line breaks are found with numpy and
the lines of a few pieces (a block, :data:`BLOCK_BYTES`) handed to DuckDB as an Arrow table
(``line``, ``text``), where they are split into cells in parallel; the
rare lines that hold a quote are parsed here with :mod:`csv`. The same scan marks the *clean*
lines (only ASCII from ``!`` to ``~``), whose cells need no trimming. A line that is not UTF-8
is kept as a row whose cells are unreadable, so it is rejected with its line number.
``.csv.gz`` files are decompressed as they are read. The next block is read and split on a
thread of its own while DuckDB checks the one before (:func:`read_blocks`, ``ahead``).

A *plain* file (:func:`plain_file`: every quote opening or closing a whole cell, no control
character but the line breaks) needs none of this: DuckDB's own reader splits its lines the
same way, in order, and the caller checks by the counts that it read each line as one row.
"""

from __future__ import annotations

import csv
import gzip
import io
import queue
import threading
import zlib
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal, TypeVar, cast

import numpy as np
import pyarrow as pa

__all__ = ["BATCH_LINES", "BLOCK_BYTES", "PIECE_BYTES", "CsvBlock", "CsvHeaderError",
           "PlainFile", "plain_file", "read_blocks", "read_header", "split_line"]

#: Bytes per block handed to DuckDB: large, because DuckDB splits each block over its threads
#: and a block is one query (at 16 MiB, 46 million event lines took a third longer than at
#: 64 MiB).
BLOCK_BYTES = 1 << 26
#: Bytes read and split into lines at a time, a block being several such pieces: finding the
#: lines of 16 MiB at a time keeps the work in the processor's caches (the 1.9 GB events file
#: of 1.6 million people: 3.1 CPU-s at 16 MiB, 5.7 at 64 MiB).
PIECE_BYTES = 1 << 24
#: Lines per Arrow record batch of a block: the unit DuckDB's threads take from it.
BATCH_LINES = 1 << 16

_NEWLINE = 10
_COMMA = 44
_QUOTE = b'"'


class CsvHeaderError(Exception):
    """The file cannot be read as CSV at all (its header, or its compression)."""


@dataclass(frozen=True)
class CsvBlock:
    """The lines of one block: ``plain`` has every line (``skip`` for blank lines and those in
    ``parsed``), for DuckDB to split on commas, ``clean`` when the line is only ASCII from
    ``!`` to ``~`` (no space, control character or other character: no cell needs trimming)
    and ``brk`` the length of its line break (1, or 2 for ``\r\n``); ``parsed`` the lines
    that hold a quote or are
    not UTF-8, split here (``parts``: their cells; with ``problem`` saying why they could not
    be split properly, the line split on every comma, so the rejected row names its patient)."""

    plain: pa.Table  # line int64, text string (with its line break), skip, clean bool, brk int8
    parsed: pa.Table  # line int64, parts list<string> (NULL when problem), problem string
    blank_lines: int


def _open(path: Path) -> BinaryIO:
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return path.open("rb")


def _reading_error(exc: BaseException) -> str:
    if isinstance(exc, (gzip.BadGzipFile, zlib.error)):
        return f"not a readable gzip file ({exc})"
    if isinstance(exc, EOFError):
        return "the gzip file ends early (truncated)"
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    return str(exc)


def read_header(path: Path) -> list[str]:
    """The header's cells (a UTF-8 byte-order mark dropped). Raises :class:`CsvHeaderError`."""
    try:
        with _open(path) as fh:
            first = fh.readline(1 << 20)
    except (OSError, EOFError, zlib.error) as exc:
        raise CsvHeaderError(_reading_error(exc)) from None
    if not first.strip():
        raise CsvHeaderError("line 1 is empty (expected a header row naming the columns)")
    if first.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise CsvHeaderError("line 1: the file is UTF-16; save it as UTF-8")
    if not first.endswith(b"\n") and len(first) >= 1 << 20:
        raise CsvHeaderError("line 1: the header is longer than 1 MiB")
    try:
        text = first.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CsvHeaderError(f"line 1: not UTF-8 text (byte 0x{first[exc.start]:02x} at "
                             f"column {exc.start + 1}); save the file as UTF-8") from None
    text = text.removeprefix("\ufeff").rstrip("\r\n")
    cells, problem = split_line(text)
    if cells is None:
        raise CsvHeaderError(f"line 1: {problem}")
    return cells


def split_line(text: str) -> tuple[list[str] | None, str | None]:
    """One line's cells, or (None, why) when its quotes do not balance."""
    try:
        rows = list(csv.reader(io.StringIO(text), strict=True))
    except csv.Error as exc:
        return None, f"a quoted cell is not closed on its line ({exc}); a cell may not " \
                     "hold a line break"
    if len(rows) != 1:
        return None, "a quoted cell holds a line break (not allowed: one line is one row)"
    return rows[0], None


@dataclass(frozen=True)
class PlainFile:
    """A CSV file whose rows are all plain (see :func:`plain_file`): ``lines`` in all (the
    header, and a row or a blank line each), ending in ``newline``, with ``commas`` after the
    header (those between cells: not those inside a quoted cell); ``clean`` when every byte
    after the header but the line breaks is ASCII from ``!`` to ``~`` (no cell to trim)."""

    lines: int
    newline: Literal["\n", "\r\n"]
    clean: bool
    commas: int


def plain_file(path: Path, piece_bytes: int | None = None,
               stop: threading.Event | None = None) -> PlainFile | None:
    """The file's lines, when every line after the header is *plain*, else None.

    Plain: every quote opening or closing a whole cell (see :func:`_quoted`:
    ``"P1","a, b",""`` but not ``"a""b"``, ``5"`` or ``"P1" ,``), no control character but
    the line break, and every line breaking the same way (``\n`` throughout, or ``\r\n``
    throughout); the file not compressed. A plain file's lines split into cells exactly as
    :func:`read_blocks` splits them, so a reader that keeps the rows in the file's order
    (DuckDB's own CSV reader) numbers them by their lines: row ``i`` (from 1) is line
    ``i + 1``, provided it read ``lines - 1`` rows (a blank line, which that reader skips,
    leaves it a row short) of ``commas / (cells - 1)`` (a line with too many cells, the extra
    ones empty, that reader takes with them dropped; with too few, it stops). Bytes beyond
    ASCII are not looked at here: text that is not UTF-8 is that reader's error.

    ``stop``, when set, ends the scan at its next piece (returning None: the caller has gone).
    """
    if path.name.lower().endswith(".gz"):
        return None
    piece = piece_bytes or PIECE_BYTES
    breaks = carriage = commas = 0
    clean = True
    quoted = False  # the piece before ended inside a quoted cell
    ends_cr = False  # the piece before ended with "\r"
    last = _NEWLINE
    try:
        with path.open("rb") as fh:
            if not fh.readline(1 << 20).endswith(b"\n"):
                return None  # a header alone with no line break, or one too long: rare
            lines = 1
            while chunk := fh.read(piece):
                if stop is not None and stop.is_set():
                    return None
                raw = np.frombuffer(chunk, dtype=np.uint8)
                n_breaks = int(np.count_nonzero(raw == _NEWLINE))
                commas += int(np.count_nonzero(raw == _COMMA))
                # Most pieces: every byte but the "\n"s from "#" to "~", so no quote, "\r",
                # space, control character or byte beyond ASCII (two cheap tests of the bytes).
                if (not ends_cr and not quoted and int(np.count_nonzero(raw < 35)) == n_breaks
                        and chunk.isascii() and b"\x7f" not in chunk):
                    breaks += n_breaks
                    last = int(raw[-1])
                    continue
                if chunk.endswith(_QUOTE):
                    # A quote's next byte is in its piece (or there is none: the file's end).
                    more = fh.read(1)
                    while more == _QUOTE:
                        chunk += more
                        more = fh.read(1)
                    chunk += more
                    raw = np.frombuffer(chunk, dtype=np.uint8)
                    n_breaks = int(np.count_nonzero(raw == _NEWLINE))
                    commas += int(more == b",")
                crs = np.flatnonzero(raw == 13)
                if quoted or _QUOTE in chunk:
                    found = _quoted(raw, last, quoted, crs)
                    if found is None:
                        return None
                    commas -= found[0]
                    quoted = found[1]
                if ends_cr and raw[0] != _NEWLINE:
                    return None  # the last piece's "\r" was not a line break
                ends_cr = bool(len(crs)) and bool(crs[-1] == len(raw) - 1)
                inside = crs[:-1] if ends_cr else crs
                if np.count_nonzero(raw[inside + 1] != _NEWLINE):
                    return None  # a "\r" that is not a line break
                # Bytes outside "!".."~" (uint8 arithmetic wraps: one comparison, both ends):
                # only the line breaks, or else none below " " but the line breaks.
                odd = int(np.count_nonzero((raw - np.uint8(33)) > 93))
                if odd != n_breaks + len(crs):
                    clean = False
                    if int(np.count_nonzero(raw < 32)) != n_breaks + len(crs):
                        return None  # a tab, or another control character
                breaks += n_breaks
                carriage += len(crs)
                last = int(raw[-1])
    except OSError:
        return None  # the careful reader says why
    if quoted or ends_cr or (carriage and carriage != breaks):
        return None  # a "\r" at the very end; or "\r\n" here, "\n" there
    lines += breaks + (last != _NEWLINE)
    return PlainFile(lines, "\r\n" if carriage else "\n", clean, commas)


def _quoted(raw: np.ndarray, before: int, inside: bool, crs: np.ndarray
            ) -> tuple[int, bool] | None:
    """How many commas of the piece ``raw`` lie inside quoted cells, and whether the piece
    ends inside one, when every quote opens or closes a whole cell; else None. ``before`` is
    the byte before the piece, ``inside`` whether the piece starts inside a quoted cell,
    ``crs`` where its ``\\r`` are; its last byte is no quote unless the file ends there.

    Quotes pair off in turn, as a CSV reader reads them: the first opens a quoted cell, the
    next closes it. An opening quote must follow the end of a cell (a comma or a line break),
    and a closing one be followed by one (a comma, ``\\r``, ``\\n``, or the file's end), so a
    quoted cell is the whole cell and holds no quote: none doubled (``"a""b"``), none inside
    a cell (``a"b``), no space between a quote and its comma. A line break inside a quoted
    cell (a row over two lines) is refused too; a comma inside one is a character of its
    cell, not a separator, and is counted so that the caller can leave it out.

    The bytes are compared as bits, 64 to a word: whether each byte lies inside a quoted cell
    is the parity of the quotes up to it (a prefix XOR within each word, then across them).
    """
    n = len(raw)
    quotes = _words(raw == ord(_QUOTE))
    inner = quotes.copy()
    for shift in (1, 2, 4, 8, 16, 32):
        inner ^= inner << np.uint64(shift)
    odd = (inner >> np.uint64(63)).astype(np.uint8)  # each word's quotes: an odd number
    carry = np.empty(len(inner), dtype=np.uint8)
    carry[0] = inside
    carry[1:] = np.bitwise_xor.accumulate(odd[:-1]) ^ np.uint8(inside)
    inner ^= carry.astype(np.uint64) * _ALL_BITS  # each byte: inside a quoted cell after it
    breaks = _words(raw == _NEWLINE)
    if np.count_nonzero(breaks & inner):
        return None  # a line break inside a quoted cell
    commas = _words(raw == _COMMA)
    ends = breaks | commas
    after_end = ends << np.uint64(1)  # each byte: whether the byte before it ends a cell
    after_end[1:] |= ends[:-1] >> np.uint64(63)
    after_end[0] |= np.uint64(before in (_COMMA, _NEWLINE))
    if np.count_nonzero(quotes & inner & ~after_end):
        return None  # an opening quote that does not start a cell
    if len(crs):
        ends |= _words(raw == 13)
    before_end = ends >> np.uint64(1)  # each byte: whether the byte after it ends a cell
    before_end[:-1] |= ends[1:] << np.uint64(63)
    before_end[(n - 1) // 64] |= np.uint64(1) << np.uint64((n - 1) % 64)  # the file's end
    if np.count_nonzero(quotes & ~inner & ~before_end):
        return None  # a closing quote that does not end a cell
    last = int(inner[(n - 1) // 64] >> np.uint64((n - 1) % 64)) & 1
    return int(_BIT_COUNT[(commas & inner).view(np.uint8)].sum(dtype=np.int64)), bool(last)


def _words(mask: np.ndarray) -> np.ndarray:
    """``mask`` (one bool a byte) as bits, 64 to a word (bit ``i`` of word ``w``: byte
    ``64 * w + i``), the last word padded with zeros."""
    packed = np.packbits(mask, bitorder="little")
    pad = -len(packed) % 8
    if pad:
        packed = np.concatenate([packed, np.zeros(pad, dtype=np.uint8)])
    return packed.view("<u8")


_ALL_BITS = np.uint64(0xFFFF_FFFF_FFFF_FFFF)
#: The number of bits set in each byte value.
_BIT_COUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def read_blocks(path: Path, on_error: Callable[[str], Exception],
                block_bytes: int | None = None, ahead: bool = True
                ) -> Generator[CsvBlock, None, None]:
    """The rows of ``path`` after its header, block by block, numbered by line (header = 1).

    ``on_error(message)`` makes the exception raised when the file cannot be read; blocks are
    about ``block_bytes`` long (default :data:`BLOCK_BYTES`), each made of pieces of at most
    :data:`PIECE_BYTES` read and split into lines one at a time.

    With ``ahead`` (the default) the next block is read and split on a thread of its own
    while the caller works on this one (see :func:`_read_ahead`); the blocks, and any error,
    are the same either way.
    """
    blocks = _blocks(path, on_error, block_bytes or BLOCK_BYTES)
    return _read_ahead(blocks) if ahead else blocks


def _blocks(path: Path, on_error: Callable[[str], Exception],
            block_bytes: int) -> Generator[CsvBlock, None, None]:
    group: list[CsvBlock] = []
    size = 0
    for piece, n in _pieces(path, on_error, min(PIECE_BYTES, block_bytes)):
        group.append(piece)
        size += n
        if size >= block_bytes:
            yield _joined(group)
            group, size = [], 0
    if group:
        yield _joined(group)


_T = TypeVar("_T")
_Handoff = tuple[Literal["item", "end", "error"], object]


def _read_ahead(items: Generator[_T, None, None]) -> Generator[_T, None, None]:
    """``items`` in order, each made on a thread of its own while the caller works on the one
    before: finding a block's lines (numpy, which lets go of the interpreter's lock) overlaps
    DuckDB checking the block before, which on its own keeps the two cores of a small machine
    only partly busy. At most two blocks wait (one made, one being made). An error raised
    making an item is raised here, in its place; when the caller stops early (an error, or
    Ctrl-C), the thread stops at its next hand-over and closes ``items`` (and its file)."""
    handoff: queue.Queue[_Handoff] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def give(what: _Handoff) -> bool:
        while not stop.is_set():
            try:
                handoff.put(what, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in items:
                if not give(("item", item)):
                    return
            give(("end", None))
        except BaseException as exc:  # handed to the caller, raised there
            give(("error", exc))
        finally:
            items.close()

    thread = threading.Thread(target=work, name="int-rules-csv-lines", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = handoff.get()
            if kind == "end":
                return
            if kind == "error":
                assert isinstance(value, BaseException)
                raise value
            yield cast(_T, value)
    finally:
        stop.set()


def _joined(pieces: list[CsvBlock]) -> CsvBlock:
    if len(pieces) == 1:
        return pieces[0]
    return CsvBlock(pa.concat_tables([p.plain for p in pieces]),
                    pa.concat_tables([p.parsed for p in pieces]),
                    sum(p.blank_lines for p in pieces))


def _pieces(path: Path, on_error: Callable[[str], Exception],
            piece_bytes: int) -> Iterator[tuple[CsvBlock, int]]:
    """The file's lines after its header in pieces of about ``piece_bytes``, with each piece's
    size in bytes."""
    try:
        fh = _open(path)
    except OSError as exc:
        raise on_error(_reading_error(exc)) from None
    with fh:
        try:
            fh.readline(1 << 20)  # the header, read by read_header
            next_line = 2
            rest = b""
            while True:
                chunk = fh.read(piece_bytes)
                buf = rest + chunk
                if not buf:
                    return
                if chunk:
                    cut = buf.rfind(b"\n") + 1
                    if cut == 0:
                        rest = buf
                        continue
                    buf, rest = buf[:cut], buf[cut:]
                else:
                    rest = b""
                    if not buf.endswith(b"\n"):
                        buf += b"\n"
                block = _block(buf, next_line)
                next_line += block.plain.num_rows
                yield block, len(buf)
        except (OSError, EOFError, zlib.error) as exc:
            raise on_error(_reading_error(exc)) from None


def _block(buf: bytes, first_line: int) -> CsvBlock:
    """Every line of ``buf`` (which ends with a line break), numbered from ``first_line``."""
    raw = np.frombuffer(buf, dtype=np.uint8)
    # Every byte outside "!".."~" (a space, a control character, a line break, or a byte of a
    # character beyond ASCII): the line breaks are among them, and a line holding any of the
    # others is not clean (uint8 arithmetic wraps, so one comparison finds both ends).
    odd = np.flatnonzero((raw - np.uint8(33)) > 93)
    is_break = raw[odd] == _NEWLINE
    ends = odd[is_break]  # index of each line's "\n"
    starts = np.empty_like(ends)
    starts[0] = 0
    starts[1:] = ends[:-1] + 1
    # A "\r" before the "\n" (CRLF files) is no cell. The byte before a blank line's "\n" is
    # the line break before it, and before the first line's, the block's last byte (a "\n"):
    # neither is a "\r", so no line needs telling apart.
    cr = raw[ends - 1] == 13
    lengths = ends - starts - cr
    numbers = np.arange(first_line, first_line + len(ends), dtype=np.int64)
    blank = lengths == 0
    clean = ~blank
    others = odd[~is_break]
    if len(others):
        # A "\r" just before a line's "\n" is its line break, not a character of the line.
        crlf = (raw[others] == 13) & (raw[others + 1] == _NEWLINE)
        clean[np.searchsorted(ends, others[~crlf])] = False
    special = np.zeros(len(ends), dtype=bool)
    if _QUOTE in buf:
        special[np.searchsorted(ends, np.flatnonzero(raw == ord(_QUOTE)))] = True
    problems: dict[int, str] = {}
    original = buf
    try:
        if len(others) and raw[others].max() >= 128:  # else ASCII: UTF-8 without checking
            buf.decode("utf-8")
    except UnicodeDecodeError:
        # Rare: find the lines that are not UTF-8, and blank their bytes out in a copy (same
        # length, so every offset holds) so the text handed on is valid; they are rejected.
        fixed = bytearray(buf)
        for i in np.flatnonzero(~blank).tolist():
            s, n = int(starts[i]), int(lengths[i])
            try:
                buf[s:s + n].decode("utf-8")
            except UnicodeDecodeError as exc:
                special[i] = True
                problems[i] = (f"not UTF-8 text (byte 0x{buf[s + exc.start]:02x} at column "
                               f"{exc.start + 1}); save the file as UTF-8")
                fixed[s:s + n] = b" " * n
        buf = bytes(fixed)
    # Each line's text runs from its start to the next line's start (its line break is trimmed
    # in SQL), so the column shares the block's bytes: no line is copied.
    offsets = np.empty(len(ends) + 1, dtype=np.int64)
    offsets[:-1] = starts
    offsets[-1] = len(buf)
    text = pa.LargeStringArray.from_buffers(len(ends), pa.py_buffer(offsets.tobytes()),
                                            pa.py_buffer(buf))
    plain = pa.table({"line": pa.array(numbers), "text": text,
                      "skip": pa.array(blank | special), "clean": pa.array(clean & ~special),
                      "brk": pa.array((cr + 1).astype(np.int8))})
    plain = pa.Table.from_batches(plain.to_batches(max_chunksize=BATCH_LINES), plain.schema)
    lines_sp: list[int] = []
    parts: list[list[str] | None] = []
    whys: list[str | None] = []
    for i in np.flatnonzero(special).tolist():
        lines_sp.append(int(numbers[i]))
        s, n = int(starts[i]), int(lengths[i])
        if i in problems:
            # The cells as far as they can be told (so the row names its patient), rejected.
            parts.append(original[s:s + n].decode("utf-8", "replace").split(","))
            whys.append(problems[i])
            continue
        text = buf[s:s + n].decode("utf-8")
        cells, problem = split_line(text)
        parts.append(cells if cells is not None else text.split(","))
        whys.append(problem)
    parsed = pa.table({
        "line": pa.array(lines_sp, pa.int64()),
        "parts": pa.array(parts, pa.list_(pa.string())),
        "problem": pa.array(whys, pa.string()),
    })
    return CsvBlock(plain, parsed, int(blank.sum()))
