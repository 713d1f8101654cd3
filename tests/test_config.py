"""One home per setting: linked fields (`same_as`) and keys that moved (`MOVED_KEYS`)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from aldlab.config import load_yaml, preset_path, resolve_config
from aldlab.data.config import DataConfig
from aldlab.eval.config import EvalConfig
from aldlab.rag.config import RagConfig
from aldlab.serve.settings import ServeSettings
from aldlab.settings import configs_dir


def write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "extra.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def test_context_docs_follow_rag_top_k_unless_set(tmp_path: Path) -> None:
    linked = write(tmp_path, {"rag": {"top_k": 5}})
    assert resolve_config(DataConfig, "data", config_file=linked).num_context_docs == 5
    explicit = write(tmp_path, {"rag": {"top_k": 5}, "data": {"num_context_docs": 2}})
    assert resolve_config(DataConfig, "data", config_file=explicit).num_context_docs == 2
    flag = resolve_config(DataConfig, "data", config_file=linked, overrides={"num_context_docs": 4})
    assert flag.num_context_docs == 4
    assert DataConfig().num_context_docs == RagConfig().top_k  # no preset: the serving default


@pytest.mark.parametrize("preset", sorted(p.stem for p in configs_dir().glob("*.yaml")))
def test_every_preset_trains_with_as_many_contexts_as_it_serves(preset: str) -> None:
    data = resolve_config(DataConfig, "data", preset=preset)
    rag = resolve_config(RagConfig, "rag", preset=preset)
    assert data.num_context_docs == rag.top_k


def test_moved_keys_still_work_with_their_new_meaning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = write(tmp_path, {"eval": {"llm_url": "http://127.0.0.1:9/v1", "llm_model": "m", "max_new_tokens": 64},
                           "serve": {"default_max_new_tokens": 300, "port": 8123}})
    rag = resolve_config(RagConfig, "rag", config_file=old)
    assert (rag.llm_url, rag.llm_model, rag.max_new_tokens) == ("http://127.0.0.1:9/v1", "m", 300)
    assert resolve_config(EvalConfig, "eval", config_file=old).max_new_tokens == 64  # no unknown-key error
    assert resolve_config(ServeSettings, "serve", config_file=old).port == 8123
    err = capsys.readouterr().err
    assert "serve.default_max_new_tokens" in err and "rag.max_new_tokens" in err and "eval.llm_url" in err

    both = write(tmp_path, {"rag": {"max_new_tokens": 512}, "serve": {"default_max_new_tokens": 384}})
    assert resolve_config(RagConfig, "rag", config_file=both).max_new_tokens == 512  # the new home wins


def test_shipped_presets_resolve_every_section() -> None:
    for path in sorted(configs_dir().glob("*.yaml")):
        sections = set(load_yaml(path))
        assert preset_path(path.stem) == path
        assert sections <= {"data", "train", "eval", "rag", "serve", "pipeline"}, path.name
        resolve_config(DataConfig, "data", preset=path.stem)
        resolve_config(EvalConfig, "eval", preset=path.stem)
        resolve_config(RagConfig, "rag", preset=path.stem)
        resolve_config(ServeSettings, "serve", preset=path.stem)


# --------------------------------------------------------------------------- secrets


def test_get_secret_reads_only_the_named_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    from aldlab.settings import get_secret

    monkeypatch.setenv("ALDLAB_TEST_KEY", "  sk-test-123  ")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-not-for-you")
    monkeypatch.setenv("ALDLAB_BLANK_KEY", " ")
    assert get_secret("ALDLAB_TEST_KEY") == "sk-test-123"
    assert get_secret("ALDLAB_BLANK_KEY") is None and get_secret("ALDLAB_UNSET_KEY") is None and get_secret(None) is None


@pytest.mark.parametrize(("section", "key"), [("data", "teacher_api_key"), ("rag", "llm_api_key")])
def test_a_plain_key_in_yaml_is_refused_with_the_variable_to_use(tmp_path: Path, section: str, key: str) -> None:
    from aldlab.errors import UserError

    path = write(tmp_path, {section: {key: "sk-live-secret"}})
    cls = {"data": DataConfig, "rag": RagConfig}[section]
    with pytest.raises(UserError) as info:
        resolve_config(cls, section, config_file=path)
    text = info.value.render()
    assert f"{key}_env" in text and "extra.yaml" in text and "sk-live-secret" not in text


def test_every_client_gets_its_key_from_the_variable_its_config_names(monkeypatch: pytest.MonkeyPatch) -> None:
    from aldlab.eval.judge import Judge
    from aldlab.rag.build import generator_from_config

    monkeypatch.setenv("OPENAI_API_KEY", "sk-not-for-you")
    monkeypatch.setenv("MY_LLM_KEY", "sk-llm")
    remote = generator_from_config(RagConfig(llm_url="http://127.0.0.1:9/v1", llm_api_key_env="MY_LLM_KEY"))
    assert remote._client.headers["Authorization"] == "Bearer sk-llm"
    judge = Judge.from_env("http://127.0.0.1:9/v1", "m", "ALDLAB_UNSET_JUDGE_KEY")
    assert "Authorization" not in judge._client.headers  # no hidden OPENAI_API_KEY fallback
    monkeypatch.setenv("ALDLAB_JUDGE_API_KEY", "sk-judge")
    assert Judge.from_env("http://127.0.0.1:9/v1", "m")._client.headers["Authorization"] == "Bearer sk-judge"
    assert DataConfig().teacher_api_key_env == "ALDLAB_TEACHER_API_KEY"
