"""Safe file I/O shared by every stage.

Every artefact is written to a temp file in the same directory and renamed, so a crash
or a concurrent reader never sees a half-written file; the KB and feedback stay intact.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from aldlab.errors import UserError


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` atomically (temp file + fsync + rename)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        # mkstemp creates 0600 files; give artefacts the permissions a plain open() would.
        os.chmod(tmp, 0o666 & ~_current_umask())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def staged_directory(output_dir: str | Path, *, owned: Sequence[str], marker: str = "manifest.json") -> Iterator[Path]:
    """Yield a temp dir next to `output_dir`; on success it replaces `output_dir` in one rename.

    The directory-level twin of `atomic_write_bytes`: a stage that writes several files
    (train.jsonl, eval.jsonl, stats.json, ...) never leaves a mix of old and new ones, and a
    failed run leaves the previous output untouched. An existing non-empty directory is
    replaced only when it looks like this stage's output (it has `marker`, or holds only
    `owned` names); a directory of other files is refused instead of deleted.
    """
    output_dir = Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise UserError("출력 경로가 파일입니다.", "Output path is a file, not a directory.", path=output_dir)
    if output_dir.is_dir() and any(output_dir.iterdir()) and not (output_dir / marker).exists():
        foreign = sorted(p.name for p in output_dir.iterdir() if p.name not in owned)
        if foreign:
            raise UserError(
                "출력 디렉터리에 다른 파일이 있어 덮어쓰지 않습니다.",
                f"Output directory holds other files ({', '.join(foreign[:3])}); not overwriting.",
                path=output_dir,
                hint="빈 디렉터리나 새 경로를 --output 으로 주세요 / pass an empty or new --output",
            )
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.tmp-", dir=output_dir.parent))
    try:
        yield tmp
        make_readable(tmp)
        backup = None
        if output_dir.exists():
            backup = output_dir.parent / f".{output_dir.name}.old-{os.getpid()}"
            os.replace(output_dir, backup)
        os.replace(tmp, output_dir)
        if backup is not None:
            shutil.rmtree(backup, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def make_readable(directory: Path) -> None:
    """mkdtemp/mkstemp create 0700/0600; an artefact directory is meant to be read by others
    (the umask applies, as for a plain mkdir/open)."""
    umask = _current_umask()
    directory.chmod(0o777 & ~umask)
    for path in directory.iterdir():
        path.chmod(0o666 & ~umask)


def atomic_write_text(path: str | Path, text: str) -> None:
    """UTF-8 text variant of `atomic_write_bytes`."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """Pretty, UTF-8 (Korean kept readable) JSON written atomically."""
    atomic_write_text(path, json.dumps(obj, ensure_ascii=False, indent=2) + "\n")


def dumps_jsonl(rows: Iterable[dict[str, Any]]) -> str:
    """Serialise rows as JSON Lines with Korean kept readable."""
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def atomic_write_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> None:
    """Write JSON Lines atomically."""
    atomic_write_text(path, dumps_jsonl(rows))


def lone_surrogate_at(value: Any, where: str = "") -> str | None:
    """Where in a parsed JSON value a string (or key) is not valid Unicode, or None.

    JSON may spell a lone surrogate ("\\ud800") and Python decodes it; such text cannot be
    written as UTF-8 (a KB file, SQLite, a hash), so it fails far from where it came in.
    """
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return where or "body"
        return None
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, list):
        items = list(enumerate(value))
    else:
        return None
    for key, item in items:
        name = str(key).encode("utf-8", "backslashreplace").decode("utf-8")
        path = f"{where}.{name}" if where else name
        found = lone_surrogate_at(key, path) or lone_surrogate_at(item, path)
        if found:
            return found
    return None


def _valid_unicode(value: Any, path: Path, line: int | None = None) -> Any:
    """`value`, or a UserError naming the field that holds a lone surrogate."""
    where = lone_surrogate_at(value, "")
    if where is not None:
        raise UserError(
            f"{where}에 올바르지 않은 문자(짝 없는 서로게이트, 예: \\ud800)가 있습니다.",
            f"{where} contains invalid characters (a lone surrogate such as \\ud800).",
            path=path,
            line=line,
            hint="그 값을 고치거나 지우세요 / fix or remove that value",
        )
    return value


def read_json(path: str | Path) -> Any:
    """Read a JSON file; malformed JSON, or text that is not valid Unicode, becomes a
    UserError naming the line or the field."""
    p = Path(path)
    if not p.exists():
        raise UserError("파일이 없습니다.", "File not found.", path=p, hint="경로를 확인하세요 / check the path")
    try:
        return _valid_unicode(json.loads(p.read_text(encoding="utf-8")), p)
    except UnicodeDecodeError as exc:
        raise UserError("UTF-8 파일이 아닙니다.", f"Not UTF-8 text: {exc}", path=p) from exc
    except json.JSONDecodeError as exc:
        raise UserError(
            f"JSON 형식 오류 ({exc.msg}, {exc.colno}열).",
            f"Invalid JSON ({exc.msg}, column {exc.colno}).",
            path=p,
            line=exc.lineno,
            hint="해당 줄의 쉼표/따옴표/괄호를 확인하세요 / check commas, quotes and brackets on that line",
        ) from exc


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line_number, object) for each non-blank line; errors name file and line."""
    p = Path(path)
    if not p.exists():
        raise UserError("파일이 없습니다.", "File not found.", path=p, hint="경로를 확인하세요 / check the path")
    with p.open(encoding="utf-8") as fh:
        for lineno, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise UserError(
                    f"JSON 형식 오류 ({exc.msg}).",
                    f"Invalid JSON line ({exc.msg}).",
                    path=p,
                    line=lineno,
                    hint="한 줄에 JSON 객체 하나 / one JSON object per line",
                ) from exc
            if not isinstance(obj, dict):
                raise UserError(
                    "각 줄은 JSON 객체여야 합니다.", "Each line must be a JSON object.", path=p, line=lineno
                )
            yield lineno, _valid_unicode(obj, p, lineno)


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """All objects of a JSON Lines file."""
    return [obj for _, obj in iter_jsonl(path)]


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, streamed (used in manifests and cache keys)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_tree(path: str | Path) -> str | None:
    """Hex sha256 of a file, or of a directory's files (relative names + contents); None if absent.

    Lock files (`file_lock`'s `<path>.lock`) and in-flight temp files (`atomic_write_bytes`'s
    `.<name>.*.tmp`) are skipped: they come and go with every write and say nothing about
    the content, and counting them made an unchanged input look changed.
    """
    root = Path(path)
    if root.is_file():
        return sha256_file(root)
    if not root.is_dir():
        return None
    parts = [
        f"{p.relative_to(root).as_posix()}:{sha256_file(p)}"
        for p in sorted(root.rglob("*"))
        if p.is_file() and not _is_scratch(p)
    ]
    return sha256_text("\n".join(parts))


def _is_scratch(path: Path) -> bool:
    return path.name.endswith(".lock") or (path.name.startswith(".") and path.name.endswith(".tmp"))


def sha256_text(text: str) -> str:
    """Hex sha256 of a UTF-8 string."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@contextlib.contextmanager
def file_lock(path: str | Path) -> Iterator[None]:
    """Exclusive advisory lock on `<path>.lock`, so concurrent writers of the KB queue up."""
    lock_path = Path(f"{path}.lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
