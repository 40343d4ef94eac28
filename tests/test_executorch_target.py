"""ExecuTorch target: 26m (fixture weights) and EfficientNet-Lite0 (trained weights) lowered to
XNNPACK and run on the pip wheel's runtime (`executorch.runtime`).

Default run: fp32 of both models (every op delegated, parity, threads, bench, inspect, bad
input). Slow: int8 and fp16 exports (each 26m lowering is over a minute on this machine).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from mfdeploy.artifact import Manifest, seal
from mfdeploy.errors import MfdeployError
from mfdeploy.export import export_artifact
from mfdeploy.harness.inspect import audit
from mfdeploy.metrics import cosine
from mfdeploy.photos import resolve_images
from mfdeploy.preprocessing import load_image, preprocess
from mfdeploy.runtimes import open_runtime
from tests.conftest import WEIGHTS_26M, max_abs

pytest.importorskip("executorch.runtime")
MODELS = ("26m", "efficientnet_lite0")
FP16_SCALAR_CAST = "dim_order_ops::_to_dim_order_copy.out"


@pytest.fixture(scope="module")
def photos() -> np.ndarray:
    return np.stack([preprocess(load_image(p)) for p in resolve_images(None, "evaluation")])


def test_fp32_matches_pytorch_on_fixture_and_every_photo(
    exported, reference_26m, fixture_inputs, photos
):
    runtime = open_runtime(exported("executorch", "fp32"), threads=1)
    assert max_abs(runtime.run(fixture_inputs), reference_26m(fixture_inputs)) <= 1e-4
    assert max_abs(runtime.run(photos), reference_26m(photos)) <= 1e-4


def _every_op_delegated(path: Path) -> None:
    report = audit(path)
    assert report.format == "pte"
    assert report.portable_ops == {}, report.portable_ops
    assert report.delegate_calls == 1
    assert report.passed and report.max_rank <= 4
    assert any(op.startswith("xnnpack:XNNConv2d") for op in report.ops)


@pytest.mark.parametrize("model", MODELS)
def test_fp32_every_op_runs_in_the_xnnpack_delegate(exported, model):
    _every_op_delegated(exported("executorch", "fp32", model))


# EfficientNet-Lite0's int8 export (~2 min) is slow-marked; 26m's is a default matrix cell.
@pytest.mark.parametrize(
    "model", ["26m", pytest.param("efficientnet_lite0", marks=pytest.mark.slow)]
)
def test_int8_every_op_runs_in_the_xnnpack_delegate(exported, model):
    _every_op_delegated(exported("executorch", "int8", model))


def test_manifest_records_what_is_inside(exported):
    fp32 = Manifest.load(exported("executorch", "fp32"))
    assert fp32.target == "executorch" and fp32.model_file == "model.pte"
    assert fp32.input.shape == [1, 3, 224, 224] and fp32.input.layout == "NCHW"
    assert fp32.input.dtype == fp32.output.dtype == "float32"
    assert fp32.extra["portable_ops"] == {}
    assert fp32.extra["backend"] == "xnnpack"


def test_inspect_cli_lists_delegated_and_portable_ops(exported, capfd):
    code, out, err = _main(capfd, "inspect", str(exported("executorch", "fp32")))
    assert code == 0, err
    assert "XNNPACK delegate calls: 1; ops on portable kernels: 0" in out
    assert "xnnpack:XNNConv2d" in out


class _TwoLinears(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.first = nn.Linear(16, 16)
        self.second = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.second(torch.relu(self.first(x)))


def _linears_by_input(graph: torch.fx.GraphModule) -> dict[str, set[str]]:
    """Module paths of the linears reading an int8 weight, by how their input is quantised:
    "static" (a calibrated scale) or "dynamic" (a scale chosen at run time)."""
    found: dict[str, set[str]] = {"static": set(), "dynamic": set()}
    for node in graph.graph.nodes:
        if node.op == "call_function" and "linear" in str(node.target):
            source, weight = node.args[0], node.args[1]
            if "dequantize" not in str(getattr(weight, "target", "")):
                continue
            scale = source.args[1] if len(getattr(source, "args", ())) > 1 else None
            chosen = getattr(scale, "args", None) and scale.args[0]  # getitem(choose_qparams)
            dynamic = "choose_qparams" in str(getattr(chosen, "target", ""))
            kind = "dynamic" if dynamic else "static"
            stack = node.meta.get("nn_module_stack", {}).values()
            found[kind].update(path for path, _ in stack if path)
    return found


def test_int8_float_modules_keep_float_activations():
    """The measured (or given) float set reaches XNNPACKQuantizer: those modules' activations
    stay float (their linears take int8 weights with run-time input scales, XNNPACK's qd8),
    the other modules' are calibrated int8."""
    from mfdeploy.export.executorch import dynamic_chains, quantize_int8
    from mfdeploy.export.int8_sensitivity import float_regex

    torch.manual_seed(0)
    model = _TwoLinears().eval()
    example = torch.zeros(1, 16)
    calib = np.random.default_rng(0).standard_normal((4, 1, 16)).astype(np.float32)
    calib = calib.reshape(4, 16)
    all_int8 = quantize_int8(model, example, calib, "")
    assert _linears_by_input(all_int8) == {"static": {"first", "second"}, "dynamic": set()}
    assert dynamic_chains(all_int8) == 0
    kept = quantize_int8(model, example, calib, float_regex(("second",)))
    assert _linears_by_input(kept) == {"static": {"first"}, "dynamic": {"second"}}
    assert dynamic_chains(kept) == 1


def _runs_as_the_graph_does(graph, example: torch.Tensor, path: Path) -> Path:
    """Lower a converted PT2E graph to `path`; its .pte must run and match the graph."""
    from executorch.runtime import Runtime

    from mfdeploy.export import executorch_lower as lower

    with torch.no_grad():
        lower.lower_to_pte(lower.export_for_xnnpack(graph, example), path)
        expected = graph(example).numpy()
    out = Runtime.get().load_program(path).load_method("forward").execute([example])[0]
    assert max_abs(out.numpy(), expected) <= 0.02 * np.abs(expected).max()
    return path


class _SharedInput(nn.Module):
    """A bridge's k and v: two linears reading one input."""

    def __init__(self) -> None:
        super().__init__()
        self.first = nn.Linear(16, 16)
        self.k = nn.Linear(16, 16)
        self.v = nn.Linear(16, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.first(x))
        return self.k(h) * self.v(h)


def test_float_linears_sharing_an_input_run_in_xnnpack(tmp_path):
    """Two qd8 linears reading one input (a bridge's k and v) each get their own run-time
    quantisation of it: with one shared, 26m's int8 program (float set blocks.0,
    bridge_final; its matrix cell) failed in XNNPACK at run time. The program runs and
    computes what the PT2E graph does."""

    from mfdeploy.export.executorch import dynamic_chains, quantize_int8
    from mfdeploy.export.int8_sensitivity import float_regex

    torch.manual_seed(0)
    model = _SharedInput().eval()
    example = torch.randn(1, 3, 16)
    calib = np.random.default_rng(0).standard_normal((4, 3, 16)).astype(np.float32)
    graph = quantize_int8(model, example, calib, float_regex(("k", "v")))
    assert dynamic_chains(graph) == 2
    _runs_as_the_graph_does(graph, example, tmp_path / "m.pte")


class _PointwiseConvs(nn.Module):
    """On a 4x4 map: `pw` (8 -> 32, weight 2x its input) is a 1x1 convolution qd8 pays for,
    `narrow` (32 -> 2, weight 1/8 of its input) one it does not, `spatial` a 3x3 one."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.pw = nn.Conv2d(8, 32, 1)
        self.spatial = nn.Conv2d(32, 32, 3, padding=1)
        self.narrow = nn.Conv2d(32, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.stem(x))
        return self.narrow(self.spatial(self.pw(h) * 0.5))


def test_float_pointwise_convolutions_get_qd8_where_it_pays_and_run(tmp_path):
    """The float modules' 1x1 convolutions get int8 weights with run-time input scales where
    qd8_rule says so (`pw`), not the others (`narrow`, `spatial`); the program runs in
    XNNPACK and computes what the PT2E graph does."""

    from mfdeploy.export.executorch import dynamic_chains, dynamic_convolutions, quantize_int8
    from mfdeploy.export.int8_sensitivity import float_regex

    torch.manual_seed(0)
    model = _PointwiseConvs().eval()
    example = torch.randn(1, 3, 4, 4)
    calib = np.random.default_rng(0).standard_normal((4, 3, 4, 4)).astype(np.float32)
    graph = quantize_int8(model, example, calib, float_regex(("pw", "spatial", "narrow")))
    assert dynamic_convolutions(graph) == 1 and dynamic_chains(graph) == 1
    dynamic = [
        n.meta["nn_module_stack"]
        for n in graph.graph.nodes
        if n.op == "call_function" and "conv" in str(n.target)
        and "dequantize" in str(n.args[0].target) and isinstance(n.args[0].args[1], torch.fx.Node)
    ]  # fmt: skip
    assert [list(stack.values())[-1][0] for stack in dynamic] == ["pw"]
    assert dynamic_convolutions(quantize_int8(model, example, calib, "")) == 0
    path = _runs_as_the_graph_does(graph, example, tmp_path / "m.pte")
    assert not audit(path).portable_ops


class _PooledConv(nn.Module):
    """A 1x1 convolution reading a keepdim sum, as MobileViTv2's attention key does."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.pw = nn.Conv2d(8, 32, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pw(torch.relu(self.stem(x)).sum(dim=3, keepdim=True)) * 0.5


def test_a_qd8_convolution_xnnpack_refuses_at_run_time_is_found_and_left_float(tmp_path, capfd):
    """XNNPACK (ExecuTorch 1.5) lowers a qd8 convolution reading a sum and then refuses to run
    it; `run_refusal` finds that and returns XNNPACK's reason (its C++ log lines kept off the
    console), and the program quantised again with the float modules' convolutions float
    (what the exporter then ships) runs."""
    from mfdeploy.export import executorch_lower as lower
    from mfdeploy.export.executorch import dynamic_convolutions, quantize_int8, run_refusal
    from mfdeploy.export.int8_sensitivity import float_regex

    torch.manual_seed(0)
    model = _PooledConv().eval()
    example = torch.randn(1, 3, 4, 4)
    calib = np.random.default_rng(0).standard_normal((4, 3, 4, 4)).astype(np.float32)
    refusals = []
    for convolutions in (True, False):
        graph = quantize_int8(model, example, calib, float_regex(("pw",)), convolutions)
        assert dynamic_convolutions(graph) == int(convolutions)
        path = tmp_path / f"{convolutions}.pte"
        lower.lower_to_pte(lower.export_for_xnnpack(graph, example), path)
        refusals.append(run_refusal(path, example))
    assert "Propagating input shapes failed" in refusals[0]
    assert refusals[1] is None
    assert "Propagating" not in capfd.readouterr().err


def test_int8_manifest_records_the_measured_plan_and_is_smaller(exported):
    fp32, int8 = exported("executorch", "fp32"), exported("executorch", "int8")
    manifest = Manifest.load(int8)
    plan = manifest.extra["int8_plan"]
    assert plan["chosen_by"] == "measured" and plan["candidates"]
    assert manifest.extra["calibration_images"] > 0
    assert manifest.input.dtype == manifest.output.dtype == "float32"
    assert (int8 / "model.pte").stat().st_size < 0.4 * (fp32 / "model.pte").stat().st_size
    assert audit(int8).ops.get("xnnpack:XNNConvert", 0) >= 1  # float <-> int8 conversions


def test_fp16_runs_float16_and_keeps_top1(exported, reference_26m, fixture_inputs):
    path = exported("executorch", "fp16")
    manifest = Manifest.load(path)
    assert manifest.input.dtype == "float16"
    out = open_runtime(path).run(fixture_inputs)
    assert out.dtype == np.float32
    ref = reference_26m(fixture_inputs)
    assert np.array_equal(out.argmax(1), ref.argmax(1))
    assert cosine(ref, out) >= 0.999
    # Known gap (docs/executorch.md): float32 scalar constants cast to float16 at run time
    # stay outside the delegate; no compute op may.
    assert set(audit(path).portable_ops) <= {FP16_SCALAR_CAST}


@pytest.mark.slow
def test_efficientnet_int8_top1_within_2_points_of_fp32(exported):
    from mfdeploy.harness.accuracy import accuracy, labelled_images
    from mfdeploy.preprocessing import Preprocessing

    pairs = labelled_images(None)
    results = {}
    for precision in ("fp32", "int8"):
        runtime = open_runtime(exported("executorch", precision, "efficientnet_lite0"))
        prep = Preprocessing.from_dict(runtime.manifest.preprocessing)
        results[precision] = accuracy(runtime.run, pairs, prep)
    assert results["int8"].top1 >= results["fp32"].top1 - 0.02, results


THREADS_SCRIPT = """
import json, os, sys
import numpy as np
from mfdeploy.runtimes import open_runtime
rt = open_runtime(sys.argv[1], threads=int(sys.argv[2]))
rt.run(np.zeros((1, 3, 224, 224), np.float32))
print(json.dumps({"pool": rt.info().threads, "os_threads": len(os.listdir("/proc/self/task"))}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/self/task")
def test_threads_option_sizes_the_threadpool(exported):
    """threads N: the XNNPACK threadpool has N threads (N - 1 workers + the caller), counted
    by the OS, not only as the runtime reports it."""
    path = exported("executorch", "fp32")
    seen = {}
    for n in (1, 3):
        proc = subprocess.run(
            [sys.executable, "-c", THREADS_SCRIPT, str(path), str(n)],
            capture_output=True,
            text=True,
            check=True,
        )
        seen[n] = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen[1]["pool"] == 1 and seen[3]["pool"] == 3
    assert seen[3]["os_threads"] - seen[1]["os_threads"] == 2


def test_bench_worker_honours_threads(exported):
    proc = _cli(
        "bench",
        "--artifact",
        str(exported("executorch", "fp32")),
        "--threads",
        "1,2",
        "--runs",
        "2",
        "--warmup",
        "1",
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    assert [(r["backend"], r["threads"]) for r in rows] == [("executorch", 1), ("executorch", 2)]
    assert all(r["executor"] == "xnnpack" and r["latency_ms"]["median"] > 0 for r in rows)


# ---- bad input ------------------------------------------------------------------------------


def _copy(src: Path, tmp_path: Path, name: str = "a") -> Path:
    dst = tmp_path / name
    shutil.copytree(src, dst)
    return dst


def _reseal(artifact: Path) -> None:
    """Record the (changed) model file's sha256 in the manifest, as a careless tool would."""
    seal(artifact, Manifest.load(artifact))


def test_tampered_pte_is_refused(exported, tmp_path):
    art = _copy(exported("executorch", "fp32"), tmp_path)
    data = bytearray((art / "model.pte").read_bytes())
    data[4:8] = b"XXXX"  # the flatbuffer file identifier ("ET12")
    (art / "model.pte").write_bytes(bytes(data))
    with pytest.raises(MfdeployError, match="sha256"):
        open_runtime(art)
    _reseal(art)
    with pytest.raises(MfdeployError, match="not a loadable ExecuTorch program") as exc:
        open_runtime(art)
    assert len(str(exc.value).splitlines()) == 1


def test_pte_from_another_model_is_refused(exported, tmp_path):
    art = _copy(exported("executorch", "fp32"), tmp_path)
    other = exported("executorch", "fp32", "efficientnet_lite0")
    shutil.copyfile(other / "model.pte", art / "model.pte")  # same input / output shapes
    _reseal(art)
    with pytest.raises(MfdeployError, match="other weights"):
        open_runtime(art)


def _cli(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mfdeploy", *argv], capture_output=True, text=True, timeout=600
    )


def _main(capfd, *argv: str) -> tuple[int, str, str]:
    """The CLI in this process (no second torch import); capfd also sees native writes to
    file descriptors 1 and 2, which the runtime's C++ logging uses."""
    from mfdeploy.cli import main

    capfd.readouterr()
    code = main(list(argv))
    captured = capfd.readouterr()
    return code, captured.out, captured.err


def test_cli_verify_tampered_is_one_line_exit_2(exported, tmp_path):
    """A fresh process, as a user runs it: the runtime's C++ log lines (cpuinfo probing, the
    loader's reason) must not reach stderr; the loader's reason is in the one line."""
    art = _copy(exported("executorch", "fp32"), tmp_path)
    (art / "model.pte").write_bytes(b"not a program")
    _reseal(art)
    proc = _cli("verify", str(art), "--weights", str(WEIGHTS_26M))
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert "not a loadable ExecuTorch program" in lines[0] and "file_size" in lines[0]


@pytest.mark.parametrize("precision", ["int8-weights", "int4"])
def test_cli_unsupported_precision_is_one_line_exit_2(tmp_path, capfd, precision):
    out = tmp_path / "x"
    argv = ["export", "--target", "executorch", "--variant", "26m", "--precision", precision]
    code, _, err = _main(capfd, *argv, "--out", str(out))
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "no precision" in err
    assert not out.exists() and not list(tmp_path.iterdir())


def test_unknown_float_module_is_refused_before_lowering(tmp_path):
    with pytest.raises(MfdeployError, match="no module"):
        export_artifact(
            "executorch",
            "26m",
            precision="int8",
            weights=WEIGHTS_26M,
            out=tmp_path / "o",
            int8_float="blocks.99",
            calib_count=2,
        )
    assert not (tmp_path / "o").exists()


# ---- export time ----------------------------------------------------------------------------


class _ConvBridge(nn.Module):
    """Convs (channels-last pass rewrites around them), a reshape / matmul / softmax / layer
    norm bridge and a linear head: passes that change the graph and passes that find nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.norm = nn.LayerNorm(8)
        self.head = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv(x))
        x = self.dw(x) + x
        pixels = x.reshape(1, 8, 64)
        attn = torch.softmax(pixels.transpose(1, 2) @ pixels, dim=1)
        tokens = self.norm((pixels @ attn).mean(dim=2))
        return self.head(tokens)


def test_lazy_retraces_write_the_same_program(tmp_path):
    """XNNPACK passes that change nothing skip their re-trace: the .pte is byte-identical to
    the one the passes as shipped write, and it runs as the module does."""
    from executorch.runtime import Runtime

    from mfdeploy.export import executorch_lower as lower

    torch.manual_seed(0)
    module = _ConvBridge().eval()
    example = torch.randn(1, 3, 16, 16)
    written = {}
    for lazy in (False, True):
        with torch.no_grad():
            program = lower.export_for_xnnpack(module, example)
        path = tmp_path / f"lazy{lazy}.pte"
        assert lower.lower_to_pte(program, path, lazy_retraces=lazy) == {}
        written[lazy] = path.read_bytes()
    assert written[True] == written[False]
    method = Runtime.get().load_program(tmp_path / "lazyTrue.pte").load_method("forward")
    out = method.execute([example])[0]
    assert max_abs(out.numpy(), module(example).detach().numpy()) <= 1e-5


# ---- transposes inside the delegate ---------------------------------------------------------


class _ResidualBridge(nn.Module):
    """conv -> its pixels viewed (heads, channels, pixels) for a matmul with the pixels'
    attention -> the product viewed back as a map and added to the conv output -> a conv and
    the next such product of the sum: XNNPACK's layout changes around the residual add
    (Mobile-Former's former -> mobile bridge then the next mobile -> former bridge, in ops
    and shapes)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.keys = nn.Linear(4, 4)
        self.out = nn.Conv2d(8, 8, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        pixels = x.reshape(1, 2, 4, 64)
        keys = self.keys(pixels.transpose(-1, -2))  # (1, 2, 64, 4)
        attn = torch.softmax(keys @ pixels, dim=-1)  # (1, 2, 64, 64)
        y = x + (pixels @ attn).reshape(1, 8, 8, 8)
        again = (y.reshape(1, 2, 4, 64) @ attn).reshape(1, 8, 8, 8)  # the next bridge
        return self.out(y) + y + again


def test_residual_add_in_the_product_shape_saves_transposes(tmp_path):
    """add_in_producer_shape: the residual add of a viewed matmul product runs in the
    product's shape; the lowered program has fewer XNNPACK transposes, the same outputs."""
    from executorch.runtime import Runtime

    from mfdeploy.export import executorch_lower as lower
    from mfdeploy.export.executorch_pte import read_program, xnnpack_nodes

    torch.manual_seed(0)
    module = _ResidualBridge().eval()
    example = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        plain = lower.export_for_xnnpack(module, example, move_adds=False)
        assert lower.add_in_producer_shape(plain.graph_module) == 1
    transposes = {}
    for move in (False, True):
        with torch.no_grad():
            program = lower.export_for_xnnpack(module, example, move_adds=move)
        path = tmp_path / f"move{move}.pte"
        assert lower.lower_to_pte(program, path) == {}
        transposes[move] = xnnpack_nodes(read_program(path))["XNNStaticTranspose"]
        out = Runtime.get().load_program(path).load_method("forward").execute([example])[0]
        assert max_abs(out.numpy(), module(example).detach().numpy()) <= 1e-4
    assert transposes[True] < transposes[False], transposes


def test_fp32_26m_transposes_stay_bounded(exported):
    """26m fp32 had 285 XNNPACK transposes before the residual adds moved (271 after, 276
    since the long maps' row sums read the map pixel-major, which ExecuTorch's channels-first
    graph transposes: 1 % faster there all the same, session 32); a lowering change that
    brings layout changes back fails here."""
    ops = audit(exported("executorch", "fp32")).ops
    assert ops["xnnpack:XNNStaticTranspose"] <= 276, ops["xnnpack:XNNStaticTranspose"]


def _xnnpack_kernels(path: Path, example: torch.Tensor) -> list[str]:
    """XNNPACK's operator names (e.g. 'Convolution (NHWC, F32) DWConv #1') from an ETDump of
    one run: which kernel the runtime chose for each node."""
    import warnings

    from executorch.devtools import Inspector
    from executorch.runtime import Runtime

    program = Runtime.get().load_program(path, enable_etdump=True)
    program.load_method("forward").execute([example])
    dump = path.with_suffix(".etdp")
    program.write_etdump_result_to_file(str(dump), str(path.with_suffix(".debug")))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return list(Inspector(etdump_path=str(dump)).to_dataframe()["event_name"])


def test_depthwise_with_channel_multiplier_runs_the_depthwise_kernel(tmp_path):
    """A 16 -> 32 depthwise convolution (multiplier 2) ran as XNNPACK's grouped IGEMM; split
    into a channel repeat and a multiplier-1 depthwise convolution it runs the DWConv kernel,
    with the same outputs."""
    from mfdeploy.export import executorch_lower as lower
    from mfdeploy.export.depthwise_split import split_channel_multipliers

    torch.manual_seed(0)
    module = nn.Sequential(nn.Conv2d(3, 16, 1), nn.Conv2d(16, 32, 3, 2, 1, groups=16)).eval()
    example = torch.randn(1, 3, 32, 32)
    split, count = split_channel_multipliers(module)
    assert count == 1 and split is not module
    assert max_abs(split(example).detach().numpy(), module(example).detach().numpy()) <= 1e-6
    assert split_channel_multipliers(nn.Conv2d(8, 8, 3, groups=8))[1] == 0
    # the repeat would cost 128 x 4 multiply-adds per output: more than the grouped IGEMM
    assert split_channel_multipliers(nn.Conv2d(128, 768, 3, 2, 1, groups=128))[1] == 0
    path = tmp_path / "m.pte"
    with torch.no_grad():
        lower.lower_to_pte(lower.export_for_xnnpack(module, example), path)
    kernels = _xnnpack_kernels(path, example)
    assert any("DWConv" in k for k in kernels), kernels
    assert not any("IGEMM" in k for k in kernels), kernels
