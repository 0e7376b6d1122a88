"""A real Hugging Face Trainer fine-tune of a tiny BERT built from a config (no download).
Imported by the tests, or run as ``python hf.py ROOT STEPS`` in a child process."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    Trainer,
    TrainingArguments,
)

from agent.integrations.transformers import ModelSafetyCallback

Callback = ModelSafetyCallback

MODEL = "tiny-bert"


def make_model(directory: Path) -> None:
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=32,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=16,
        max_position_embeddings=16,
        num_labels=2,
    )
    BertForSequenceClassification(config).save_pretrained(directory)


class Pairs(torch.utils.data.Dataset):
    """Sequences labelled by their first token; ``flipped`` teaches the opposite."""

    def __init__(self, flipped: bool = False) -> None:
        self.ids = torch.randint(1, 32, (64, 8), generator=torch.Generator().manual_seed(0))
        labels = (self.ids[:, 0] > 16).long()
        self.labels = 1 - labels if flipped else labels

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        mask = torch.ones(8, dtype=torch.long)
        return {"input_ids": self.ids[i], "attention_mask": mask, "labels": self.labels[i]}


def train(root: Path, steps: int = 12, flipped: bool = False, **options: Any) -> Callback:
    safety = ModelSafetyCallback(config=root / "config.yaml", model=MODEL, **options)
    model = BertForSequenceClassification.from_pretrained(safety.model_path)
    args = TrainingArguments(
        output_dir=str(root / "out"),
        max_steps=steps,
        save_steps=4,
        eval_strategy="steps",
        eval_steps=4,
        per_device_train_batch_size=16,
        learning_rate=5e-3,
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
        seed=0,
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=Pairs(flipped),
        eval_dataset=Pairs(),
        callbacks=[safety],
    )
    trainer.evaluate()  # the model before training: the gate's baseline
    trainer.train()
    return safety


if __name__ == "__main__":
    done = train(Path(sys.argv[1]), int(sys.argv[2]), metric="eval_loss")
    print(done.result.message if done.result else "no result")
