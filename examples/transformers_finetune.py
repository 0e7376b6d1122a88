"""Fine-tune a Hugging Face model with the Trainer under model-safety's rules (README, "From a
training framework"). Run from a project whose config.yaml names a directory model `tiny-bert`
(`file: tiny-bert/`); a tiny BERT is made from a config when there is none (no download):
`pip install -e '.[transformers]'`, then `python examples/transformers_finetune.py`.
"""

import sys

import torch
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

from agent.integrations.transformers import ModelSafetyCallback

safety = ModelSafetyCallback(config="config.yaml", model="tiny-bert", metric="eval_loss")
if not safety.model_path.exists():
    tiny = BertConfig(
        vocab_size=32, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=16, max_position_embeddings=16,
    )  # fmt: skip
    BertForSequenceClassification(tiny).save_pretrained(safety.model_path)

ids = torch.randint(1, 32, (64, 8), generator=torch.Generator().manual_seed(0))
data = [{"input_ids": row, "labels": int(row[0] > 16)} for row in ids]

args = TrainingArguments(
    output_dir="out", max_steps=12, save_steps=4, eval_strategy="steps", eval_steps=4,
    learning_rate=5e-3, report_to=[], use_cpu=True, disable_tqdm=True,
)  # fmt: skip
model = BertForSequenceClassification.from_pretrained(safety.model_path)
trainer = Trainer(model=model, args=args, train_dataset=data, eval_dataset=data, callbacks=[safety])
trainer.evaluate()  # eval_loss before training: what the result must not be worse than
trainer.train()  # backup, each checkpoint-N/ versioned when due and pushed, gate, push
print(safety.result.message)
sys.exit(safety.result.exit_code)
