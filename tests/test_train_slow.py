"""Integration on the embedded gemma-3-270m: a short fine-tune learns to stop at <end_of_turn>."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aldlab.prompts import build_messages


@pytest.mark.slow
def test_short_finetune_answers_end_at_end_of_turn(tmp_path: Path) -> None:
    import torch
    from peft import PeftModel

    from aldlab.llm.chat_template import end_of_turn_token_ids
    from aldlab.train.config import TrainConfig
    from aldlab.llm.model import load_model, load_tokenizer
    from aldlab.train.trainer import train

    answer = "ALD는 원자층 증착입니다."
    rows = [{"messages": build_messages(f"ALD란 무엇인가요? {i}", answer=answer)} for i in range(24)]
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    result = train(
        TrainConfig(model_name="embedded", train_file=str(data), output_dir=str(tmp_path / "out"), max_steps=24,
                    batch_size=4, learning_rate=2e-3, eval_steps=12, max_seq_len=256, lora_r=8, lora_alpha=16,
                    save_inference_only=True),
        progress=False,
    )
    assert result.final_eval_loss < result.first_eval_loss

    tok = load_tokenizer(str(tmp_path / "out"))
    model = PeftModel.from_pretrained(load_model("embedded"), str(tmp_path / "out")).eval()
    prompt = tok.apply_chat_template(build_messages("ALD란 무엇인가요?"), add_generation_prompt=True,
                                     return_tensors="pt", return_dict=True)
    eot = end_of_turn_token_ids(tok)
    with torch.no_grad():
        out = model.generate(**prompt, max_new_tokens=48, do_sample=False, eos_token_id=eot)
    new = out[0, prompt["input_ids"].shape[1]:].tolist()
    text = tok.decode(new)
    assert new[-1] in eot and len(new) < 48, text  # the answer ends; it does not run on into junk
    assert "원자층" in tok.decode(new, skip_special_tokens=True)
