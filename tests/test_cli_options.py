"""One grammar per flag: canonical spellings, hidden aliases, the `--adapter` parser, the
boolean off switch, the `--preset` default, and `--help` on every command."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from aldlab.cli import app
from aldlab.cli_options import FLAG_ALIASES, PRESET_HELP, normalize_flag
from aldlab.errors import UserError
from aldlab.rag.build import parse_adapter_specs
from aldlab.train.config import TrainConfig

runner = CliRunner()


def all_commands() -> list[tuple[str, Any]]:
    """('train', cmd), ('kb audit', cmd), ... for every leaf command under `aldlab`.

    Duck-typed: typer ships its own copy of click, so click's classes do not match.
    """
    found: list[tuple[str, Any]] = []

    def walk(prefix: str, command: Any) -> None:
        if hasattr(command, "commands"):
            for name, sub in command.commands.items():
                walk(f"{prefix} {name}".strip(), sub)
        else:
            found.append((prefix, command))

    walk("", typer.main.get_command(app))
    return found


COMMANDS = all_commands()
assert len(COMMANDS) > 15, COMMANDS


def options(command: Any) -> dict[str, Any]:
    return {p.name: p for p in command.params if p.param_type_name == "option"}


# --------------------------------------------------------------------------- help


def test_root_help_lists_every_command() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0, result.output
    for name in ("kb", "data", "feedback", "train", "export", "ask", "chat", "eval", "serve", "pipeline"):
        assert name in result.output


@pytest.mark.parametrize("path", [name for name, _ in COMMANDS])
def test_every_command_has_help(path: str) -> None:
    result = runner.invoke(app, [*path.split(), "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output and "--help" in result.output


# --------------------------------------------------------------------------- one spelling per concept


def test_no_command_declares_an_old_spelling() -> None:
    """Old names live only in FLAG_ALIASES; `--help` shows the canonical ones."""
    old = {f"--{name}" for name in FLAG_ALIASES}
    for path, command in COMMANDS:
        for option in options(command).values():
            names = set(option.opts) | set(option.secondary_opts)
            assert not names & old, (path, names & old)
            assert not any("_" in n for n in names), (path, names)  # kebab-case only


@pytest.mark.parametrize(("concept", "opts"), [
    ("--preset", ["--preset"]),
    ("--config", ["--config"]),
    ("--quiet", ["--quiet", "-q"]),
    ("--output", ["--output", "-o"]),
    ("--model", ["--model"]),
    ("--adapter", ["--adapter"]),
    ("--kb", ["--kb"]),
])
def test_a_concept_is_spelled_the_same_in_every_command(concept: str, opts: list[str]) -> None:
    seen = 0
    for path, command in COMMANDS:
        for option in options(command).values():
            if concept in option.opts:
                seen += 1
                assert sorted(option.opts) == sorted(opts), (path, option.opts)
    assert seen >= 2, concept


def test_preset_has_one_default_and_one_help() -> None:
    presets = {path: opt for path, command in COMMANDS for opt in options(command).values() if "--preset" in opt.opts}
    assert set(presets) >= {"train", "ask", "chat", "eval", "serve", "pipeline", "data build"}
    for path, option in presets.items():
        assert option.default is None and option.help == PRESET_HELP, path


def test_repeatable_adapter_wherever_it_is_read() -> None:
    for path in ("ask", "chat", "serve", "eval"):
        option = options(dict(COMMANDS)[path])["adapter"]
        assert option.multiple, path


def test_normalize_flag() -> None:
    assert normalize_flag("model_name") == normalize_flag("model-name") == normalize_flag("model") == "model"
    assert normalize_flag("base_model") == "model" and normalize_flag("output_dir") == "output"
    assert normalize_flag("out") == "output" and normalize_flag("no_progress") == "quiet"
    assert normalize_flag("no-adapter") == "base"
    assert normalize_flag("train_file") == "train-file" and normalize_flag("llm-url") == "llm-url"


@pytest.mark.parametrize(("path", "flag"), [
    ("train", "--model_name"), ("train", "--model-name"), ("train", "--output_dir"), ("train", "--output-dir"),
    ("train", "--no_progress"), ("train", "--no-progress"), ("export", "--base_model"), ("export", "--base-model"),
    ("kb audit", "--out"), ("eval", "--output_dir"), ("data build", "--output_dir"), ("ask", "--context_only"),
    ("serve", "--llm_url"), ("serve", "--no-adapter"), ("ask", "--no-adapter"), ("chat", "--no_adapter"),
])
def test_old_spellings_are_accepted(path: str, flag: str) -> None:
    """Parsing stops at `--help` only if every option before it was recognised."""
    takes_value = flag not in {"--no_progress", "--no-progress", "--context_only", "--no-adapter", "--no_adapter"}
    args = [*path.split(), flag, *(["x"] if takes_value else []), "--help"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    bad = runner.invoke(app, [*path.split(), "--no-such-flag", "--help"])
    assert bad.exit_code == 2  # the check can fail


# --------------------------------------------------------------------------- train: generated from TrainConfig


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> list[tuple[TrainConfig, bool]]:
    import aldlab.train.trainer as trainer_mod
    from aldlab.train.trainer import TrainResult

    seen: list[tuple[TrainConfig, bool]] = []

    def fake_train(config: TrainConfig, progress: bool = True) -> TrainResult:
        seen.append((config, progress))
        return TrainResult(config.output_dir, 1.0, 1.0, 2.0, 3, 1.0, 10.0)

    monkeypatch.setattr(trainer_mod, "train", fake_train)
    return seen


def test_every_train_field_is_an_option() -> None:
    import dataclasses

    names = set(options(dict(COMMANDS)["train"]))
    assert names == {f.name for f in dataclasses.fields(TrainConfig)} | {"preset", "config", "quiet"}


@pytest.mark.parametrize(("path", "config_class"), [
    ("train", "aldlab.train.config.TrainConfig"), ("eval", "aldlab.eval.config.EvalConfig"),
    ("data build", "aldlab.data.config.DataConfig"), ("serve", "aldlab.serve.settings.ServeSettings"),
])
def test_flags_come_from_config_field_metadata(path: str, config_class: str) -> None:
    """A config field with help metadata is its command's option, with that help and spelling."""
    import dataclasses
    import importlib

    module, _, name = config_class.rpartition(".")
    fields = [f for f in dataclasses.fields(getattr(importlib.import_module(module), name)) if "help" in f.metadata]
    opts = options(dict(COMMANDS)[path])
    assert len(fields) >= 5, path
    for f in fields:
        option = opts[f.name]
        assert option.help.startswith(f.metadata["help"]), (path, f.name)
        assert option.default is None and option.multiple == bool(f.metadata.get("repeatable")), (path, f.name)
        assert option.opts[0] == f.metadata.get("flags", [f"--{f.name.replace('_', '-')}"])[0], (path, f.name)


