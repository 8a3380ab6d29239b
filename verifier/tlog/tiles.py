"""C2SP tlog-tiles paths and entry bundles (https://c2sp.org/tlog-tiles).

A tile at level ``L`` and index ``N`` holds up to 256 hashes of the tree level ``8*L``, nodes ``256*N ..``; a
partial tile of width ``W`` is served at ``<path>.p/<W>``. Indexes are written in groups of three digits, all but
the last prefixed ``x``: 1234067 -> ``x001/x234/067``. Entry bundles (``tile/entries/N``) are the entries
themselves, each a big-endian uint16 length then the bytes; an entry's leaf hash is ``SHA-256(0x00 || entry)``.
"""
from __future__ import annotations

import re

from ..results import CeadError

TILE_HEIGHT = 8
TILE_WIDTH = 256
_GROUP = re.compile(r"^(x\d{3}/)*\d{3}$")


def encode_index(n: int) -> str:
    digits = f"{n:03d}"
    digits = "0" * (-len(digits) % 3) + digits
    groups = [digits[i:i + 3] for i in range(0, len(digits), 3)]
    return "/".join([f"x{g}" for g in groups[:-1]] + [groups[-1]])


def decode_index(path: str) -> int:
    if not _GROUP.match(path):
        raise CeadError("tlog.tile_path_invalid", f"{path[:60]!r} is not a tile index (e.g. x001/x234/067).")
    groups = path.split("/")
    if len(groups) > 1 and groups[0] == "x000":
        raise CeadError("tlog.tile_path_invalid", "A tile index has no leading zero groups.")
    return int("".join(g.lstrip("x") for g in groups))


def tile_path(level: int, index: int, width: int = TILE_WIDTH) -> str:
    suffix = f".p/{width}" if width < TILE_WIDTH else ""
    return f"tile/{level}/{encode_index(index)}{suffix}"


def entries_path(index: int, width: int = TILE_WIDTH) -> str:
    suffix = f".p/{width}" if width < TILE_WIDTH else ""
    return f"tile/entries/{encode_index(index)}{suffix}"


def parse_tile_path(path: str) -> tuple[str | int, int, int]:
    """``tile/<L>/<N>[.p/<W>]`` or ``tile/entries/<N>[.p/<W>]`` -> (level or "entries", index, width)."""
    match = re.fullmatch(r"tile/(entries|\d{1,2})/((?:x\d{3}/)*\d{3})(?:\.p/(\d{1,3}))?", path)
    if not match:
        raise CeadError("tlog.tile_path_invalid", f"{path[:80]!r} is not a tile path (tile/<L>/<N>[.p/<W>]).")
    width = int(match.group(3)) if match.group(3) else TILE_WIDTH
    if not 1 <= width <= TILE_WIDTH or (match.group(3) and width == TILE_WIDTH):
        raise CeadError("tlog.tile_path_invalid", "A partial tile's width is between 1 and 255.")
    level = match.group(1)
    return (level if level == "entries" else int(level)), decode_index(match.group(2)), width


def bundle(entries: list[bytes]) -> bytes:
    out = bytearray()
    for entry in entries:
        if len(entry) > 0xFFFF:
            raise CeadError("tlog.entry_too_large", "A log entry is at most 65535 bytes.")
        out += len(entry).to_bytes(2, "big") + entry
    return bytes(out)


def unbundle(data: bytes) -> list[bytes]:
    out, i = [], 0
    while i < len(data):
        if i + 2 > len(data):
            raise CeadError("tlog.tile_invalid", "The entry bundle is truncated.")
        n = int.from_bytes(data[i:i + 2], "big")
        if i + 2 + n > len(data):
            raise CeadError("tlog.tile_invalid", "The entry bundle is truncated.")
        out.append(data[i + 2:i + 2 + n])
        i += 2 + n
    return out
