"""The Hugging Face callback in real Trainer runs on CPU with a tiny BERT: the model is a
directory (save_pretrained), each checkpoint-N/ is exported without its training state,
versioned and pushed; a run that makes eval_loss worse is rolled back."""

from __future__ import annotations

import logging

from tests.dirsupport import tree_digest as tree_bytes
from tests.integrations import hf
from tests.servers.seaweed import free_ports

TRAINING_STATE = {"optimizer.pt", "scheduler.pt", "rng_state.pth", "trainer_state.json"}


def test_an_improving_run_is_versioned_and_pushed_to_each_remote(hf_project, nas, seaweedfs, ms):
    s3 = seaweedfs.settings()
    hf_project.write_config(
        {"name": hf.MODEL, "file": f"{hf.MODEL}/"},
        {"nas": {"type": "local", "path": str(nas)}, "s3": s3},
    )
    model_dir = hf_project.models / hf.MODEL
    before = tree_bytes(model_dir)

    safety = hf.train(hf_project.root, metric="eval_loss", max_regression=0.0)

    assert safety.result.outcome == "accepted", safety.result.message
    after = tree_bytes(model_dir)
    assert after != before and set(after) == {"config.json", "model.safetensors"}
    assert tree_bytes(hf_project.models / f"{hf.MODEL}_backup") == before
    versions = hf_project.names(f"{hf.MODEL}_v*")
    assert len(versions) == 2, versions  # the first checkpoint, and the accepted result
    assert after in [tree_bytes(hf_project.models / v) for v in versions]
    for v in versions:  # the optimizer and trainer state stay in checkpoint-N/
        assert not TRAINING_STATE & set(tree_bytes(hf_project.models / v))
    assert {p.remote for p in safety.pushes} == {"nas", "s3"}
    assert all(p.ok for p in safety.pushes), safety.pushes
    assert tree_bytes(nas / hf.MODEL) == after
    for v in versions:
        assert tree_bytes(nas / v) == tree_bytes(hf_project.models / v)
    assert ms(hf_project.root, "verify", "--remote", "s3").code == 0
    pulled = ms(hf_project.root, "list", "--remote", "s3")
    assert pulled.code == 0 and all(v in pulled.out for v in versions)


def test_a_run_that_gets_worse_is_rolled_back(hf_project, nas):
    model_dir = hf_project.models / hf.MODEL
    before = tree_bytes(model_dir)

    # taught the opposite labels: eval_loss ends above the evaluation before training
    worse = hf.train(hf_project.root, flipped=True, metric="eval_loss", max_regression=0.0)

    assert worse.result.outcome == "rolled-back"
    assert "eval_loss" in worse.result.message
    assert tree_bytes(model_dir) == before
    (kept,) = hf_project.names(f"{hf.MODEL}_replaced-*")
    assert tree_bytes(hf_project.models / kept) != before
    assert tree_bytes(nas / hf.MODEL) == before


def test_a_remote_that_is_down_does_not_stop_training(hf_project, nas, seaweedfs, caplog):
    (closed,) = free_ports(1)
    down = seaweedfs.settings(
        endpoint_url=f"http://127.0.0.1:{closed}",
        retry={"attempts": 2, "initial_wait": 0.1, "max_wait": 0.2, "jitter": 0},
    )
    hf_project.write_config(
        {"name": hf.MODEL, "file": f"{hf.MODEL}/"},
        {"nas": {"type": "local", "path": str(nas)}, "s3": down},
    )
    caplog.set_level(logging.WARNING, logger="agent.integrations")

    safety = hf.train(hf_project.root)

    assert safety.result.outcome == "accepted", safety.result.message
    assert (hf_project.root / "out" / "checkpoint-12").is_dir()  # trained to the last step
    assert not any(p.ok for p in safety.pushes if p.remote == "s3")
    assert any("push to s3 failed" in r.getMessage() for r in caplog.records)
    assert tree_bytes(nas / hf.MODEL) == tree_bytes(hf_project.models / hf.MODEL)
