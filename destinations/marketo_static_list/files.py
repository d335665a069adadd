"""One bulk import file of a static list run: the joining users' emails as CSV (imported
with listId, which adds them to the list), and the leaving users kept beside it (removed
by lead id once the file is imported: a removal is never an import)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from destinations.marketo.bulk import MAX_FILE_BYTES, csv_line

# A leaving user held beside the file counts as this many bytes of it, so a file of
# removals is bounded as one of imports is.
LEAVER_BYTES = 64


class ListImportFile:
    """Filled by the engine (add_many), cut at MAX_FILE_BYTES; addresses Marketo would refuse
    are kept in `invalid`, not written."""

    __slots__ = ("_body", "_check", "_max_bytes", "_size", "invalid", "leavers", "rows")

    def __init__(self, *, check: Callable[[str], str] | None = None, max_bytes: int | None = None) -> None:
        self._max_bytes = max_bytes or MAX_FILE_BYTES
        self._check = check
        self._body: list[bytes] | None = [csv_line(["email"])]
        self._size = len(self._body[0])
        self.rows = 0
        self.invalid: list[tuple[str, str]] = []
        # email -> the lead id the synced state keeps for it ("" when it has none).
        self.leavers: dict[str, str] = {}

    def add_many(self, rows: Sequence[tuple[str, bool]], remote_ids: Mapping[str, str] | None = None) -> int:
        """Take rows in order until one would not fit; returns how many were taken."""
        assert self._body is not None, "the file was already taken"
        remote_ids = remote_ids or {}
        taken = 0
        for email, is_member in rows:
            problem = self._check(email) if self._check else ""
            if problem:
                self.invalid.append((email, problem))
                taken += 1
                continue
            line = csv_line([email]) if is_member else b""
            size = len(line) if is_member else LEAVER_BYTES
            if (self.rows or self.leavers) and self._size + size > self._max_bytes:
                break
            if is_member:
                self._body.append(line)
                self.rows += 1
            else:
                self.leavers[email] = remote_ids.get(email, "")
            self._size += size
            taken += 1
        return taken

    def take(self) -> bytes:
        """The CSV's bytes; the buffer is released."""
        assert self._body is not None, "the file was already taken"
        content, self._body = b"".join(self._body), None
        return content