def test_seed_spellings_reach_the_config(captured) -> None:
    """finetune_llama.py's flags, as the seed guide wrote them."""
    result = runner.invoke(app, [
        "train", "--model_name", "m", "--train_file", "t.jsonl", "--eval_file", "e.jsonl", "--output_dir", "out",
        "--num_epochs", "2", "--batch_size", "8", "--learning_rate", "1e-4", "--save_inference_only", "--no_progress",
    ])
    assert result.exit_code == 0, result.output
    cfg, progress = captured[-1]
    assert (cfg.model_name, cfg.train_file, cfg.eval_file, cfg.output_dir) == ("m", "t.jsonl", "e.jsonl", "out")
    assert (cfg.num_epochs, cfg.batch_size, cfg.learning_rate) == (2, 8, 1e-4)
    assert cfg.save_inference_only is True and progress is False


def test_canonical_spellings_reach_the_config(captured) -> None:
    result = runner.invoke(app, ["train", "--model", "m", "--train-file", "t.jsonl", "-o", "out", "-q",
                                 "--trainable-tokens", "<end_of_turn>", "--target-modules", "q_proj, v_proj",
                                 "--lr-scheduler", "linear", "--num-threads", "2"])
    assert result.exit_code == 0, result.output
    cfg, progress = captured[-1]
    assert (cfg.model_name, cfg.output_dir, progress) == ("m", "out", False)
    assert cfg.trainable_tokens == ["<end_of_turn>"] and cfg.target_modules == ["q_proj", "v_proj"]
    assert (cfg.lr_scheduler, cfg.num_threads) == ("linear", 2)


def test_a_flag_can_turn_off_a_presets_true(captured, tmp_path: Path) -> None:
    extra = tmp_path / "on.yaml"
    extra.write_text("train:\n  load_in_4bit: true\n  gradient_checkpointing: true\n  group_by_length: true\n",
                     encoding="utf-8")
    base = ["train", "--train_file", "t.jsonl", "--config", str(extra)]
    assert runner.invoke(app, base).exit_code == 0
    cfg, _ = captured[-1]
    assert cfg.load_in_4bit and cfg.gradient_checkpointing and cfg.group_by_length  # absent flag: the file's value
    result = runner.invoke(app, [*base, "--no-load-in-4bit", "--no_gradient_checkpointing", "--no-group-by-length"])
    assert result.exit_code == 0, result.output
    cfg, _ = captured[-1]
    assert not cfg.load_in_4bit and not cfg.gradient_checkpointing and not cfg.group_by_length


