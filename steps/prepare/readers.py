"""Input files → rows, streamed: (line number, record | text | RowError, raw preview).

Formats: JSON Lines (.jsonl, .ndjson), JSON (.json: an array of records, an object holding one
array, or an object of records), CSV/TSV with a header row, plain text and Markdown (paragraphs),
Parquet; each of the line formats also gzip-compressed (`.gz`). Line 0 means the whole file.
A file that is too big, not UTF-8 (UTF-16/32 byte-order mark, NUL bytes) or of an unknown type
is one quarantined row.
"""
from __future__ import annotations

import codecs
import csv
import dataclasses
import gzip
import json
import stat
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from prepare.contract import INCOMING_MARKER
from prepare.records import CANONICAL_FIELDS, RowError, json_kind

RAW_PREVIEW_CHARS = 300
UTF8_BOM = b"\xef\xbb\xbf"
FOREIGN_BOMS = ((b"\x00\x00\xfe\xff", "UTF-32 BE"), (b"\xff\xfe\x00\x00", "UTF-32 LE"),
                (b"\xfe\xff", "UTF-16 BE"), (b"\xff\xfe", "UTF-16 LE"))
FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".tsv": "tsv",
           ".txt": "text", ".md": "markdown", ".parquet": "parquet"}
SNIFF_BYTES = 4096
DEFAULT_MAX_ROW_BYTES = 1024 * 1024  # the contract's max_row_mb default; callers pass the setting
SKIP_CHUNK_BYTES = 1 << 20

# A row: (line number, record | paragraph text | RowError, raw text for the quarantine).
Row = tuple[int, "dict[str, Any] | str | RowError", str]


@dataclass(frozen=True)
class InputFile:
    """A file to read, or a part of one (bytes [start, end) beginning at line `first_line`).

    `name` labels it in reports and example sources; `size` is the whole file's.
    """

    path: Path
    name: str
    size: int
    start: int = 0
    end: int | None = None
    first_line: int = 1

    @property
    def compressed(self) -> bool:
        return self.path.suffix.lower() == ".gz"

    @property
    def format(self) -> str | None:
        suffix = Path(self.path.stem).suffix if self.compressed else self.path.suffix
        kind = FORMATS.get(suffix.lower())
        return None if kind == "parquet" and self.compressed else kind


def discover(roots: list[Path]) -> list[InputFile]:
    """Every file under the roots (a root may be a file), sorted by name; names are relative to their root.

    With several roots, names are prefixed by the root's own name so they stay distinct. The incoming prefix's
    marker (INCOMING_MARKER) is not data and is skipped.
    """
    files: list[InputFile] = []
    for root in roots:
        prefix = f"{root.name}/" if len(roots) > 1 else ""
        if root.is_file():
            files.append(InputFile(root, root.name, root.stat().st_size))
            continue
        check_regular(root)
        for path in root.rglob("*"):
            if path.is_file() and path.name != INCOMING_MARKER:
                files.append(InputFile(path, prefix + path.relative_to(root).as_posix(), path.stat().st_size))
            elif not path.is_dir():
                check_regular(path)
    return sorted(files, key=lambda item: item.name)


