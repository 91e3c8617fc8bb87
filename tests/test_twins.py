"""bnviz.engine.twins: what two runs of one Job share, checked against what the Job really does."""

from __future__ import annotations

import pytest
import torch

from bnviz.engine.config import RunConfig
from bnviz.engine.trainer import Job
from bnviz.engine.twins import what_runs_share

pytestmark = pytest.mark.usefixtures("engine_one_torch_thread")


def tiny(**changes) -> RunConfig:
    base = {"model": "cnn", "depth": 2, "width": 4, "batch_size": 8, "steps": 3, "eval_every": 3, "samples": 64,
            "hist_bins": 8, "lr": 0.1, "norm": "batch"}
    return RunConfig(**{**base, **changes}).validate()


def job_facts(a: RunConfig, b: RunConfig, datasets) -> tuple[set[str], set[str], bool]:
    """What the Job really does: B's parameters equal to A's at the start, the other ones, and whether the two runs
    train on the same batches."""
    job = Job([a, b], datasets)
    params = [dict(run.model.named_parameters()) for run in job.runs]
    equal = {k for k, v in params[1].items() if k in params[0] and params[0][k].shape == v.shape
             and torch.equal(params[0][k], v)}
    if job.streams[0] is job.streams[1]:  # one stream: each step's batch goes to both runs (Job._work)
        return equal, set(params[1]) - equal, True
    firsts = [stream.next() for stream in job.streams]
    same = firsts[0][0].shape == firsts[1][0].shape and torch.equal(firsts[0][0], firsts[1][0])
    return equal, set(params[1]) - equal, same


def test_same_batch_size_shares_weights_and_batches(engine_datasets):
    a, b = tiny(), tiny(norm="none")
    sharing = what_runs_share(a, b)
    equal, other, same_batches = job_facts(a, b, engine_datasets)
    assert sharing.batches and same_batches
    assert set(sharing.copied) == equal and set(sharing.own) == other
    assert other == {"blocks.0.layer.bias", "blocks.1.layer.bias"}  # BN before the activation drops these biases
    text = sharing.sentence()
    assert "its own initialization gives the rest: 2 biases. They train" in text
    assert "same initial weights where a layer has the same name and shape" in text
    assert "same batches" in text and "different batches" not in text


def test_a_different_batch_size_means_different_batches(engine_datasets):
    a, b = tiny(), tiny(batch_size=16)
    sharing = what_runs_share(a, b)
    equal, other, same_batches = job_facts(a, b, engine_datasets)
    assert not sharing.batches and not same_batches
    assert set(sharing.copied) == equal and not other and not sharing.own
    text = sharing.sentence()
    assert text.startswith("Both runs start from the same initial weights. They train on different batches")
    assert "different batches" in text and "8 and 16" in text and "same batches" not in text


def test_a_different_model_shares_only_the_matching_layers(engine_datasets):
    a, b = tiny(), tiny(model="mlp")
    sharing = what_runs_share(a, b)
    equal, other, same_batches = job_facts(a, b, engine_datasets)
    assert sharing.batches and same_batches
    assert set(sharing.copied) == equal and set(sharing.own) == other
    assert other == {"blocks.0.layer.weight", "blocks.1.layer.weight"}  # conv kernels vs linear matrices
    assert f"{len(equal)} of the second run's {len(equal) + len(other)} weight tensors" in sharing.sentence()
    assert "the weights of 2 layers whose shape differs" in sharing.sentence()


def test_a_different_init_scale_is_not_undone_by_copying(engine_datasets):
    a, b = tiny(), tiny(init_scale=5.0)
    sharing = what_runs_share(a, b)
    job = Job([a, b], engine_datasets)
    pa, pb = (dict(run.model.named_parameters()) for run in job.runs)
    assert job.runs[1].shared_weights == []
    for name in pa:  # the same draws from the same seed, the weights scaled (exactly: kaiming draw times 5)
        factor = 5.0 if name.endswith("layer.weight") or name == "head.weight" else 1.0
        assert torch.equal(pb[name], pa[name] * factor), name
    assert sharing.scale == 5.0 and "multiplied by 5" in sharing.sentence()
    assert sharing.batches and "same batches" in sharing.sentence()


def test_different_data_is_named_without_loading_it():
    a, b = tiny(), tiny(dataset="shapes")
    sharing = what_runs_share(a, b)
    assert not sharing.batches and sharing.copied is None
    assert "their data differ" in sharing.sentence()
    with_shapes = what_runs_share(a, b, data=((3, 16, 16), 4))
    assert with_shapes.copied is not None
