"""bnviz.watch and Targets.discover on models written the way users write theirs (bnviz.engine.example_models).

The recorded numbers are checked three ways: equal to the engine's Recorder driven by hand on a copy of the model
with the same batches; equal to numpy on tensors captured by hooks of my own (at the sampled positions, or every
value where the tensor is sampled completely); equal to the modules' own parameters and buffers.
"""

from __future__ import annotations

import copy
import gc
import weakref
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import bnviz
from bnviz import figures
from bnviz.cli import main as cli_main
from bnviz.engine.config import RunConfig
from bnviz.engine.example_models import layer_norm_mlp, mlp, resnet18_shaped
from bnviz.engine.history import ACT_STATS, CHANNEL_STATS, GRAD_STATS, WEIGHT_STATS, History
from bnviz.engine.models import build_model
from bnviz.engine.recorder import Recorder
from bnviz.engine.targets import Targets
from bnviz.watching import FIGURES

pytestmark = pytest.mark.usefixtures("engine_one_torch_thread")

IMAGE = (1, 16, 16)
DIGITS = (1, 8, 8)
MODELS = {  # name -> (builder, input shape, batch size)
    "resnet": (lambda: resnet18_shaped(seed=1), IMAGE, 8),
    "mlp": (lambda: mlp(seed=1), DIGITS, 16),
    "layernorm": (lambda: layer_norm_mlp(seed=1), DIGITS, 16),
}


def batches(n, batch_size, shape, seed=7):
    g = torch.Generator().manual_seed(seed)
    return [(torch.rand((batch_size, *shape), generator=g), torch.randint(10, (batch_size,), generator=g))
            for _ in range(n)]


def all_hooks(model: nn.Module) -> int:
    """Module hooks of every kind on every submodule, plus hooks on parameters."""
    count = 0
    for m in model.modules():
        count += sum(len(d) for d in (m._forward_hooks, m._forward_pre_hooks, m._backward_hooks,
                                      m._backward_pre_hooks, m._forward_hooks_with_kwargs))
    return count + sum(len(p._backward_hooks or {}) for p in model.parameters())


def train_watched(model, data, *, lr=0.1, capture=None, **kw):
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    with bnviz.watch(model, optimizer=opt, **kw) as w:
        for x, y in data:
            if capture is not None:
                capture.start()
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if capture is not None:
                capture.stop()
            w.step(loss=loss.item())
    return w


def train_engine(model, data, *, lr=0.1, **kw):
    """The engine's Recorder, driven by hand the way the trainer drives it, on the same discovered targets."""
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    with Recorder(Targets.discover(model), **kw) as rec:
        for step, (x, y) in enumerate(data):
            rec.begin(step)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            rec.end(loss=loss.item(), lr=lr)
    return rec


# ---- discovery -------------------------------------------------------------------------------------------------
def resnet_layer_names():
    names = ["conv1"]
    for stage in range(1, 5):
        for block in range(2):
            names += [f"layer{stage}.{block}.conv1", f"layer{stage}.{block}.conv2"]
            if stage > 1 and block == 0:
                names.append(f"layer{stage}.0.downsample.0")
    return names + ["fc"]


def stages_of(targets):
    return {targets.layers[i]: [p.stage for p in targets.probes if p.layer == i] for i in range(len(targets.layers))}


