"""Fine-tune under model-safety's guard: a worse or broken model never replaces the good one.

Run from the directory that holds config.yaml:  python examples/guarded_finetune.py
"""

import sys

import torch

from agent import ModelSafety, UpdateRejected

safety = ModelSafety.from_config("config.yaml")  # reads the MODEL_SAFETY: block
try:
    # the pre-update backup is taken here; the block's result is validated when it ends
    with safety.guard("dinesh_ai_model", version=True) as update:
        state = torch.load(update.path, map_location="cpu", weights_only=True)
        state = {name: t * 0.999 for name, t in state.items()}  # your fine-tune goes here
        torch.save(state, update.path)
except UpdateRejected as rejected:  # validation failed: the previous model is back in place
    print(rejected)  # why, and where the rejected model was kept for inspection
    sys.exit(3)
print(f"accepted: score {update.result.score}, version {update.result.version}")
for report in safety.push():  # mirror the new version to every configured remote
    print(report.summary())