SPECIAL_FILES = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
                 (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


def check_regular(path: Path) -> None:
    """Refuse an input that is no file or folder (reading a FIFO would wait forever): ValueError naming it."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        if path.is_symlink():
            raise ValueError(f"{path}: a broken symbolic link in the input; remove it or point it at a data file") \
                from None
        return  # a missing root: the caller says the input holds no files
    for test, kind in SPECIAL_FILES:
        if test(mode):
            raise ValueError(f"{path} is {kind}, not a data file: prepare reads regular files and folders; copy "
                             "the data to a file and give that")


@dataclass(frozen=True)
class LongLine:
    """A line over the row limit, never held whole: its size in bytes (line break included) and first bytes."""

    size: int
    head: bytes


def too_large(size: int, max_row_bytes: int) -> RowError:
    return RowError("row_too_large", f"row is {size:,} bytes, over the limit of {max_row_bytes:,} (checked before "
                                     "parsing: split it, or raise the max row size)")


def bounded_lines(handle: IO[bytes], max_row_bytes: int) -> Iterator[bytes | LongLine]:
    """The lines of a file; a line longer than `max_row_bytes` comes as a LongLine, read past in chunks, so a
    60 MB line costs 1 MB of memory, not 60."""
    readline = handle.readline
    while raw := readline(max_row_bytes + 1):
        if len(raw) <= max_row_bytes or raw.endswith(b"\n"):
            yield raw
            continue
        size, head = len(raw), raw[:RAW_PREVIEW_CHARS * 4]
        while not raw.endswith(b"\n"):
            raw = readline(SKIP_CHUNK_BYTES)
            if not raw:
                break
            size += len(raw)
        yield LongLine(size, head)


def preview(text: str | bytes) -> str:
    """At most RAW_PREVIEW_CHARS of a row's raw text (bytes are decoded, bad bytes replaced)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace").rstrip("\r\n")
    return text if len(text) <= RAW_PREVIEW_CHARS else text[:RAW_PREVIEW_CHARS] + "..."


def _open(file: InputFile) -> IO[bytes]:
    return gzip.open(file.path, "rb") if file.compressed else file.path.open("rb")


def encoding_problem(head: bytes) -> str | None:
    """Why a file's first bytes show it is not UTF-8 text, or None."""
    for bom, name in FOREIGN_BOMS:
        if head.startswith(bom):
            return f"file is {name} (byte-order mark {bom.hex(' ').upper()}); save it as UTF-8"
    if b"\x00" in head:
        return "file holds NUL bytes: not UTF-8 text (UTF-16 without a byte-order mark, or a binary file)"
    return None


def _decode_line(line_no: int, raw: bytes) -> tuple[str | RowError, str]:
    """A line's text (no line break, a file's leading UTF-8 BOM dropped) or what is wrong with it, and its preview."""
    if raw.endswith(b"\n"):
        raw = raw[:-2] if raw.endswith(b"\r\n") else raw[:-1]
    if raw.startswith(UTF8_BOM):
        if line_no == 1:
            raw = raw[3:]
        else:
            return RowError("stray_bom", "line starts with a byte-order mark (U+FEFF), usually left by concatenating "
                                         "files: remove it"), preview(raw[3:].decode("utf-8", errors="replace"))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        error = RowError("invalid_utf8", f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})")
        return error, preview(raw.decode("utf-8", errors="replace"))
    return text, text


def decoded_lines(handle: Iterable[bytes | LongLine], first_line: int = 1,
                  max_row_bytes: int = DEFAULT_MAX_ROW_BYTES) -> Iterator[tuple[int, str | RowError, str]]:
    """(line number, text or a RowError, raw preview) for every line (a LongLine: row_too_large)."""
    for line_no, raw in enumerate(handle, start=first_line):
        if isinstance(raw, LongLine):
            yield line_no, too_large(raw.size, max_row_bytes), preview(raw.head)
            continue
        text, shown = _decode_line(line_no, raw)
        yield line_no, text, shown


def _jsonl_row(line_no: int, raw: bytes) -> Iterator[Row]:
    """The careful reading of one JSONL line: blank (no row), a record, or a located error."""
    text, shown = _decode_line(line_no, raw)
    if isinstance(text, RowError):
        yield line_no, text, shown
        return
    if not text or text.isspace():
        return
    try:
        record = json.loads(text)
    except json.JSONDecodeError as exc:
        yield line_no, RowError("malformed_json", f"not valid JSON: {exc.msg} (column {exc.colno})"), preview(text)
        return
    if type(record) is dict:
        yield line_no, record, text
    else:
        yield line_no, RowError("not_an_object", f"expected a JSON object, got {json_kind(record)}"), preview(text)


_scan_json = json.JSONDecoder().scan_once