def test_discover_resnet18_shaped():
    model = resnet18_shaped()
    t = Targets.discover(model)
    assert t.layers == resnet_layer_names()
    stages = stages_of(t)
    modules = dict(model.named_modules())
    for name in t.layers:
        owner = name.rsplit(".", 1)[0] if "." in name else ""
        if name == "fc":
            assert stages[name] == ["pre"]
        elif name.endswith("conv1"):  # conv1 -> bn1 -> the block's (shared) ReLU
            assert stages[name] == ["pre", "norm", "act"]
        else:  # conv2 -> bn2, then the residual add (no module): no act stage; downsample conv -> BN
            assert stages[name] == ["pre", "norm"], name
        probes = {p.stage: p.module for p in t.probes if t.layers[p.layer] == name}
        assert probes["pre"] is modules[name]
        if "norm" in probes:
            bn_name = name.replace("conv", "bn") if not name.endswith("downsample.0") else owner + ".1"
            assert probes["norm"] is modules[bn_name]
        if "act" in probes:
            assert probes["act"] is modules[f"{owner}.relu" if owner else "relu"]
    assert [p.kind for p in t.probes if p.stage == "act"] == ["relu"] * 9
    assert len(t.norms) == 20 and all(isinstance(n.module, nn.BatchNorm2d) for n in t.norms)
    assert [n for n, _ in t.weights] == [f"{name}.weight" for name in t.layers]
    assert all(w is modules[n.removesuffix(".weight")].weight for n, w in t.weights)


def test_discover_mlp_and_layer_norm_model():
    t = Targets.discover(mlp(sizes=(64, 32, 32, 10), activation=nn.Tanh))
    assert t.layers == ["1", "3", "5"]  # nn.Sequential paths
    assert stages_of(t) == {"1": ["pre", "act"], "3": ["pre", "act"], "5": ["pre"]}
    assert [p.kind for p in t.probes if p.stage == "act"] == ["tanh", "tanh"] and not t.norms
    t = Targets.discover(layer_norm_mlp())
    assert stages_of(t) == {"1": ["pre", "norm", "act"], "4": ["pre", "norm", "act"], "7": ["pre"]}
    assert all(isinstance(n.module, nn.LayerNorm) for n in t.norms)
    assert [p.kind for p in t.probes if p.stage == "act"] == ["", ""]  # GELU: no saturation measure


def test_discover_bnviz_net_finds_the_same_modules_as_from_net():
    net = build_model(RunConfig(norm="batch", depth=3, width=4), DIGITS, 10)
    ours, engine = Targets.discover(net), Targets.from_net(net)
    assert ours.layers == ["blocks.0.layer", "blocks.1.layer", "blocks.2.layer", "head"]
    assert [(p.layer, p.stage, p.module, p.kind) for p in ours.probes][:9] == \
        [(p.layer, p.stage, p.module, p.kind) for p in engine.probes]
    assert [n.module for n in ours.norms] == [n.module for n in engine.norms]
    assert [w for _, w in ours.weights] == [w for _, w in engine.weights]


def test_discover_activation_registered_before_the_norm_and_standalone_norms():
    model = nn.Sequential(nn.LayerNorm(8), nn.Linear(8, 8), nn.ReLU(), nn.BatchNorm1d(8), nn.BatchNorm1d(8),
                          nn.Tanh(), nn.Linear(8, 2))
    t = Targets.discover(model)
    assert stages_of(t) == {"0": ["norm"], "1": ["pre", "act", "norm"], "4": ["norm", "act"], "6": ["pre"]}
    meta = bnviz.watch(model).history.meta["watch"]
    assert meta["act_input"] == ["norm", "pre", "norm", "pre"]  # conv -> ReLU -> BN: the ReLU's input is "pre"
    assert meta["pre"] == ["", "linear", "", "linear"]


def test_discover_include_filter():
    model = resnet18_shaped()
    assert Targets.discover(model, include=["layer1", "fc"]).layers == \
        ["layer1.0.conv1", "layer1.0.conv2", "layer1.1.conv1", "layer1.1.conv2", "fc"]
    only_bn = Targets.discover(model, include=lambda name, m: isinstance(m, nn.BatchNorm2d) and "layer4" in name)
    assert [stages_of(only_bn)[n] for n in only_bn.layers] == [["norm"]] * 5 and not only_bn.weights
    with pytest.raises(ValueError, match="'layer9'"):
        Targets.discover(model, include=["layer9"])
    with pytest.raises(ValueError, match="found no conv, linear or normalization layer"):
        Targets.discover(nn.Sequential(nn.ReLU(), nn.Flatten()))


# ---- watch records what the engine records ---------------------------------------------------------------------
def history_arrays(h: History) -> dict:
    return {**{k: h.column(k) for k in h.data}, "hist_edges": h.hist_edges}


