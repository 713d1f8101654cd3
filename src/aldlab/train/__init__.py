"""Stage 3: LoRA/QLoRA supervised fine-tuning (model loading, collator, trainer, export)."""
