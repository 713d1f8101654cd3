"""The model registry: register, promote, rollback, the default_adapter.json migration."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aldlab.errors import UserError
from aldlab.settings import default_adapter, record_default_adapter
from aldlab.store.registry import ModelRegistry


def fake_adapter(path: Path, tag: str = "w") -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "adapter_model.safetensors").write_bytes(tag.encode())
    (path / "adapter_config.json").write_text("{}", "utf-8")
    (path / "checkpoint-5").mkdir(exist_ok=True)  # left behind by the copy
    return path


def test_register_copies_the_adapter_and_promote_moves_the_pointer(tmp_path: Path) -> None:
    reg = ModelRegistry()
    a = reg.register(fake_adapter(tmp_path / "a", "A"), base_model="embedded", created_by="t", feedback_ids=[1, 2])
    b = reg.register(fake_adapter(tmp_path / "b", "B"), base_model="embedded", created_by="t", parent=a.id)
    assert (a.id, b.id) == ("v0001", "v0002")
    assert (Path(a.adapter_dir) / "adapter_model.safetensors").read_bytes() == b"A"
    assert not (Path(a.adapter_dir) / "checkpoint-5").exists()
    assert reg.promoted() is None and default_adapter() is None

    reg.promote(a.id, "kim")
    reg.promote(b.id, "lee")
    pointer = default_adapter()
    assert pointer is not None and pointer.model_id == b.id and pointer.adapter_dir == Path(b.adapter_dir)
    statuses = {r.id: r.status for r in reg.records()}
    assert statuses == {a.id: "retired", b.id: "promoted"}
    current = reg.get(b.id)
    assert current.replaced == a.id and current.promoted_by == "lee"
    on_disk = json.loads(reg.record_path(a.id).read_text("utf-8"))
    assert on_disk["feedback_ids"] == [1, 2]


def test_rollback_restores_the_replaced_model_and_refuses_past_the_first(tmp_path: Path) -> None:
    reg = ModelRegistry()
    a = reg.register(fake_adapter(tmp_path / "a"), base_model=None, created_by="t")
    b = reg.register(fake_adapter(tmp_path / "b"), base_model=None, created_by="t")
    reg.promote(a.id, "kim")
    reg.promote(b.id, "kim")
    restored = reg.rollback("park")
    assert restored.id == a.id and default_adapter().model_id == a.id
    assert {r.id: r.status for r in reg.records()} == {a.id: "promoted", b.id: "rolled_back"}
    with pytest.raises(UserError, match="roll back"):
        reg.rollback("park")  # a was the first: nothing before it


def test_the_pointer_wins_when_records_disagree(tmp_path: Path) -> None:
    """A crash between the record write and the pointer write: the pointer says who serves."""
    reg = ModelRegistry()
    a = reg.register(fake_adapter(tmp_path / "a"), base_model=None, created_by="t")
    b = reg.register(fake_adapter(tmp_path / "b"), base_model=None, created_by="t")
    reg.promote(a.id, "kim")
    data = json.loads(reg.record_path(b.id).read_text("utf-8"))
    data["status"] = "promoted"  # written, then the process died before the pointer
    reg.record_path(b.id).write_text(json.dumps(data), "utf-8")
    assert {r.id: r.status for r in reg.records()} == {a.id: "promoted", b.id: "retired"}
    assert reg.promoted().id == a.id


def test_a_legacy_default_adapter_becomes_the_promoted_model(tmp_path: Path) -> None:
    legacy = fake_adapter(tmp_path / "runs" / "adapter", "L")
    record_default_adapter(legacy, "embedded")
    reg = ModelRegistry()
    current = reg.promoted()
    assert current is not None and current.id == "v0001" and current.created_by == "migration"
    assert current.base_model == "embedded" and Path(current.adapter_dir) != legacy
    pointer = default_adapter()
    assert pointer.model_id == "v0001" and pointer.adapter_dir == Path(current.adapter_dir)
    assert len(reg.records()) == 1, "migrating twice registers nothing new"


def test_a_legacy_record_whose_adapter_is_gone_is_not_migrated(tmp_path: Path) -> None:
    record_default_adapter(tmp_path / "deleted", "embedded")
    assert ModelRegistry().promoted() is None and ModelRegistry().records() == []


def test_unknown_ids_and_missing_files_are_user_errors(tmp_path: Path) -> None:
    reg = ModelRegistry()
    with pytest.raises(UserError, match="v0042"):
        reg.get("v0042")
    with pytest.raises(UserError):
        reg.promote("../etc", "kim")
    with pytest.raises(UserError, match="adapter"):
        reg.register(tmp_path, base_model=None, created_by="t")


def test_serve_names_the_promoted_model_by_its_version_and_follows_the_registry(tmp_path: Path) -> None:
    from aldlab.serve.commands import choose_serve_model
    from aldlab.serve.settings import ServeSettings

    record_default_adapter(fake_adapter(tmp_path / "legacy"), str(tmp_path / "model"))  # before the registry
    settings = ServeSettings()
    choice = choose_serve_model(settings, None, {}, no_adapter=False, llm_url=None)
    assert choice.adapters == {"v0001": ModelRegistry().get("v0001").adapter_dir}
    assert (settings.default_model, settings.model_versions, settings.follow_registry) == ("v0001", {"v0001": "v0001"}, True)

    by_hand = ServeSettings()
    choose_serve_model(by_hand, None, {"ald": str(tmp_path / "legacy")}, no_adapter=False, llm_url=None)
    assert not by_hand.follow_registry and by_hand.model_versions == {} and by_hand.default_model == "ald"
