"""SQLite database for the service: answer log, feedback and the KB audit trail.

Why SQLite with WAL: one file next to the KB, no server to run, and WAL lets the web
app's readers (export, admin pages) run while a feedback write commits. Each call opens
its own short-lived connection (~50 µs), so no connection is ever shared between the
server's worker threads; `busy_timeout` makes concurrent writers wait instead of failing
with "database is locked" (the load bench writes from 32 clients at once).

Schema changes are migrations numbered by SQLite's `user_version`, applied in order.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from aldlab.errors import UserError

#: Writers wait this long for the lock before giving up (milliseconds).
BUSY_TIMEOUT_MS = 10_000

#: Migration N brings the database from user_version N to N+1. Append only; never edit.
MIGRATIONS: list[str] = [
    # 0 -> 1: answers the server produced, feedback that refers to them, KB edit audit.
    """
    CREATE TABLE answers (
        id            TEXT PRIMARY KEY,
        created_at    TEXT NOT NULL,
        question      TEXT NOT NULL,
        answer        TEXT NOT NULL,
        contexts_json TEXT NOT NULL,
        citations_json TEXT NOT NULL,
        history_json  TEXT NOT NULL,
        confidence    REAL NOT NULL,
        refused       INTEGER NOT NULL,
        model         TEXT NOT NULL,
        used_retrieval INTEGER NOT NULL,
        latency_s     REAL NOT NULL,
        client        TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE feedback (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        answer_id   TEXT NOT NULL UNIQUE REFERENCES answers(id) ON DELETE CASCADE,
        rating      TEXT NOT NULL CHECK (rating IN ('like', 'dislike')),
        comment     TEXT,
        correction  TEXT,
        created_at  TEXT NOT NULL,
        updated_at  TEXT NOT NULL,
        revisions   INTEGER NOT NULL DEFAULT 1
    );
    CREATE INDEX feedback_created ON feedback(created_at);
    CREATE TABLE kb_audit (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        created_at  TEXT NOT NULL,
        actor       TEXT NOT NULL,
        client      TEXT NOT NULL DEFAULT '',
        action      TEXT NOT NULL CHECK (action IN ('add', 'update', 'delete', 'reload')),
        doc_id      TEXT,
        before_json TEXT,
        after_json  TEXT
    );
    CREATE INDEX kb_audit_doc ON kb_audit(doc_id);
    """,
    # 1 -> 2: feedback review queue (pending -> approved/rejected, reviewer, time), the
    # per-answer token that proves who asked (only its hash), and a lean answer log
    # (context ids + KB hash instead of full texts; contexts snapshotted with feedback).
    # Existing feedback becomes 'pending': nobody reviewed it.
    """
    ALTER TABLE answers ADD COLUMN token_hash TEXT;
    ALTER TABLE answers ADD COLUMN context_ids_json TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE answers ADD COLUMN kb_hash TEXT NOT NULL DEFAULT '';
    ALTER TABLE feedback ADD COLUMN status TEXT NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'approved', 'rejected'));
    ALTER TABLE feedback ADD COLUMN reviewer TEXT;
    ALTER TABLE feedback ADD COLUMN reviewed_at TEXT;
    ALTER TABLE feedback ADD COLUMN review_note TEXT;
    ALTER TABLE feedback ADD COLUMN contexts_json TEXT;
    CREATE INDEX feedback_status ON feedback(status, id);
    CREATE INDEX answers_created ON answers(created_at);
    """,
    # 2 -> 3: a decision stands (issue 22). Feedback sent again after an approval or a
    # rejection starts a new item for the same answer instead of reopening the decided one,
    # so `answer_id` is no longer unique; at most one item per answer is pending (the one a
    # resubmission revises). The table is rebuilt (SQLite cannot drop a UNIQUE constraint),
    # keeping its AUTOINCREMENT counter so no feedback id is ever handed out twice.
    """
    CREATE TABLE feedback_v3 (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        answer_id   TEXT NOT NULL REFERENCES answers(id) ON DELETE CASCADE,
        rating      TEXT NOT NULL CHECK (rating IN ('like', 'dislike')),
        comment     TEXT,
        correction  TEXT,
        created_at  TEXT NOT NULL,
        updated_at  TEXT NOT NULL,
        revisions   INTEGER NOT NULL DEFAULT 1,
        status      TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'approved', 'rejected')),
        reviewer    TEXT,
        reviewed_at TEXT,
        review_note TEXT,
        contexts_json TEXT
    );
    INSERT INTO feedback_v3 (id, answer_id, rating, comment, correction, created_at, updated_at, revisions,
                             status, reviewer, reviewed_at, review_note, contexts_json)
        SELECT id, answer_id, rating, comment, correction, created_at, updated_at, revisions,
               status, reviewer, reviewed_at, review_note, contexts_json FROM feedback;
    DELETE FROM sqlite_sequence WHERE name = 'feedback_v3';
    INSERT INTO sqlite_sequence (name, seq) SELECT 'feedback_v3', seq FROM sqlite_sequence WHERE name = 'feedback';
    DROP TABLE feedback;
    ALTER TABLE feedback_v3 RENAME TO feedback;
    CREATE INDEX feedback_created ON feedback(created_at);
    CREATE INDEX feedback_status ON feedback(status, id);
    CREATE INDEX feedback_answer ON feedback(answer_id);
    CREATE UNIQUE INDEX feedback_open ON feedback(answer_id) WHERE status = 'pending';
    """,
    # 3 -> 4: the registry version of the model that answered (issue 23: each piece of
    # feedback is tied to a model). '' for the base model, an adapter given by hand, and
    # every answer logged before this migration (which model wrote those is not known).
    """
    ALTER TABLE answers ADD COLUMN model_version TEXT NOT NULL DEFAULT '';
    """,
    # 4 -> 5: a KB edit and its audit row as one recoverable unit (issue 22: kill -9 left
    # edits without a row). The row is written *pending* (with the hash of the document the
    # edit will write, and the KB directory) before the KB files, and marked done after;
    # start-up settles rows a crash left pending by looking at the KB (`aldlab.serve.kb_admin`).
    # Rows from before this migration were written after their edit: 'done'.
    # A review also records the KB it was decided on and the cited documents changed since
    # the answer (approving an answer made on an older KB needs an explicit confirmation).
    # Feedback snapshots keep passage texts once, by hash, in `passages` (a like's snapshot
    # was up to ~0.6 MB; rated answers are kept for good, so their size matters).
    """
    ALTER TABLE kb_audit ADD COLUMN state TEXT NOT NULL DEFAULT 'done'
        CHECK (state IN ('pending', 'done', 'aborted'));
    ALTER TABLE kb_audit ADD COLUMN after_hash TEXT;
    ALTER TABLE kb_audit ADD COLUMN kb_dir TEXT NOT NULL DEFAULT '';
    CREATE INDEX kb_audit_pending ON kb_audit(state) WHERE state = 'pending';
    ALTER TABLE feedback ADD COLUMN review_kb_hash TEXT;
    ALTER TABLE feedback ADD COLUMN review_kb_changed_json TEXT;
    CREATE TABLE passages (
        hash   TEXT PRIMARY KEY,
        doc_id TEXT NOT NULL,
        title  TEXT NOT NULL,
        text   TEXT NOT NULL
    );
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)


