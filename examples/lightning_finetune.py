"""Fine-tune the demo model with PyTorch Lightning under model-safety's rules (README, "From a
training framework"). Run from a project whose config.yaml names dinesh_ai_model (`./scripts/demo`
makes one; a fresh model in the demo's layout is saved when there is none):
`pip install -e '.[lightning]'`, then `python examples/lightning_finetune.py`.
"""

import sys

import lightning.pytorch as L
import torch
from torch import nn

from agent.integrations.lightning import ModelSafetyCallback


def demo_layout() -> nn.Module:
    return nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 8))


class Finetune(L.LightningModule):
    def __init__(self, start):
        super().__init__()
        self.net = demo_layout()
        self.net.load_state_dict(torch.load(start, weights_only=True))

    def training_step(self, batch, _):
        x, y = batch
        return nn.functional.mse_loss(self.net(x), y)

    def validation_step(self, batch, _):
        x, y = batch
        self.log("val_loss", nn.functional.mse_loss(self.net(x), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05)


x = torch.randn(512, 32, generator=torch.Generator().manual_seed(0))
data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, x[:, :8] / 2), batch_size=64)

# backup at the start; after each checkpoint: the weights become models/dinesh_ai_model.pth,
# a dated version when due, pushed to the auto_push remotes in the background; at the end:
# validated (the config's gate and val_loss), accepted or rolled back, pushed
safety = ModelSafetyCallback(config="config.yaml", model="dinesh_ai_model", metric="val_loss")
if not safety.model_path.exists():
    safety.model_path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(demo_layout().state_dict(), safety.model_path)
trainer = L.Trainer(max_epochs=3, callbacks=[safety], logger=False, enable_progress_bar=False)
trainer.fit(Finetune(safety.model_path), data, data)
print(safety.result.message)
sys.exit(safety.result.exit_code)