def test_train_without_preset_uses_the_seed_defaults(captured) -> None:
    assert runner.invoke(app, ["train", "--train_file", "t.jsonl"]).exit_code == 0
    cfg, _ = captured[-1]
    assert cfg == TrainConfig(train_file="t.jsonl")


# --------------------------------------------------------------------------- --adapter


def test_adapter_parser_grammar(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "lr=2e-4" / "adapter"
    a.mkdir()
    b.mkdir(parents=True)
    assert parse_adapter_specs(None) == {} and parse_adapter_specs([]) == {}
    assert parse_adapter_specs([str(a)]) == {"ft": str(a)}
    assert parse_adapter_specs([f"ald={a}"]) == {"ald": str(a)}
    assert parse_adapter_specs([str(a), f"x={a}", str(b)]) == {"ft": str(a), "x": str(a), "ft2": str(b)}
    assert parse_adapter_specs([str(b)]) == {"ft": str(b)}  # '=' inside a path is not NAME=DIR
    assert list(parse_adapter_specs([f"z={a}", f"y={a}"])) == ["z", "y"]  # order kept: the first answers


@pytest.mark.parametrize(("spec", "match"), [
    ("{missing}", "not found"),
    ("ald={missing}", "not found"),
    ("ald={file}", "not found"),
    ("base={dir}", "reserved"),
    ("ft+rag={dir}", "Bad --adapter"),
    ("={dir}", "Bad --adapter"),
])
def test_adapter_parser_errors(tmp_path: Path, spec: str, match: str) -> None:
    (tmp_path / "file").write_text("x", encoding="utf-8")
    value = spec.format(missing=tmp_path / "missing", file=tmp_path / "file", dir=tmp_path)
    with pytest.raises(UserError, match=match):
        parse_adapter_specs([value])


def test_adapter_names_must_differ(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="twice"):
        parse_adapter_specs([str(tmp_path), f"ft={tmp_path}"])


class Stop(Exception):
    """Raised by a stand-in to end a command once its inputs were captured."""


def test_eval_takes_the_same_adapter_grammar(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import aldlab.eval.runner

    seen: list[Any] = []

    def fake_run_eval(config: Any, **_: Any) -> Any:
        seen.append(config)
        raise Stop

    monkeypatch.setattr(aldlab.eval.runner, "run_eval", fake_run_eval)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    result = runner.invoke(app, ["eval", "--adapter", str(tmp_path / "a"), "--adapter", f"v2={tmp_path / 'b'}"])
    assert isinstance(result.exception, Stop), result.output
    assert seen[-1].adapter_dirs() == {"ft": str(tmp_path / "a"), "v2": str(tmp_path / "b")}
    result = runner.invoke(app, ["eval", "--adapter", str(tmp_path / "gone")])
    assert isinstance(result.exception, UserError) and "gone" in str(result.exception)


def test_serve_takes_a_bare_adapter_dir_and_no_preset_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import aldlab.serve.commands
    from aldlab.rag.config import RagConfig

    seen: list[dict[str, Any]] = []

    def fake_build(kb: Any, config: Any, **kwargs: Any) -> Any:
        seen.append({"kb": kb, "config": config, **kwargs})
        raise Stop

    monkeypatch.setattr(aldlab.serve.commands, "build_assistant", fake_build)
    result = runner.invoke(app, ["serve", "--adapter", str(tmp_path), "--db", str(tmp_path / "db.sqlite3")])
    assert isinstance(result.exception, Stop), result.output
    assert seen[-1]["adapters"] == {"ft": str(tmp_path)} and seen[-1]["load_model"] is True
    assert seen[-1]["config"] == RagConfig()  # no preset: the built-in defaults, as in ask and eval


def test_pipeline_without_preset_runs_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    import aldlab.pipeline

    seen: list[tuple[Any, Path]] = []
    monkeypatch.setattr(aldlab.pipeline, "run_pipeline", lambda preset, target, **_: seen.append((preset, target)))
    monkeypatch.setattr(aldlab.pipeline, "print_outcome", lambda target: None)
    result = runner.invoke(app, ["pipeline"])
    assert result.exit_code == 0, result.output
    assert seen == [(None, Path("runs") / "default")]