def connect(db_path: str | Path) -> sqlite3.Connection:
    """A new connection with the pragmas every connection needs."""
    conn = sqlite3.connect(str(db_path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA foreign_keys = ON")
    # NORMAL is durable across application crashes in WAL mode (only an OS crash can lose
    # the last commits) and avoids an fsync per feedback row.
    conn.execute("PRAGMA synchronous = NORMAL")
    return conn


@contextlib.contextmanager
def connection(db_path: str | Path) -> Iterator[sqlite3.Connection]:
    """A connection closed on exit (autocommit; use `transaction` for multi-statement writes)."""
    conn = connect(db_path)
    try:
        yield conn
    finally:
        conn.close()


@contextlib.contextmanager
def transaction(db_path: str | Path) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT: takes the write lock up front so writers queue cleanly."""
    with connection(db_path) as conn:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")


def init_db(db_path: str | Path) -> Path:
    """Create the database if needed, switch it to WAL and apply pending migrations."""
    path = Path(db_path).expanduser()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with connection(path) as conn:
            conn.execute("PRAGMA journal_mode = WAL")
            migrate(conn)
    except sqlite3.DatabaseError as exc:
        raise UserError(
            f"SQLite 데이터베이스를 열 수 없습니다: {exc}",
            f"Cannot open the SQLite database: {exc}",
            path=path,
            hint="--db 로 다른 경로를 주거나 파일 권한을 확인하세요 / pass another --db or check permissions",
        ) from exc
    return path


def schema_version(conn: sqlite3.Connection) -> int:
    """The migration level of a database (SQLite `user_version`)."""
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection) -> int:
    """Apply migrations after the current `user_version`, each in its own transaction."""
    current = schema_version(conn)
    if current > SCHEMA_VERSION:
        raise UserError(
            f"이 데이터베이스는 더 새로운 aldlab 버전이 만들었습니다 (스키마 {current}).",
            f"This database was created by a newer aldlab (schema {current} > {SCHEMA_VERSION}).",
            hint="aldlab을 업데이트하세요 / upgrade aldlab",
        )
    for version in range(current, SCHEMA_VERSION):
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Re-check under the write lock: another process may have migrated meanwhile.
            if schema_version(conn) == version:
                for statement in MIGRATIONS[version].split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {version + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return schema_version(conn)
