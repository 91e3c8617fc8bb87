"""`python -m bnviz bench`'s peer rows (bnviz.bench_peers): each peer really logs, the table lists every row, and a
missing peer is reported as skipped. Tiny runs, a few blocks: no timing claims (a shared machine)."""

from __future__ import annotations

import glob
import os
import sys

import pytest

from bnviz import bench, bench_peers
from bnviz.cli import main as cli_main
from bnviz.engine.config import RunConfig
from bnviz.engine.data import BatchStream
from bnviz.engine.targets import Targets
from bnviz.engine.trainer import Run

pytestmark = pytest.mark.usefixtures("engine_one_torch_thread")

TINY = RunConfig(width=4, depth=2, batch_size=16, samples=64)


def tiny_run(engine_digits, steps=50):
    return Run(TINY.replace(record_every=0, steps=steps, eval_every=10**9), engine_digits)


def three_batches(run):
    stream = BatchStream(run.dataset, TINY.batch_size, TINY.seed)
    return [stream.next() for _ in range(3)]


def test_tensorboard_peer_writes_a_histogram_of_every_stage_and_its_gradient_on_recorded_steps(engine_digits):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tiny_run(engine_digits)
    peer = bench_peers.tensorboard_peer(run, 2, three_batches(run)[0][0])
    try:
        for x, y in three_batches(run):
            peer.step(x, y)
        peer.writer.flush()
        events = EventAccumulator(peer.logdir, size_guidance={"histograms": 0})
        events.Reload()
        targets = Targets.from_net(run.model)
        stages = [f"{targets.layers[p.layer]}/{p.stage}" for p in targets.probes]
        assert sorted(events.Tags()["histograms"]) == sorted(stages + [f"{s}/grad" for s in stages])
        assert [e.step for e in events.Histograms(stages[0])] == [0, 2]  # every=2: steps 0 and 2 of 0, 1, 2
        assert events.Histograms(stages[0])[0].histogram_value.num == 16 * 4 * 8 * 8  # the whole tensor
    finally:
        peer.close()
    assert not os.path.exists(peer.logdir)


def test_wandb_peer_logs_parameters_and_gradients_offline_into_a_temporary_directory(engine_digits):
    pytest.importorskip("wandb")
    run = tiny_run(engine_digits)
    mode = os.environ.get("WANDB_MODE")
    peer = bench_peers.wandb_peer(run, 1, None)
    try:
        for x, y in three_batches(run):
            peer.step(x, y)
        keys = set(peer.run.summary.keys())
        names = [n for n, _ in run.model.named_parameters()]
        assert {f"parameters/{n}" for n in names} | {f"gradients/{n}" for n in names} | {"loss"} <= keys
        assert not any(k.startswith(("activations", "blocks")) for k in keys)  # no activations: records less
        assert peer.run.settings.mode == "offline"
        assert glob.glob(os.path.join(peer.root, "**", "*.wandb"), recursive=True)
    finally:
        peer.close()
    assert not os.path.exists(peer.root)
    assert os.environ.get("WANDB_MODE") == mode  # the bench's environment is put back


def test_bench_table_has_every_peer_row_at_both_everys(engine_digits, capsys):
    pytest.importorskip("tensorboard")
    pytest.importorskip("wandb")
    result = bench.measure_peers(TINY, blocks=2, steps_per_block=2, warmup=1)
    rows = result["rows"]
    assert list(rows) == ["bare", "bnviz/1", "floor/1", "copies/1", "tensorboard/1", "wandb/1",
                          "bnviz/10", "floor/10", "copies/10", "tensorboard/10", "wandb/10"]
    assert not result["skipped"]
    assert rows["bare"]["ratio"] == 1.0
    assert all(r["ratio"] > 0 and r["steps_per_s"] > 0 for r in rows.values())
    assert "9" not in rows["bnviz/1"]["records"].split()[0]  # depth 2: 6 stage outputs, not the default's 9
    assert rows["bnviz/1"]["records"].startswith("6 stage outputs + their 6 gradients, 64 sampled values")
    assert "records less than bnviz" in rows["wandb/1"]["records"]
    bench.print_peers(result)
    out = capsys.readouterr().out
    assert "load average (1/5/15 min): before" in out
    for name in ("bare loop", "bnviz", "hooks only (floor)", "hooks + copies (floor)", "TensorBoard add_histogram",
                 "W&B watch(log='all')"):
        assert out.count(name) >= 2  # a row (two for the peers) and its legend line
    assert "skipped" not in out


