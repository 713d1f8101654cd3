"""Crash test of `aldlab serve`: kill -9 under load loses no acknowledged write (issue 22).

    python bench/serve_crash.py                           # 16 clients, 10 kills in 60 s (+ 15 s without kills)
    nice -n 19 python bench/serve_crash.py --kills 20 --duration 90 --seed 7

The real service runs as a separate process (this file with `_serve`: `create_app` around
`aldlab.serve.fake.FakeAssistant` over a tiny KB, under uvicorn), so it can be killed with
SIGKILL mid-request, mid-commit or mid-KB-write. While N clients ask and rate the answers
and one admin client adds, edits (a third of them move the document to another topic),
deletes and imports KB documents (each import declares a new keyword, some a new topic),
the server is killed at random moments and restarted at once on the same KB and database;
each start runs the audit repair (`KbAdmin.repair_audit`). The last kill comes at the end
of the load, then one more start and a clean stop.

Then, from the files alone:

- every feedback id the server acknowledged (2xx) is a row in SQLite with what was sent;
- every acknowledged KB edit has its audit row marked done, and every document the admin
  client is sure of (its last edit was acknowledged) is in the KB as that edit left it;
- replaying the done audit rows over the initial KB gives the KB on disk (no change
  without a row, no row claiming a change that did not happen); no row is left pending;
- no document id twice, no document (on disk, or written by a done audit row) with a
  topic or keyword kb.json does not declare, no `*.tmp` file; no edit refused.

A request a kill cuts fails (counted as an error: expected); its edit may or may not have
happened, so the admin client reads the document back before it touches it again. The
run without kills is the baseline of the req/s ratio (it must have no errors at all).
Exit status 1 on any loss; `--keep` keeps each run's KB, SQLite file and server log (the
start-up repairs are logged there). Timing: on the 2-core box, 75 s of load plus ~5 s of
starts. The random kills rarely land in a given few-millisecond window: `--kills 40
--duration 100` hits more of them (it found imports cut between their documents and kb.json,
fixed in `aldlab.kb.io.save_kb`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from aldlab.files import read_json
from aldlab.serve.settings import ADMIN_TOKEN_ENV, ServeSettings
from aldlab.serve.testing import TINY_DOCUMENTS, free_port, write_tiny_kb
from aldlab.store.audit import document_hash
from aldlab.store.db import connection
from serve_load import QUESTIONS, ask  # bench/ is on sys.path when this file runs

#: Keywords the tiny KB declares: an added or edited document may use only these.
KNOWN_KEYWORDS = ["ALD", "TMA", "자기제한", "전구체", "퍼지"]
#: Words texts are drawn from, so every edit writes a text (and an audit hash) of its own.
WORDS = (
    "전구체 반응물 퍼지 사이클 표면 포화 흡착 리간드 산화막 질화막 두께 균일도 온도 압력 유량 밸브 "
    "챔버 기판 웨이퍼 플라즈마 오존 수증기 알루미늄 하프늄 지르코늄 티타늄 실리콘 성장률 측정 조건"
).split()
ACTOR = "crash-bench"
#: Documents the admin client keeps the KB near (adds and imports outrun deletes below it).
MAX_DOCUMENTS = 40
REPAIR_LINE = re.compile(
    r"KB audit repair: (\d+) pending edit\(s\) had happened \(done\), (\d+) had not \(aborted\), "
    r"(\d+) temp file\(s\) removed"
)


# --------------------------------------------------------------------------- the server process


def serve_child(kb: str, db: str, port: str, gen_delay: str) -> None:
    """The `_serve` entry: the real app around the fake assistant, in this process (so a
    SIGKILL takes down the app, its worker threads and any write in progress at once)."""
    import uvicorn

    from aldlab.serve.app import create_app
    from aldlab.serve.commands import uvicorn_options
    from aldlab.serve.fake import FakeAssistant
    from aldlab.store import Store

    settings = ServeSettings(
        port=int(port), db=db, kb=kb, admin_token=os.environ[ADMIN_TOKEN_ENV],
        # One address for all bench clients: the per-client limits would measure the limiter.
        rate_limit_per_minute=0, max_pending_per_client=0,
    )
    app = create_app(FakeAssistant(kb, delay_s=float(gen_delay)), Store(settings.db_path()), settings)
    uvicorn.run(app, **uvicorn_options(settings), log_level="warning", access_log=False)


class ServerProcess:
    """`aldlab serve` (fake assistant) as a child process that can be SIGKILLed and restarted."""

    def __init__(self, kb: Path, db: Path, port: int, gen_delay: float, log: Path, token: str) -> None:
        self.command = [sys.executable, __file__, "_serve", str(kb), str(db), str(port), str(gen_delay)]
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        # ALDLAB_HOME and TMPDIR in the run's temp dir: nothing touches the user's registry
        # or caches, and what a killed server leaves in its temp dir can be counted.
        self.tmpdir = log.parent / "tmp"
        self.tmpdir.mkdir(exist_ok=True)
        self.env = {**os.environ, ADMIN_TOKEN_ENV: token, "ALDLAB_HOME": str(log.parent / "home"),
                    "TMPDIR": str(self.tmpdir)}
        self.proc: subprocess.Popen[bytes] | None = None
        self.kills = 0
        self.starts = 0
        self.died: list[str] = []  # exits nobody asked for, with the log's tail

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(self.command, env=self.env, stdout=out, stderr=subprocess.STDOUT)
        self.starts += 1

    def _check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            self.died.append(f"exit {self.proc.returncode}: {self.log_tail()}")
            self.proc = None

    def kill(self) -> None:
        """SIGKILL now, whatever the server is doing (starting, repairing, writing)."""
        self._check_alive()
        if self.proc is None:
            return
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.proc = None
        self.kills += 1

    def stop(self) -> None:
        self._check_alive()
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    async def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(base_url=self.url, timeout=5) as client:
            while time.monotonic() < deadline:
                self._check_alive()
                if self.proc is None:
                    raise RuntimeError(f"the server exited while starting: {self.died[-1] if self.died else '?'}")
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get("/api/health")).status_code == 200:
                        return
                await asyncio.sleep(0.05)
        raise RuntimeError(f"the server did not answer /api/health in {timeout:.0f} s: {self.log_tail()}")

    def log_tail(self, lines: int = 6) -> str:
        text = self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""
        return " | ".join(text.strip().splitlines()[-lines:])

    def repairs(self) -> tuple[int, int, int]:
        """Start-up repairs in the server log: rows settled done, aborted, temp files removed."""
        text = self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""
        found = [tuple(int(n) for n in m.groups()) for m in REPAIR_LINE.finditer(text)]
        return (sum(f[0] for f in found), sum(f[1] for f in found), sum(f[2] for f in found))


# --------------------------------------------------------------------------- what clients saw


@dataclass(frozen=True)
class AckedEdit:
    """A KB edit the server answered 2xx: the document it wrote (the removed one for a delete)."""

    action: str  # add | update | delete
    doc_id: str
    doc: dict[str, Any]


@dataclass
class Tally:
    ok: int = 0  # requests answered 2xx (asks, feedback, admin edits and reads)
    answered: int = 0  # asks answered 2xx
    errors: int = 0  # requests that failed (a kill cut them, or the server was down)
    error_samples: list[str] = field(default_factory=list)
    feedback: dict[int, tuple[str, str, str]] = field(default_factory=dict)  # id -> (answer_id, rating, comment)
    edits: list[AckedEdit] = field(default_factory=list)
    unsure_edits: int = 0  # edit requests cut by a kill (may or may not have happened)
    refused_edits: int = 0  # 4xx: the server said no (should not happen)
    refusals: list[str] = field(default_factory=list)

    def error(self, exc: BaseException) -> None:
        self.errors += 1
        if len(self.error_samples) < 3:
            self.error_samples.append(f"{type(exc).__name__}: {exc}"[:200])


async def client_loop(url: str, n: int, deadline: float, tally: Tally) -> None:
    """Ask, then rate the answer; record every feedback id the server acknowledged."""
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        i = 0
        while time.monotonic() < deadline:
            i += 1
            try:
                answer_id, token = await ask(client, QUESTIONS[(n + i) % len(QUESTIONS)], stream=(n + i) % 4 == 0)
                tally.answered += 1
                tally.ok += 1
                rating, comment = ("like" if i % 2 else "dislike"), f"c{n}-{i}"
                fb = await client.post(
                    "/api/feedback",
                    json={"answer_id": answer_id, "answer_token": token, "rating": rating, "comment": comment},
                )
                fb.raise_for_status()
                tally.feedback[int(fb.json()["feedback_id"])] = (answer_id, rating, comment)
                tally.ok += 1
            except Exception as exc:  # noqa: BLE001 - counted; while the server restarts, wait a little
                tally.error(exc)
                await asyncio.sleep(0.1)


class AdminClient:
    """One admin editing the KB in a loop; knows what each document should be.

    `known` is the admin's picture: id -> document JSON (None once deleted). An edit a
    kill cut leaves its documents `unsure` until they are read back from the server.
    """

    def __init__(self, client: httpx.AsyncClient, rng: random.Random, tally: Tally) -> None:
        self.client, self.rng, self.tally = client, rng, tally
        self.known: dict[str, dict[str, Any] | None] = {d.id: d.to_json() for d in TINY_DOCUMENTS}
        self.unsure: set[str] = set()
        self.topics = sorted({d.topic for d in TINY_DOCUMENTS})
        self.seq = 0

    def text(self) -> str:
        self.seq += 1
        return f"{self.seq}번 수정: " + " ".join(self.rng.choice(WORDS) for _ in range(14)) + "."

    def present(self) -> list[str]:
        return sorted(i for i, d in self.known.items() if d is not None and i not in self.unsure)

    async def run(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            try:
                if self.unsure:
                    await self.read_back()
                await self.edit_once()
            except Exception as exc:  # noqa: BLE001 - counted; the server is restarting
                self.tally.error(exc)
                await asyncio.sleep(0.1)

    async def edit_once(self) -> None:
        present = self.present()
        roll = self.rng.random()
        # Every edit rewrites the whole KB: it is kept near MAX_DOCUMENTS so edits stay fast.
        if len(present) < 4:
            await self.add()
        elif roll < 0.35:
            await self.update(self.rng.choice(present))
        elif roll < 0.5 or len(present) > MAX_DOCUMENTS:
            await self.delete(self.rng.choice(present))
        elif roll < 0.8:
            await self.add()
        else:
            await self.import_file()

    async def send(self, method: str, path: str, ids: list[str], body: Any = None) -> dict[str, Any] | None:
        """One edit request; the JSON on 2xx, None on a refusal, raises when cut (ids unsure)."""
        self.unsure |= set(ids)  # until the answer says otherwise
        try:
            r = await self.client.request(method, path, json=body)
        except httpx.ConnectError:
            self.unsure -= set(ids)  # the server was down: nothing was sent
            raise
        except httpx.TransportError:
            self.tally.unsure_edits += 1
            raise
        if r.status_code >= 500:
            self.tally.unsure_edits += 1
            raise RuntimeError(f"HTTP {r.status_code}: {r.text[:160]}")
        self.unsure -= set(ids)
        if r.status_code >= 400:
            self.tally.refused_edits += 1
            self.tally.refusals.append(f"{method} {path}: HTTP {r.status_code} {r.text[:300]}")
            return None
        self.tally.ok += 1
        return dict(r.json())

    def acked(self, action: str, doc: dict[str, Any]) -> None:
        self.tally.edits.append(AckedEdit(action, doc["id"], doc))
        self.known[doc["id"]] = None if action == "delete" else doc

    async def add(self) -> None:
        doc_id = f"crash-{self.seq + 1:05d}"
        text = self.text()
        body = {
            "id": doc_id, "title": f"충돌 시험 {self.seq}", "text": text, "topic": self.rng.choice(self.topics[:2]),
            "keywords": self.rng.sample(KNOWN_KEYWORDS, 2),
        }
        out = await self.send("POST", "/api/admin/documents", [doc_id], body)
        if out is not None:
            self.acked("add", out["document"])

    async def update(self, doc_id: str) -> None:
        changes: dict[str, Any] = {"text": self.text()}
        current = self.known[doc_id] or {}
        if self.rng.random() < 1 / 3:  # a move: two topic files, the gaining one first
            changes["topic"] = self.rng.choice([t for t in self.topics if t != current.get("topic")])
        out = await self.send("PUT", f"/api/admin/documents/{doc_id}", [doc_id], changes)
        if out is not None:
            self.acked("update", out["document"])

    async def delete(self, doc_id: str) -> None:
        out = await self.send("DELETE", f"/api/admin/documents/{doc_id}", [doc_id])
        if out is not None:
            self.acked("delete", out["deleted"])

    async def import_file(self) -> None:
        """A JSON upload of 1-3 documents with a keyword kb.json does not know yet (every
        4th in a new topic): the import writes the documents and declares both in kb.json."""
        n = self.seq + 1
        keyword = f"시험어{n}"
        topic = f"imported-{n}" if n % 4 == 0 else self.rng.choice(self.topics[:2])
        rows = [
            {"id": f"imp-{n:05d}-{k}", "title": f"가져온 문서 {n}-{k}", "text": self.text(), "topic": topic,
             "keywords": [keyword]}
            for k in range(self.rng.randint(1, 3))
        ]
        body = {"filename": f"import-{n}.json", "content": json.dumps({"documents": rows}, ensure_ascii=False),
                "allow_near_duplicates": True}
        out = await self.send("POST", "/api/admin/documents/import", [r["id"] for r in rows], body)
        if out is None:
            return
        for doc in out["added"]:
            self.acked("add", doc)
            if doc["topic"] not in self.topics:
                self.topics.append(doc["topic"])

    async def read_back(self) -> None:
        """What the edits a kill cut left: the documents as the restarted server has them."""
        for doc_id in sorted(self.unsure):
            r = await self.client.get("/api/admin/documents", params={"q": doc_id, "limit": 500})
            r.raise_for_status()
            self.tally.ok += 1
            doc = next((d for d in r.json()["documents"] if d["id"] == doc_id), None)
            self.known[doc_id] = doc
            if doc is not None and doc["topic"] not in self.topics:
                self.topics.append(doc["topic"])
            self.unsure.discard(doc_id)


# --------------------------------------------------------------------------- one run


@dataclass
class Findings:
    """What the files say after the run; every count but the first few must be 0."""

    feedback_rows: int = 0  # acknowledged feedback found as sent
    edits_with_row: int = 0  # acknowledged edits with a done audit row
    kb_not_as_acked: list[str] = field(default_factory=list)
    replay_differs: list[str] = field(default_factory=list)
    pending_before_restart: int = 0
    pending: int = 0
    duplicates: list[str] = field(default_factory=list)
    undeclared: list[str] = field(default_factory=list)
    tmp_files: list[str] = field(default_factory=list)
    # Outside the KB, so not a loss: what killed servers left in their TMPDIR (an upload
    # is parsed from a temp dir, `routes.admin.import_file`).
    tmpdir_left: list[str] = field(default_factory=list)


@dataclass
class RunResult:
    label: str
    seconds: float = 0.0
    tally: Tally = field(default_factory=Tally)
    findings: Findings = field(default_factory=Findings)
    kills: int = 0
    starts: int = 0
    repairs: tuple[int, int, int] = (0, 0, 0)
    died: list[str] = field(default_factory=list)
    failure: str = ""

    def losses(self) -> list[str]:
        t, f = self.tally, self.findings
        found = [
            (len(t.feedback) - f.feedback_rows, "acknowledged feedback rows missing"),
            (len(t.edits) - f.edits_with_row, "acknowledged edits without a done audit row"),
            (len(f.kb_not_as_acked), f"documents not as their acknowledged edit left them {f.kb_not_as_acked[:5]}"),
            (len(f.replay_differs), f"documents the done audit rows do not explain {f.replay_differs[:5]}"),
            (f.pending, "audit rows still pending after the last restart"),
            (len(f.duplicates), f"duplicate document ids {f.duplicates[:5]}"),
            (len(f.undeclared), f"documents with an undeclared topic/keyword {f.undeclared[:5]}"),
            (len(f.tmp_files), f"leftover temp files {f.tmp_files[:3]}"),
            (t.refused_edits, "edits refused (4xx)"),
            (len(self.died), f"server exits nobody asked for {self.died[:1]}"),
        ]
        if self.failure:
            found.append((1, self.failure))
        if not self.kills and t.errors:
            found.append((t.errors, "errors without any kill"))
        return [f"{n} {what}" for n, what in found if n]


async def load(server: ServerProcess, args: argparse.Namespace, kills: int, seconds: float, progress: Progress,
               result: RunResult) -> AdminClient:
    """Clients and the admin for `seconds`; `kills` SIGKILLs, the last one at the end."""
    started = time.monotonic()
    deadline = started + seconds
    tally = result.tally
    task = progress.add_task(result.label, total=seconds)

    async def kill_at_random() -> None:
        rng = random.Random(f"{args.seed}-kills")
        moments = sorted(rng.uniform(1.0, seconds - 1.0) for _ in range(kills - 1)) + [seconds]
        for i, at in enumerate(moments):
            await asyncio.sleep(max(0.0, started + at - time.monotonic()))
            server.kill()
            if i < len(moments) - 1:
                server.start()  # not waited for: the next kill may land during start-up repair

    async def show_progress() -> None:
        while time.monotonic() < deadline:
            progress.update(
                task, completed=time.monotonic() - started,
                description=f"{result.label}: kills {server.kills}/{kills}, answers {tally.answered}, "
                            f"feedback {len(tally.feedback)}, edits {len(tally.edits)}, errors {tally.errors}",
            )
            await asyncio.sleep(0.25)
        progress.update(task, completed=seconds)

    headers = {"Authorization": f"Bearer {args.token}", "X-Aldlab-Actor": ACTOR}
    async with httpx.AsyncClient(base_url=server.url, timeout=30, headers=headers) as admin_http:
        admin = AdminClient(admin_http, random.Random(f"{args.seed}-admin"), tally)
        jobs = [client_loop(server.url, n, deadline, tally) for n in range(args.clients)]
        jobs += [admin.run(deadline), show_progress()]
        if kills:
            jobs.append(kill_at_random())
        await asyncio.gather(*jobs)
    return admin


def run(label: str, args: argparse.Namespace, kills: int, seconds: float, workdir: Path, progress: Progress) -> RunResult:
    kb = write_tiny_kb(workdir / "kb")
    db = workdir / "serve.sqlite3"
    server = ServerProcess(kb, db, free_port(), args.gen_delay, workdir / "server.log", args.token)
    result = RunResult(label)
    admin: AdminClient | None = None
    try:
        server.start()
        asyncio.run(server.wait_ready())
        began = time.perf_counter()
        admin = asyncio.run(load(server, args, kills, seconds, progress, result))
        result.seconds = time.perf_counter() - began
        if kills:  # the load ended with a kill: what it left, then one more start (repair)
            result.findings.pending_before_restart = count_pending(db)
            server.start()
            asyncio.run(server.wait_ready())
    except RuntimeError as exc:
        result.failure = str(exc)
    finally:
        server.stop()
    result.kills, result.starts, result.repairs, result.died = server.kills, server.starts, server.repairs(), server.died
    if admin is not None:
        inspect(kb, db, result, admin)
        result.findings.tmpdir_left = sorted(p.name for p in server.tmpdir.iterdir())
    return result


# --------------------------------------------------------------------------- the checks


def count_pending(db: Path) -> int:
    with connection(db) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM kb_audit WHERE state = 'pending'").fetchone()[0])


def documents_on_disk(kb: Path) -> list[dict[str, Any]]:
    """Every document line of the topic files, duplicates included (not `load_kb`'s view)."""
    return [
        json.loads(line)
        for path in sorted((kb / "documents").glob("*.jsonl"))
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]


def replay_audit(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The initial KB with every done audit row applied in order."""
    state = {d.id: d.to_json() for d in TINY_DOCUMENTS}
    for row in rows:
        if row["state"] != "done" or row["action"] == "reload":
            continue
        if row["action"] == "delete":
            state.pop(row["doc_id"], None)
        else:
            state[row["doc_id"]] = json.loads(row["after_json"])
    return state


def inspect(kb: Path, db: Path, result: RunResult, admin: AdminClient) -> None:
    tally, found = result.tally, result.findings
    with connection(db) as conn:
        feedback = {r["id"]: (r["answer_id"], r["rating"], r["comment"]) for r in conn.execute(
            "SELECT id, answer_id, rating, comment FROM feedback")}
        audit = [dict(r) for r in conn.execute("SELECT * FROM kb_audit ORDER BY id")]
    found.feedback_rows = sum(1 for i, sent in tally.feedback.items() if feedback.get(i) == sent)

    done = {
        (r["action"], r["doc_id"], r["after_hash"] if r["action"] != "delete" else document_hash(json.loads(r["before_json"])))
        for r in audit if r["state"] == "done" and r["action"] != "reload"
    }
    found.edits_with_row = sum(1 for e in tally.edits if (e.action, e.doc_id, document_hash(e.doc)) in done)
    found.pending = sum(1 for r in audit if r["state"] == "pending")

    on_disk = documents_on_disk(kb)
    ids = [d["id"] for d in on_disk]
    found.duplicates = sorted({i for i in ids if ids.count(i) > 1})
    final = {d["id"]: d for d in on_disk}
    found.kb_not_as_acked = sorted(
        i for i, want in admin.known.items() if i not in admin.unsure and final.get(i) != want
    )
    replayed = replay_audit(audit)
    found.replay_differs = sorted(i for i in set(replayed) | set(final) if replayed.get(i) != final.get(i))

    # Nothing in this workload takes a declaration back, so every document the KB ever held
    # (on disk now, or written by a done audit row) must use names the final kb.json declares.
    manifest = read_json(kb / "kb.json")
    topics = set(manifest.get("topics", {}))
    terms = {t.casefold() for t in manifest.get("keywords", [])} | {
        t.casefold() for g in manifest.get("synonym_groups", []) for t in g
    }
    written = on_disk + [json.loads(r["after_json"]) for r in audit if r["state"] == "done" and r["after_json"]]
    found.undeclared = sorted({
        d["id"] for d in written
        if d["topic"] not in topics or any(k.casefold() not in terms for k in d.get("keywords", []))
    })
    found.tmp_files = sorted(str(p.relative_to(kb)) for p in kb.rglob("*.tmp"))


# --------------------------------------------------------------------------- report


def report(results: list[RunResult], console: Console) -> None:
    base = results[0]
    base_rps = base.tally.ok / base.seconds if base.seconds else float("nan")
    table = Table(title="aldlab serve under kill -9 (fake generator, 127.0.0.1)")
    table.add_column("")
    for r in results:
        table.add_column(r.label, justify="right")

    def row(name: str, value: Any) -> None:
        table.add_row(name, *(str(value(r)) for r in results))

    row("seconds of load", lambda r: f"{r.seconds:.1f}")
    row("kills (SIGKILL)", lambda r: r.kills)
    row("server starts", lambda r: r.starts)
    row("requests answered 2xx", lambda r: r.tally.ok)
    row("req/s", lambda r: f"{r.tally.ok / r.seconds:.1f}" if r.seconds else "-")
    if len(results) > 1:
        row(f"vs {base.label}", lambda r: f"{r.tally.ok / r.seconds / base_rps:.2f}x" if r.seconds else "-")
    row("failed requests (cut, or server down)", lambda r: r.tally.errors)
    row("feedback acked", lambda r: len(r.tally.feedback))
    row("  found in SQLite as sent", lambda r: r.findings.feedback_rows)
    row("KB edits acked", lambda r: len(r.tally.edits))
    row("  with a done audit row", lambda r: r.findings.edits_with_row)
    row("  KB not as acked", lambda r: len(r.findings.kb_not_as_acked))
    row("edits cut by a kill", lambda r: r.tally.unsure_edits)
    row("KB ≠ replay of done audit", lambda r: len(r.findings.replay_differs))
    row("pending before last start", lambda r: r.findings.pending_before_restart)
    row("start-up repair: done/aborted/tmp", lambda r: "/".join(map(str, r.repairs)))
    row("pending after last start", lambda r: r.findings.pending)
    row("duplicate ids", lambda r: len(r.findings.duplicates))
    row("docs with undeclared topic/keyword", lambda r: len(r.findings.undeclared))
    row("*.tmp files in the KB", lambda r: len(r.findings.tmp_files))
    row("left in the server's TMPDIR", lambda r: len(r.findings.tmpdir_left))
    row("verdict", lambda r: "LOSS" if r.losses() else "ok")
    console.print(table)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=16, help="concurrent asking clients (default 16)")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load with kills (default 60)")
    parser.add_argument("--kills", type=int, default=10, help="SIGKILLs, the last at the end of the load (default 10)")
    parser.add_argument("--baseline", type=float, default=15.0, help="seconds of load without kills (default 15; 0 = skip)")
    parser.add_argument("--gen-delay", type=float, default=0.005, help="fake generation time per answer, s")
    parser.add_argument("--seed", type=int, default=22, help="seed of the kill moments and the admin's edits")
    parser.add_argument("--keep", action="store_true", help="keep the temp dirs (KB, SQLite, server log) and print them")
    args = parser.parse_args()
    args.token = secrets.token_urlsafe(32)
    console = Console(width=120)  # results on stdout; progress on stderr
    runs = ([("no kill", 0, args.baseline)] if args.baseline > 0 else []) + [(f"kill -9 x{args.kills}", args.kills, args.duration)]
    results = []
    with Progress(TextColumn("{task.description}"), BarColumn(), TimeRemainingColumn(),
                  console=Console(stderr=True), transient=True) as progress:
        for label, kills, seconds in runs:
            workdir = Path(tempfile.mkdtemp(prefix="aldlab-serve-crash-"))
            results.append(run(label, args, kills, seconds, workdir, progress))
            if args.keep:
                progress.console.print(f"{label}: files kept in {workdir}", highlight=False)
            else:
                import shutil

                shutil.rmtree(workdir, ignore_errors=True)
    report(results, console)
    for r in results:
        for sample in r.tally.error_samples:
            console.print(f"[dim]failed request ({r.label}):[/] {sample}", highlight=False)
        for refusal in r.tally.refusals[:5]:
            console.print(f"[red]edit refused ({r.label}):[/] {refusal}", highlight=False)
    losses = [f"{r.label}: {loss}" for r in results for loss in r.losses()]
    for loss in losses:
        console.print(f"[red]LOSS[/] {loss}", highlight=False)
    console.print("PASS: no acknowledged write lost, every KB edit with its audit row" if not losses else "FAIL",
                  style="green" if not losses else "red")
    return 1 if losses else 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["_serve"]:
        serve_child(*sys.argv[2:6])
    else:
        sys.exit(main())