@pytest.mark.parametrize("name", list(MODELS))
def test_watch_records_what_the_engine_recorder_records(name):
    build, shape, batch = MODELS[name]
    model = build()
    twin = copy.deepcopy(model)
    data = batches(5, batch, shape)
    w = train_watched(model, data, samples=256, bins=16)
    rec = train_engine(twin, data, samples=256, bins=16)
    ours, engine = history_arrays(w.history), history_arrays(rec.history)
    assert list(w.history.steps) == [0, 1, 2, 3, 4]
    for key in engine:
        np.testing.assert_array_equal(ours[key], engine[key], err_msg=key)
    assert w.history.layout == rec.history.layout


# ---- and what numpy says about the very same tensors ----------------------------------------------------------
class Capture:
    """My own hooks: every probe's output (cloned when produced) and its gradient, every norm's input."""

    def __init__(self, targets: Targets):
        self.targets, self.on = targets, False
        self.handles = []
        for k, p in enumerate(targets.probes):
            self.handles.append(p.module.register_forward_hook(self._probe(k)))
        for j, n in enumerate(targets.norms):
            self.handles.append(n.module.register_forward_hook(self._norm(j)))
        self.steps = []

    def _probe(self, k):
        def hook(module, inputs, output):
            if self.on and k not in self.out:  # first call, like the recorder
                self.out[k] = output.detach().clone().double().numpy()
                output.register_hook(lambda g: self.grad.__setitem__(k, g.detach().double().numpy().copy()))
        return hook

    def _norm(self, j):
        def hook(module, inputs, output):
            if self.on and j not in self.norm_in:
                self.norm_in[j] = inputs[0].detach().double().numpy().copy()
        return hook

    def _weights(self):
        return [w.detach().double().numpy().copy() for _, w in self.targets.weights]

    def start(self):
        self.out, self.grad, self.norm_in, self.on = {}, {}, {}, True
        self.w_before = self._weights()

    def stop(self):
        self.on = False
        self.steps.append({"out": self.out, "grad": self.grad, "norm_in": self.norm_in, "w_before": self.w_before,
                           "w_after": self._weights(), "params": [
            {a: getattr(n.module, a).detach().double().numpy().copy() for a in
             ("weight", "bias", "running_mean", "running_var") if getattr(n.module, a, None) is not None}
            for n in self.targets.norms]})

    def remove(self):
        for h in self.handles:
            h.remove()


def close(actual, expected, atol=1e-6, what=""):
    np.testing.assert_allclose(np.asarray(actual, np.float64), expected, rtol=1e-5, atol=atol, err_msg=what)