def test_missing_peers_are_reported_as_skipped(engine_digits, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "wandb", None)  # `import wandb` raises ImportError
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    result = bench.measure_peers(TINY, blocks=2, steps_per_block=2, warmup=1)
    assert list(result["rows"]) == ["bare", "bnviz/1", "floor/1", "copies/1", "bnviz/10", "floor/10", "copies/10"]
    assert set(result["skipped"]) == {"tensorboard", "wandb"}
    bench.print_peers(result)
    out = capsys.readouterr().out
    assert "tensorboard: skipped" in out and "wandb: skipped" in out
    assert "requirements-bench.txt" in out


def test_cli_bench_no_peers_flag_is_accepted(monkeypatch):
    calls = []
    monkeypatch.setattr(bench, "main", lambda **kw: calls.append(kw))
    assert cli_main(["bench", "--quick", "--no-peers"]) == 0
    assert calls == [{"quick": True, "with_peers": False}]


def test_floor_peer_copies_the_sampled_values_of_every_stage_output_and_gradient_and_nothing_else(engine_digits):
    """The floor row's hooks do real work: after a step its buffers hold the values at its sample positions of
    each stage output and of its gradient, read here from the tensors themselves (retain_grad, a second copy)."""
    import torch

    run = tiny_run(engine_digits)
    x, y = three_batches(run)[0]
    peer = bench_peers.hook_floor_peer(run, 1, x)
    targets = Targets.from_net(run.model)
    seen = {}

    def keep(k):
        def hook(module, inputs, output):
            if module.training and torch.is_grad_enabled():
                output.retain_grad()
                seen[k] = output
        return hook

    handles = [p.module.register_forward_hook(keep(k)) for k, p in enumerate(targets.probes)]
    try:
        peer.step(x, y)
        sizes = bench_peers.probe_sizes(run, x)
        g = torch.Generator().manual_seed(run.cfg.seed)
        for k, n in enumerate(sizes):
            idx = torch.randperm(n, generator=g)[:peer.acts.shape[1]].sort().values
            assert torch.equal(peer.acts[k], seen[k].detach().flatten()[idx])
            assert torch.equal(peer.grads[k], seen[k].grad.flatten()[idx])
            assert peer.grads[k].abs().sum() > 0
    finally:
        for h in handles:
            h.remove()
        peer.close()
    assert len(run.history) == 0  # the run itself records nothing


def test_copies_peer_holds_the_weights_before_and_after_each_recorded_step_their_gradients_and_bn_tensors(
        engine_digits):
    """The "hooks + copies" row copies what bnviz's recorder copies: read back from its buffers, a recorded step's
    slot holds the weights as they were before the step (cloned here by hand), the weights after it, their
    gradients and gamma, beta and the running statistics after it; a step that is not recorded (every=2) copies
    nothing."""
    import torch

    run = tiny_run(engine_digits)
    batches = three_batches(run)
    peer = bench_peers.hooks_and_copies_peer(run, 2, batches[0][0])
    copies = peer.copies
    targets = Targets.from_net(run.model)
    weights = [w for _, w in targets.weights]
    try:
        for i, (x, y) in enumerate(batches):
            before = [w.detach().clone() for w in weights]
            slot = copies.slot
            peer.step(x, y)
            if i % 2:
                assert copies.slot == slot  # not recorded: no new slot
                continue
            row = copies.before_buffer.buffer[copies.slot]
            flat_before = torch.cat([w.reshape(-1) for w in before])
            assert torch.equal(row[:flat_before.numel()], flat_before)
            after = copies.after_buffer.buffer[copies.slot]
            expected = torch.cat([w.detach().reshape(-1) for w in weights] + [w.grad.reshape(-1) for w in weights]
                                 + [t.reshape(-1) for n in targets.norms for t in
                                    (n.module.weight.detach(), n.module.bias.detach(), n.module.running_mean,
                                     n.module.running_var)])
            assert torch.equal(after, expected)
            assert not torch.equal(row[:flat_before.numel()], after[:flat_before.numel()])  # the step changed them
        assert peer.acts.abs().sum() > 0 and peer.grads.abs().sum() > 0  # the floor's hooks ran too
    finally:
        peer.close()
    assert f"{len(weights)} weights before and after the step" in copies.describe()