def jsonl_rows(handle: Iterable[bytes | LongLine], first_line: int = 1,
               max_row_bytes: int = DEFAULT_MAX_ROW_BYTES) -> Iterator[Row]:
    """JSON Lines rows; a well-formed object line takes the short way, anything else the careful one.

    The short way parses from the opening brace (what json.loads does after its whitespace check) and
    accepts only a line break after the object; any other ending goes the careful way, json.loads.
    A line over the row limit (a LongLine from `bounded_lines`) is row_too_large, never parsed.
    """
    scan = _scan_json
    for line_no, raw in enumerate(handle, start=first_line):
        if isinstance(raw, LongLine):
            yield line_no, too_large(raw.size, max_row_bytes), preview(raw.head)
            continue
        if raw.startswith(b"{"):
            try:
                text = raw.decode("utf-8")
                record, end = scan(text, 0)
            except (ValueError, StopIteration):
                record, end = None, 0
            if type(record) is dict and (end == len(text) or text[end:] in ("\n", "\r\n")):
                yield line_no, record, text
                continue
        yield from _jsonl_row(line_no, raw)


def _skip(text: str, position: int, chars: str) -> int:
    while position < len(text) and text[position] in chars:
        position += 1
    return position


def _elements(text: str, start: int, is_object: bool) -> Iterator[tuple[int, int, Any]]:
    """(start, end, value) of each element of the array or object whose bracket is at `start`."""
    decoder = json.JSONDecoder()
    position = start + 1
    closing = "}" if is_object else "]"
    while True:
        position = _skip(text, position, " \t\r\n,")
        if position >= len(text) or text[position] == closing:
            return
        if is_object:
            _, position = decoder.raw_decode(text, position)
            position = _skip(text, position, " \t\r\n:")
        value, end = decoder.raw_decode(text, position)
        yield position, end, value
        position = end


JSON_WHITESPACE = " \t\n\r"
JSON_CHUNK_BYTES = 1 << 20


class _NotStreamable(Exception):
    """The document is not a well-formed array of values (or one-key object holding one): read it whole."""


class _JsonText:
    """A JSON document's text, decoded a chunk at a time; `line` is the line number at `position`."""

    def __init__(self, handle: IO[bytes]) -> None:
        self.handle = handle
        self.decoder = codecs.getincrementaldecoder("utf-8-sig")()
        self.scan = json.JSONDecoder().raw_decode
        self.text, self.position, self.line, self.ended = "", 0, 1, False

    def _fill(self) -> bool:
        """Read on (dropping what was read); False at the end of the file."""
        if self.ended:
            return False
        data = self.handle.read(JSON_CHUNK_BYTES)
        try:
            more = self.decoder.decode(data, final=not data)
        except UnicodeDecodeError as error:
            raise _NotStreamable from error
        self.text, self.position = self.text[self.position:] + more, 0
        self.ended = not data
        return True

    def _advance(self, to: int) -> None:
        self.line += self.text.count("\n", self.position, to)
        self.position = to

    def peek(self) -> str:
        """The next character that is not JSON whitespace ("" at the end)."""
        while True:
            end = len(self.text)
            at = self.position
            while at < end and self.text[at] in JSON_WHITESPACE:
                at += 1
            self._advance(at)
            if at < end or not self._fill():
                return self.text[at] if at < len(self.text) else ""

    def expect(self, char: str) -> None:
        if self.peek() != char:
            raise _NotStreamable
        self._advance(self.position + 1)

    def value(self) -> tuple[Any, str]:
        """The next value and its source text (a value ending the text read so far is decoded again with more)."""
        self.peek()
        while True:
            try:
                value, end = self.scan(self.text, self.position)
            except json.JSONDecodeError:
                end = None
            if end is not None and (end < len(self.text) or self.ended):
                source = self.text[self.position:end]
                self._advance(end)
                return value, source
            if not self._fill():
                raise _NotStreamable


def _streamed_elements(open_file: Callable[[], IO[bytes]]) -> Iterator[tuple[int, Any, str]]:
    """(line, value, source text) of the elements of a top-level array or of the array a one-key object holds
    (its key not a record field); _NotStreamable for anything else, or anything that is not valid JSON."""
    with open_file() as handle:
        text = _JsonText(handle)
        wrapped = text.peek() == "{"
        if wrapped:
            text.expect("{")
            key, _ = text.value()
            if not isinstance(key, str) or key.lower() in CANONICAL_FIELDS:
                raise _NotStreamable
            text.expect(":")
        text.expect("[")
        if text.peek() == "]":
            text.expect("]")
        else:
            while True:
                text.peek()
                line = text.line
                value, source = text.value()
                yield line, value, source
                if text.peek() == "]":
                    text.expect("]")
                    break
                text.expect(",")
        if wrapped:
            text.expect("}")
        if text.peek() != "":
            raise _NotStreamable