@pytest.mark.parametrize("name", list(MODELS))
def test_watched_statistics_equal_numpy_on_captured_tensors(name):
    build, shape, batch = MODELS[name]
    model = build()
    cap = Capture(Targets.discover(model))  # same discovery, so probe k is the same module in both
    w = train_watched(model, batches(3, batch, shape), samples=512, bins=16, capture=cap)
    cap.remove()
    h, rec = w.history, w.recorder
    col, gcol, ccol = ACT_STATS.index, GRAD_STATS.index, CHANNEL_STATS.index
    fully_sampled = 0
    for row, r in enumerate(cap.steps):
        for k, probe in enumerate(rec.targets.probes):
            full = r["out"][k].reshape(-1)
            idx = rec.sample_indices(k, full.size).numpy()
            v = full[idx]
            if len(idx) == full.size:  # every value sampled: the statistics are those of the whole tensor
                fully_sampled += 1
                assert np.array_equal(np.sort(idx), np.arange(full.size))
                v = full
            stats = h.column("act_stats")[row, k]
            tag = f"{name} step {row} {h.layout.layers[probe.layer]} {probe.stage}"
            close(stats[col("mean")], v.mean(), what=tag)
            close(stats[col("std")], v.std(), what=tag)
            for q in (15, 50, 85):
                close(stats[col(f"p{q}")], np.percentile(v, q), what=tag)
            if probe.kind == "relu":
                close(stats[col("frac_dead")], np.mean(v == 0), what=tag)
            g = r["grad"][k].reshape(-1)
            close(h.column("grad_stats")[row, k, gcol("grad_norm")], np.sqrt(g.size * np.mean(g[idx] ** 2)), what=tag)
        slices = h.layout.channel_slices()
        for j in range(len(rec.targets.norms)):
            ch = h.column("channels")[row, slices[j]]
            params = r["params"][j]
            close(ch[:, ccol("gamma")], params["weight"], atol=0)
            close(ch[:, ccol("beta")], params["bias"], atol=0)
            if "running_mean" in params:  # batch norm: running stats are the buffers, batch stats those of x
                close(ch[:, ccol("running_mean")], params["running_mean"], atol=0)
                close(ch[:, ccol("running_var")], params["running_var"], atol=0)
                x = r["norm_in"][j]
                axes = (0, 2, 3) if x.ndim == 4 else (0,)
                close(ch[:, ccol("batch_mean")], x.mean(axis=axes), atol=2e-5)
                close(ch[:, ccol("batch_var")], x.var(axis=axes), atol=2e-5 * (1 + x.var(axis=axes).max()))
            else:
                assert np.isnan(ch[:, ccol("running_mean")]).all()
        wcol = WEIGHT_STATS.index
        for i, (before, after) in enumerate(zip(r["w_before"], r["w_after"], strict=True)):  # all values, not sampled
            ws = h.column("weight_stats")[row, i]
            close(ws[wcol("w_norm")], np.linalg.norm(before), atol=1e-5)
            close(ws[wcol("update_data")], (after - before).std() / before.std(), atol=1e-6)
    assert fully_sampled >= 3  # the smallest tensor (the logits) is sampled completely at every step


def test_inplace_add_and_shared_relu_are_recorded_at_the_right_moment():
    """bn2's output is changed in place by `out += identity` and then by the in-place ReLU: the norm stage must
    show bn2's own output, and the reused ReLU its first call (after bn1), not its second (after the add)."""
    model = resnet18_shaped(seed=2)
    x, _ = batches(1, 8, IMAGE)[0]
    block = model.layer1[0]
    seen = {}

    def keep_first(key):
        def hook(module, inputs, output):
            if key not in seen:
                seen[key] = output.detach().clone()
        return hook

    h1 = block.bn2.register_forward_hook(keep_first("bn2"))
    h2 = block.relu.register_forward_hook(keep_first("relu"))
    with bnviz.watch(model, samples=10**6) as w:  # the sample size is then that of the smallest tensor
        model(x).sum().backward()
        w.step(loss=0.0)
    h1.remove(), h2.remove()
    h = w.history
    for stage, key in (("norm", "bn2"), ("act", "relu")):
        layer = "layer1.0.conv2" if key == "bn2" else "layer1.0.conv1"
        k = h.probe_index(w.layers.index(layer), stage)
        v = seen[key].reshape(-1).double().numpy()[w.recorder.sample_indices(k, seen[key].numel()).numpy()]
        close(h.act("mean")[0, k], v.mean(), what=key)
        close(h.act("p50")[0, k], np.median(v), what=key)
    bn2 = h.probe_index(w.layers.index("layer1.0.conv2"), "norm")
    assert h.act("min")[0, bn2] < 0  # before the add and the ReLU: BN output has negative values


# ---- the step protocol and hooks --------------------------------------------------------------------------------
def test_every_and_eval_passes():
    model = layer_norm_mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    data = batches(5, 16, DIGITS)
    with bnviz.watch(model, every=2, optimizer=opt) as w:
        for x, y in data:
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss=loss)  # a tensor is fine
            model.eval()
            with torch.no_grad():
                model(x)
            model.train()
            with torch.no_grad():  # a train-mode pass without gradients does not start a step either
                model(x)
    h = w.history
    assert list(h.steps) == [0, 2, 4] and w.steps == 5
    np.testing.assert_allclose(h.scalar("lr"), 0.1)
    assert np.isfinite(h.scalar("loss")).all()


