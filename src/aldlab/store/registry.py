"""The model registry: every adapter aldlab trained for serving, and which one is promoted.

Plain files under ALDLAB_HOME (one JSON per model, so `cat` and `git diff` read them):

    registry/
      v0001.json        one `ModelRecord` per model, rewritten atomically
      adapters/v0001/   the adapter's files, copied in when the model is registered
      staging/          candidates being trained by `aldlab improve` (never registered yet)
    default_adapter.json  the promoted pointer (`aldlab.settings.DEFAULT_ADAPTER_FILE`)

Why the pointer is `default_adapter.json` and not a field in the records: it already is
what `ask`, `chat` and `serve` read (`aldlab.rag.build.choose_model`), so old readers keep
answering with the promoted model without knowing the registry exists, and a promotion is
one atomic rename of one file. When a record's `status` and the pointer disagree (a crash
between the two writes), the pointer wins on every read.

Why a copy of the adapter: `aldlab pipeline` trains into `runs/<preset>/adapter` and the
next run overwrites it; a registered model must stay what it was when it was evaluated,
so that a rollback restores the same weights.

It sits with the store (floor 1): it is a record like the feedback store, `serve` polls it
and the RAG resolver reads its pointer, and it needs nothing above `files` and `settings`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from aldlab.errors import UserError
from aldlab.files import atomic_write_json, file_lock
from aldlab.settings import aldlab_home, default_adapter, record_default_adapter

#: candidate: registered, not (yet) promoted; rejected: failed the gate or did not load;
#: promoted: serving now; retired: served before; rolled_back: replaced by `aldlab models rollback`.
STATUSES = ("candidate", "rejected", "promoted", "retired", "rolled_back")
#: The file a model cannot be served without (what `aldlab train` writes).
ADAPTER_WEIGHTS = "adapter_model.safetensors"
_ID = re.compile(r"^v(\d{4,})$")


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class ModelRecord:
    """One registered model: where its adapter is, what it was made from, how it scored."""

    id: str
    adapter_dir: str
    base_model: str | None
    status: str = "candidate"
    parent: str | None = None  # the model it was warm-started from / compared against
    kb_hash: str | None = None
    dataset_hash: str | None = None
    feedback_ids: list[int] = field(default_factory=list)
    #: The gate's table: {set: {"current": x, "candidate": y, "delta": {...}}} and friends.
    scores: dict[str, Any] = field(default_factory=dict)
    created_at: str = ""
    created_by: str = ""
    promoted_at: str | None = None
    promoted_by: str | None = None
    #: The model that was serving when this one was promoted: what `rollback` restores.
    replaced: str | None = None
    note: str = ""
    history: list[dict[str, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelRecord:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


class ModelRegistry:
    """The registry under ALDLAB_HOME (read when built); every call reads the files again.

    No other root can be given: the pointer is the one `default_adapter.json` of ALDLAB_HOME.
    """

    def __init__(self) -> None:
        self.root = aldlab_home() / "registry"

    # ------------------------------------------------------------------ paths
    @property
    def staging_dir(self) -> Path:
        return self.root / "staging"

    def record_path(self, model_id: str) -> Path:
        return self.root / f"{model_id}.json"

    def _lock(self) -> Any:
        self.root.mkdir(parents=True, exist_ok=True)
        return file_lock(self.root / "registry")

    # ------------------------------------------------------------------ reading
    def promoted_id(self) -> str:
        """The promoted model's id ("" when none): one small file read, cheap enough to poll."""
        recorded = default_adapter()
        return recorded.model_id if recorded is not None else ""

    def records(self) -> list[ModelRecord]:
        """Every model, oldest first, with `status` as the pointer says (migrating first)."""
        self.migrate()
        return self._records()

    def _records(self) -> list[ModelRecord]:
        if not self.root.is_dir():
            return []
        pointer = self.promoted_id()
        out = []
        for path in sorted(self.root.glob("v*.json")):
            if not _ID.match(path.stem):
                continue
            try:
                record = ModelRecord.from_json(json.loads(path.read_text(encoding="utf-8")))
            except (OSError, ValueError, TypeError):
                continue  # unreadable: never half-written (atomic), so someone edited it; skip
            if record.id == pointer:
                record.status = "promoted"
            elif record.status == "promoted":
                record.status = "retired"
            out.append(record)
        return out

    def get(self, model_id: str) -> ModelRecord:
        """The record `model_id`, or a UserError listing the known ids."""
        for record in self.records():
            if record.id == model_id:
                return record
        known = ", ".join(r.id for r in self.records()) or "(없음 / none)"
        raise UserError(
            f"등록된 모델이 아닙니다: {model_id}",
            f"No registered model {model_id!r}.",
            hint=f"`aldlab models list` — 등록된 모델 / known: {known}",
        )

    def promoted(self) -> ModelRecord | None:
        """The model serving now, or None (nothing promoted, or only a base model)."""
        self.migrate()
        pointer = self.promoted_id()
        return next((r for r in self._records() if r.id == pointer), None) if pointer else None

    # ------------------------------------------------------------------ writing
    def register(
        self, adapter_src: str | Path, *, base_model: str | None, created_by: str, status: str = "candidate", **fields: Any
    ) -> ModelRecord:
        """Copy `adapter_src` in and write its record (last, so a record always has its adapter).

        Only the adapter's top-level files are copied (checkpoints stay behind). A crash
        before the record is written leaves an unreferenced directory and no model.
        """
        src = Path(adapter_src)
        if not (src / ADAPTER_WEIGHTS).is_file():
            raise UserError(
                "어댑터 디렉터리가 아닙니다 (adapter_model.safetensors 없음).",
                f"Not an adapter directory (no {ADAPTER_WEIGHTS}).",
                path=src,
            )
        with self._lock():
            model_id = self._next_id()
            target = self.root / "adapters" / model_id
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{model_id}.tmp-", dir=target.parent))
            for item in src.iterdir():
                if item.is_file():
                    shutil.copy2(item, tmp / item.name)
            os.replace(tmp, target)
            record = ModelRecord(
                id=model_id,
                adapter_dir=str(target.resolve()),
                base_model=base_model,
                status=status,
                created_at=utc_now(),
                created_by=created_by,
                history=[{"action": "registered", "at": utc_now(), "by": created_by}],
                **fields,
            )
            atomic_write_json(self.record_path(model_id), record.to_json())
        return record

    def set_status(self, model_id: str, status: str, *, note: str | None = None, by: str = "") -> ModelRecord:
        """Change a record's status (e.g. rejected by the gate), with a line in its history."""
        if status not in STATUSES:
            raise UserError(f"알 수 없는 상태: {status}", f"Unknown status {status!r}.", hint=" | ".join(STATUSES))
        with self._lock():
            record = self._load(model_id)
            record.status = status
            if note is not None:
                record.note = note
            record.history.append({"action": status, "at": utc_now(), "by": by})
            atomic_write_json(self.record_path(model_id), record.to_json())
        return record

    def promote(self, model_id: str, by: str, *, note: str | None = None) -> ModelRecord:
        """Make `model_id` the model ask/chat/serve answer with; the current one is retired."""
        self.migrate()
        return self._switch(model_id, by, action="promoted", note=note)

    def rollback(self, by: str) -> ModelRecord:
        """Serve again the model the current one replaced; the current one is marked rolled_back."""
        current = self.promoted()
        if current is None or not current.replaced:
            raise UserError(
                "되돌릴 이전 모델이 없습니다.",
                "There is no previous model to roll back to.",
                hint="`aldlab models list` 로 확인하고 `aldlab models promote ID` 를 쓰세요 / "
                "check `aldlab models list` and use `aldlab models promote ID`",
            )
        return self._switch(current.replaced, by, action="rollback")

    def _switch(self, model_id: str, by: str, *, action: str, note: str | None = None) -> ModelRecord:
        """Write the target's record, then the pointer (the commit), then the old record."""
        with self._lock():
            target = self._load(model_id)
            if not (Path(target.adapter_dir) / ADAPTER_WEIGHTS).is_file():
                raise UserError(
                    f"모델 {model_id} 의 어댑터 파일이 없습니다.",
                    f"Model {model_id}'s adapter files are missing.",
                    path=target.adapter_dir,
                )
            current_id = self.promoted_id()
            if current_id == model_id:
                return target
            now = utc_now()
            if action == "promoted":
                target.replaced = current_id or None  # a rollback keeps the target's own history
            target.status, target.promoted_at, target.promoted_by = "promoted", now, by
            if note is not None:
                target.note = note
            target.history.append({"action": action, "at": now, "by": by})
            atomic_write_json(self.record_path(model_id), target.to_json())
            record_default_adapter(target.adapter_dir, target.base_model, model_id)
            if current_id and self.record_path(current_id).exists():
                old = self._load(current_id)
                old.status = "rolled_back" if action == "rollback" else "retired"
                old.history.append({"action": "rolled_back" if action == "rollback" else "retired", "at": now, "by": by})
                atomic_write_json(self.record_path(current_id), old.to_json())
        return target

    def migrate(self) -> bool:
        """Register a `default_adapter.json` written before the registry (True if it did).

        The adapter recorded by an older `aldlab pipeline` becomes the promoted model, so
        `aldlab improve` has a current model to beat and `rollback` something to return to.
        A record whose adapter directory is gone is left alone (choose_model says so).
        """
        recorded = default_adapter()
        if recorded is None or (recorded.model_id and self.record_path(recorded.model_id).exists()):
            return False
        if not (recorded.adapter_dir / ADAPTER_WEIGHTS).is_file():
            return False
        record = self.register(
            recorded.adapter_dir, base_model=recorded.base_model, created_by="migration",
            note=f"default_adapter.json ({recorded.recorded_at})에서 옮김 / migrated from default_adapter.json",
        )
        self._switch(record.id, "migration", action="promoted")
        return True

    # ------------------------------------------------------------------ helpers
    def _load(self, model_id: str) -> ModelRecord:
        path = self.record_path(model_id)
        if not _ID.match(model_id) or not path.exists():
            raise UserError(f"등록된 모델이 아닙니다: {model_id}", f"No registered model {model_id!r}.",
                            hint="`aldlab models list`")
        return ModelRecord.from_json(json.loads(path.read_text(encoding="utf-8")))

    def _next_id(self) -> str:
        """v0001, v0002, ...: one more than any record or adapter directory (under the lock)."""
        taken = [p.stem for p in self.root.glob("v*.json")]
        adapters = self.root / "adapters"
        if adapters.is_dir():
            taken += [p.name for p in adapters.iterdir()]
        numbers = [int(m.group(1)) for name in taken if (m := _ID.match(name))]
        return f"v{max(numbers, default=0) + 1:04d}"