def json_rows(open_file: Callable[[], IO[bytes]], max_row_bytes: int = DEFAULT_MAX_ROW_BYTES) -> Iterator[Row]:
    """A .json document: an array of records, an object holding one array of records, or an object of records.

    Arrays (also one held by a one-key object) are streamed: read once to check the whole document, then
    again for its rows, an element at a time. Any other document (an object of records, a single record)
    and any document that is not valid JSON is read whole, for the error json reports.
    """
    try:
        for _ in _streamed_elements(open_file):
            pass
    except _NotStreamable:
        with open_file() as handle:
            yield from _whole_json_rows(handle, max_row_bytes)
        return
    for line_no, element, source in _streamed_elements(open_file):
        raw = preview(source)
        if len(source) > max_row_bytes and utf8_size(source) > max_row_bytes:
            yield line_no, too_large(utf8_size(source), max_row_bytes), raw
        elif isinstance(element, dict):
            yield line_no, element, raw
        else:
            yield line_no, RowError("not_an_object", f"expected a JSON object, got {json_kind(element)}"), raw


def utf8_size(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8"))


def _whole_json_rows(handle: IO[bytes], max_row_bytes: int = DEFAULT_MAX_ROW_BYTES) -> Iterator[Row]:
    """A .json document read whole (the general path of `json_rows`)."""
    data = handle.read()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line_no = data.count(b"\n", 0, exc.start) + 1
        yield line_no, RowError("invalid_utf8", f"not valid UTF-8 (byte 0x{data[exc.start]:02x})"), ""
        return
    if not text.strip():
        return
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        yield exc.lineno, RowError("malformed_json", f"not valid JSON: {exc.msg} (column {exc.colno})"), ""
        return
    start = _skip(text, 0, " \t\r\n")
    if isinstance(document, dict):
        only = next(iter(document.items())) if len(document) == 1 else None
        if only and isinstance(only[1], list) and only[0].lower() not in CANONICAL_FIELDS:  # {"data": [records]}
            start = _inner_array_start(text, start)
            elements = _elements(text, start, is_object=False)
        elif document and all(isinstance(value, dict) for value in document.values()):
            elements = _elements(text, start, is_object=True)
        elif len(text) > max_row_bytes and utf8_size(text) > max_row_bytes:
            yield 1, too_large(utf8_size(text), max_row_bytes), preview(text)
            return
        else:
            yield 1, document, preview(text)
            return
    elif isinstance(document, list):
        elements = _elements(text, start, is_object=False)
    else:
        yield 1, RowError("not_an_array", f"expected a JSON array or object of records, got {json_kind(document)}"), ""
        return
    lines_before, counted_to = 1, 0
    for position, end, element in elements:
        lines_before += text.count("\n", counted_to, position)
        counted_to = position
        raw = preview(text[position:end])
        if end - position > max_row_bytes and utf8_size(text[position:end]) > max_row_bytes:
            yield lines_before, too_large(utf8_size(text[position:end]), max_row_bytes), raw
        elif isinstance(element, dict):
            yield lines_before, element, raw
        else:
            yield lines_before, RowError("not_an_object", f"expected a JSON object, got {json_kind(element)}"), raw


def _inner_array_start(text: str, object_start: int) -> int:
    """Where the array value of a one-key object starts."""
    decoder = json.JSONDecoder()
    position = _skip(text, object_start + 1, " \t\r\n")
    _, position = decoder.raw_decode(text, position)
    return _skip(text, position, " \t\r\n:")


def delimited_rows(handle: IO[bytes], delimiter: str, max_row_bytes: int = DEFAULT_MAX_ROW_BYTES) -> Iterator[Row]:
    """CSV/TSV with a header row; each later non-blank row becomes a record keyed by the header."""
    errors: list[Row] = []
    started: list[int | None] = [None]
    texts: dict[int, str] = {}

    def feed() -> Iterator[str]:
        for line_no, text, raw in decoded_lines(bounded_lines(handle, max_row_bytes), max_row_bytes=max_row_bytes):
            if isinstance(text, RowError):
                errors.append((line_no, text, raw))
                continue
            if started[0] is None:
                started[0] = line_no
                texts.clear()
            texts[line_no] = text
            yield text + "\n"

    reader = csv.reader(feed(), delimiter=delimiter, strict=True)
    header: list[str] | None = None
    while True:
        started[0] = None
        try:
            cells = next(reader)
            problem = None
        except StopIteration:
            yield from errors
            return
        except csv.Error as exc:
            cells, problem = [], f"unreadable row: {exc}"
        yield from errors
        errors.clear()
        line_no = started[0] or 0
        raw = preview("\n".join(texts.values()))
        if problem:
            yield line_no, RowError("malformed_row", problem), raw
        elif not any(cell.strip() for cell in cells):
            continue
        elif header is None:
            header = [cell.strip() for cell in cells]
        elif len(cells) != len(header):
            yield line_no, RowError("malformed_row", f"row has {len(cells)} fields, the header has {len(header)}"), raw
        else:
            yield line_no, dict(zip(header, cells)), raw


def text_rows(handle: IO[bytes], markdown: bool, max_row_bytes: int = DEFAULT_MAX_ROW_BYTES) -> Iterator[Row]:
    """Paragraphs (blocks between blank lines; Markdown headings dropped) located by their first line; a
    paragraph over the row limit is row_too_large (its lines are not kept past the limit)."""
    block: list[tuple[int, str]] = []
    size = [0, 0]  # bytes of the block: kept, seen

    def paragraph() -> Iterator[Row]:
        if size[1] > max_row_bytes:
            yield block[0][0], too_large(size[1], max_row_bytes), preview(block[0][1])
        elif block:
            text = " ".join(line.strip() for _, line in block)
            yield block[0][0], text, preview(text)
        block.clear()
        size[:] = [0, 0]

    for line_no, text, raw in decoded_lines(bounded_lines(handle, max_row_bytes), max_row_bytes=max_row_bytes):
        if isinstance(text, RowError):
            yield from paragraph()
            yield line_no, text, raw
        elif not text.strip() or (markdown and text.lstrip().startswith("#")):
            yield from paragraph()
        else:
            size[1] += utf8_size(text) + 1
            if not block or size[1] <= max_row_bytes:
                block.append((line_no, text))
    yield from paragraph()


def parquet_rows(path: Path, batch_rows: int = 8192, max_row_bytes: int = DEFAULT_MAX_ROW_BYTES) -> Iterator[Row]:
    """Parquet rows as records; the row number (from 1) stands for the line."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        yield 0, RowError("unsupported_file", "reading Parquet needs pyarrow, which this environment lacks"), ""
        return
    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for unreadable files
        yield 0, RowError("malformed_file", f"not a readable Parquet file: {exc}"), ""
        return
    row_no = 0
    for batch in parquet.iter_batches(batch_size=batch_rows):
        for record in batch.to_pylist():
            row_no += 1
            size = sum(utf8_size(value) if isinstance(value, str) else len(str(value)) for value in record.values())
            shown = preview(json.dumps(record, ensure_ascii=False, default=str)[:RAW_PREVIEW_CHARS * 2])
            yield row_no, too_large(size, max_row_bytes) if size > max_row_bytes else record, shown


def _byte_range(handle: IO[bytes], start: int, end: int, max_row_bytes: int) -> Iterator[bytes | LongLine]:
    """The lines of bytes [start, end) of a file (both on line boundaries), long ones as LongLine."""
    handle.seek(start)
    position = start
    for raw in bounded_lines(handle, max_row_bytes):
        if position >= end:
            return
        position += raw.size if isinstance(raw, LongLine) else len(raw)
        yield raw


def jsonl_file_rows(file: InputFile, max_row_bytes: int = DEFAULT_MAX_ROW_BYTES) -> Iterator[Row]:
    """The JSON Lines rows of a file, or of a part of one, without the whole-file checks of `read_rows`."""
    with file.path.open("rb") as handle:
        if file.end is None:
            yield from jsonl_rows(bounded_lines(handle, max_row_bytes), max_row_bytes=max_row_bytes)
        else:
            yield from jsonl_rows(_byte_range(handle, file.start, file.end, max_row_bytes), file.first_line,
                                  max_row_bytes)


def split_large(files: list[InputFile], part_bytes: int, max_file_bytes: int,
                mapper: Callable[..., Iterable[int]] = map) -> list[InputFile]:
    """Uncompressed JSONL files bigger than `part_bytes` cut at line boundaries into parts, read in parallel.

    `mapper` (map, or a process pool's) counts the lines of the parts to number each part's first line.
    """
    parts: list[InputFile] = []
    for file in files:
        if file.format != "jsonl" or file.compressed or not part_bytes < file.size <= max_file_bytes:
            parts.append(file)
            continue
        with file.path.open("rb") as handle:
            if encoding_problem(handle.read(SNIFF_BYTES)):
                parts.append(file)
                continue
            start = 0
            while start < file.size:
                handle.seek(min(start + part_bytes, file.size))
                if handle.tell() < file.size:
                    while (piece := handle.readline(SKIP_CHUNK_BYTES)) and not piece.endswith(b"\n"):
                        pass  # to the end of the line, a chunk at a time (a line may be 60 MB)
                end = handle.tell()
                parts.append(InputFile(file.path, file.name, file.size, start, end, 0))  # first line: below
                start = end
    cut = [part for part in parts if part.end is not None]
    lines = dict(zip(cut, mapper(count_lines, [part.path for part in cut], [part.start for part in cut],
                                 [part.end for part in cut])))
    numbered, next_line = [], 1
    for part in parts:
        if part.end is None:
            numbered.append(part)
            continue
        next_line = 1 if part.start == 0 else next_line
        numbered.append(dataclasses.replace(part, first_line=next_line))
        next_line += lines[part]
    return numbered


def count_lines(path: Path, start: int, end: int) -> int:
    """Line breaks in bytes [start, end) of a file."""
    count = 0
    with path.open("rb") as handle:
        handle.seek(start)
        buffer = bytearray(1 << 20)
        remaining = end - start
        while remaining:
            size = handle.readinto(memoryview(buffer)[:min(remaining, len(buffer))])
            if not size:
                break
            count += buffer.count(b"\n", 0, size)
            remaining -= size
    return count


def read_rows(file: InputFile, max_file_bytes: int, max_row_bytes: int = DEFAULT_MAX_ROW_BYTES) -> Iterator[Row]:
    """Every row of one file (or part of a file); whole-file problems are one row at line 0; a row over
    `max_row_bytes` is row_too_large, found while reading (before parsing or tokenizing it)."""
    kind = file.format
    if kind is None:
        supported = ", ".join(sorted(FORMATS)) + " (and .gz of the text formats)"
        yield 0, RowError("unsupported_file", f"unsupported file type '{''.join(file.path.suffixes) or file.name}' "
                                              f"(supported: {supported})"), ""
        return
    if file.size > max_file_bytes:
        yield 0, RowError("file_too_large", f"file is {file.size:,} bytes, over the limit of {max_file_bytes:,} "
                                            "(split it, or raise the max file size)"), ""
        return
    if kind == "parquet":
        yield from parquet_rows(file.path, max_row_bytes=max_row_bytes)
        return
    try:
        with _open(file) as handle:
            if file.end is not None:
                yield from jsonl_rows(_byte_range(handle, file.start, file.end, max_row_bytes), file.first_line,
                                      max_row_bytes)
                return
            head = handle.peek(SNIFF_BYTES)[:SNIFF_BYTES] if hasattr(handle, "peek") else b""
            problem = encoding_problem(head)
            if problem:
                yield 0, RowError("wrong_encoding", problem), ""
                return
            if kind == "jsonl":
                yield from jsonl_rows(bounded_lines(handle, max_row_bytes), max_row_bytes=max_row_bytes)
            elif kind == "json":
                yield from json_rows(lambda: _open(file), max_row_bytes)
            elif kind in ("csv", "tsv"):
                yield from delimited_rows(handle, "," if kind == "csv" else "\t", max_row_bytes)
            else:
                yield from text_rows(handle, kind == "markdown", max_row_bytes)
    except (OSError, EOFError, zlib.error) as exc:
        yield 0, RowError("malformed_file", f"cannot read the file: {exc}"), ""