def test_bad_scalar_and_missing_step_call():
    model = mlp()
    x, y = batches(1, 4, DIGITS)[0]
    with bnviz.watch(model) as w:
        with pytest.raises(ValueError, match="records loss"):
            w.step(loss=1.0, accuracy=0.5)
    with pytest.warns(UserWarning, match="w.step"), bnviz.watch(model) as w:
        F.cross_entropy(model(x), y).backward()
    assert len(w.history) == 0


@pytest.mark.parametrize("name", list(MODELS))
def test_hooks_are_gone_after_the_block_also_when_the_loop_raises(name):
    build, shape, batch = MODELS[name]
    model = build()
    before = all_hooks(model)
    data = batches(3, batch, shape)
    train_watched(model, data)
    assert all_hooks(model) == before == 0
    refs = []
    keep = model.register_forward_hook(lambda m, i, o: refs.append(weakref.ref(o)))
    with pytest.raises(RuntimeError, match="boom"), bnviz.watch(model) as w:
        assert all_hooks(model) > 1
        for step, (x, y) in enumerate(data):
            F.cross_entropy(model(x), y).backward()
            if step == 2:
                raise RuntimeError("boom")  # mid-step: forward and backward done, w.step not called
            w.step(loss=0.0)
    keep.remove()
    assert all_hooks(model) == 0
    assert list(w.history.steps) == [0, 1]  # the complete steps, flushed on the way out
    x, y = data[0]
    F.cross_entropy(model(x), y).backward()  # nothing listens any more
    assert len(w.history) == 2
    gc.collect()
    assert all(r() is None for r in refs)  # no output tensor (nor its graph) kept alive by a leftover hook


# ---- figures, files, report ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def watched_resnet():
    torch.set_num_threads(1)
    model = resnet18_shaped()
    return train_watched(model, batches(6, 8, IMAGE), samples=256)


def test_every_named_figure_builds_with_module_paths(watched_resnet):
    w = watched_resnet
    for name in FIGURES:
        fig = w.figure(name)
        assert fig.data, name
    assert w.figure("distribution", layer="layer2.0.conv1").layout.title.text == \
        "layer2.0.conv1: distribution of the BN output (input to the ReLU)"
    assert "layer2.0.conv2" in w.figure("gamma_beta", layer="layer2.0.conv2").layout.title.text
    assert w.figure("gamma_beta").layout.title.text.startswith("conv1:")  # default: the first normalized layer
    assert w.figure("gradients").layout.height > figures.HEIGHT  # 21 legend entries: the chart grows, the plot stays
    assert w.figure("loss").layout.height == figures.HEIGHT
    colours = {t.name: t.line.color for t in w.figure("update_data").data if t.showlegend is not False}
    assert colours["layer1.0.conv1"] != figures.GUIDE_COLOR  # weights are matched to their layers
    with pytest.raises(ValueError, match="distributions"):
        w.figure("nope")


def test_chart_helpers_on_a_watched_history(watched_resnet):
    h = watched_resnet.history
    layers = h.layout.layers
    assert "config" not in h.meta
    assert figures.activation_input_stage(h, layers.index("conv1")) == "norm"
    assert figures.activation_input_stage(h, layers.index("layer1.0.conv2")) == "norm"
    assert figures.activation_input_stage(h, layers.index("fc")) == "pre"
    assert figures.stage_label(h, 0, "pre") == "conv output"
    assert figures.stage_label(h, layers.index("fc"), "pre") == "linear output"  # no activation module after fc
    assert figures.stage_label(h, 0, "norm") == "BN output (input to the ReLU)"
    assert figures.stage_label(h, 0, "act") == "ReLU output"
    ln = train_watched(layer_norm_mlp(), batches(2, 16, DIGITS)).history
    assert figures.stage_label(ln, 0, "norm") == "layer norm output (input to the activation)"
    assert "no running statistics" in figures.running_vs_batch(ln, 0).layout.annotations[0].text.replace("<br>", " ")


