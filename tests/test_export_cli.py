"""`aldlab export`: one of --merge / --gguf, and --gguf writes the GGUF and the Modelfile."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from aldlab.cli import app
from aldlab.errors import UserError
from aldlab.train.tiny import train_tiny_adapter


def test_export_needs_exactly_one_format(tmp_path: Path) -> None:
    for flags in ([], ["--merge", "--gguf"]):
        result = CliRunner().invoke(app, ["export", str(tmp_path), *flags, "-o", str(tmp_path / "out")])
        assert isinstance(result.exception, UserError)  # main() prints it and exits 2
        assert "--gguf" in str(result.exception)


def test_export_gguf_of_an_adapter_with_trained_token_rows(tmp_path: Path) -> None:
    _, adapter = train_tiny_adapter(tmp_path, rows=8, steps=2, max_eval_examples=2, trainable_tokens=["<end_of_turn>"])
    out = tmp_path / "gguf"
    result = CliRunner().invoke(app, ["export", str(adapter), "--gguf", "--quant", "f32", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "model-f32.gguf").stat().st_size > 0
    assert "<end_of_turn>" in (out / "Modelfile").read_text(encoding="utf-8")
    # The README beside the GGUF (how to serve it with retrieval) is named in the output.
    assert result.stdout.split() == [str(out / "model-f32.gguf"), str(out / "Modelfile"), str(out / "README.md")]
    assert (out / "README.md").is_file()


def test_export_help_lists_every_quant_and_advises_q8_0() -> None:
    from aldlab.llm.gguf_export import QUANTS

    result = CliRunner().invoke(app, ["export", "--help"], env={"COLUMNS": "240"})
    assert result.exit_code == 0, result.output
    for quant in QUANTS:
        assert quant in result.output, quant
    assert "advised" in result.output