def test_save_load_and_report(watched_resnet, tmp_path, capsys):
    w = watched_resnet
    out = w.save(tmp_path / "run")
    loaded = History.load(out)
    assert loaded.layout == w.history.layout and loaded.meta["watch"]["model"] == "ResNet"
    for key, value in history_arrays(w.history).items():
        np.testing.assert_array_equal(history_arrays(loaded)[key], value, err_msg=key)
    small = train_watched(mlp(), batches(3, 16, DIGITS)).save(tmp_path / "mlp")
    assert cli_main(["report", str(small)]) == 0
    assert (small / "report" / "index.html").exists()
    assert "Sequential watched with bnviz.watch" in (small / "report" / "index.html").read_text()
    assert "gamma_beta_1" not in {p.stem for p in (small / "report").iterdir()}


def test_import_bnviz_is_light_and_exports_watch():
    import subprocess
    import sys

    code = "import sys, bnviz; assert 'torch' not in sys.modules and 'streamlit' not in sys.modules; " \
           "w = bnviz.watch; assert 'streamlit' not in sys.modules; print(w.__module__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "bnviz.watching"


def test_readme_example_runs(tmp_path, monkeypatch):
    """The snippet under "Watch your own model" in README.md, executed as written (in a temporary folder)."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("## Watch your own model (Jupyter)", 1)[1]
    snippet = section.split("```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(snippet, "README.md", "exec"), scope)
    w = scope["w"]
    assert len(w.history) == 200 and w.layers == ["0", "5"]
    assert History.load(tmp_path / "runs" / "mine").layout == w.history.layout


def test_chart_helpers_ignore_malformed_watch_meta(watched_resnet):
    h = watched_resnet.history.copy()
    h.meta["watch"] = {"act_input": [["norm"]] * 30, "pre": [{"a": 1}] * 30}  # a tampered run.json
    assert figures.activation_input_stage(h, 0) == "pre"
    assert figures.stage_label(h, 0, "pre") == "layer output (input to the ReLU)"


def test_bench_of_watch_runs_and_cli_flag(capsys):
    from bnviz import bench

    out = bench.measure_watch_overhead(blocks=2, steps_per_block=2, warmup=1, batch_size=4)
    assert out["layers"] == 21 and out["probes"] == 50 and out["rows"] == 2 * 2 + 1  # warmup and blocks, watched
    assert out["ratio"] > 0 and out["bare_steps_per_s"] > 0  # no timing claims in tests
    assert set(out["floors"]) == {"hooks only (floor)", "hooks + copies (floor)"}
    assert all(row["ratio"] > 0 for row in out["floors"].values())
    assert cli_main(["bench", "--model", "vgg"]) == 2
    assert "invalid choice" in capsys.readouterr().err


def test_a_second_training_pass_in_a_step_leaves_batch_stats_unknown_not_wrong():
    """Two train-mode forward passes in one step update BN's running statistics twice: the batch statistics
    cannot be solved from them, so that step shows NaN; a normal step next to it is still exact."""
    model = resnet18_shaped(widths=(4, 4, 4, 4))
    data = batches(2, 8, IMAGE)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    inputs = []
    hook = model.bn1.register_forward_hook(lambda m, i, o: inputs.append(i[0].detach().double().numpy().copy()))
    with bnviz.watch(model) as w:
        for step, (x, y) in enumerate(data):
            loss = F.cross_entropy(model(x), y)
            if step == 1:
                model(x)  # e.g. a train-mode accuracy check: moves the running statistics a second time
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss=loss.item())
    hook.remove()
    ch = w.history.column("channels")[:, w.history.layout.channel_slices()[0]]
    mean = ch[..., CHANNEL_STATS.index("batch_mean")]
    close(mean[0], inputs[0].mean(axis=(0, 2, 3)), atol=2e-5)
    assert np.isnan(mean[1]).all()
    close(ch[1, :, CHANNEL_STATS.index("running_mean")], model.bn1.running_mean.double().numpy(), atol=0)
