"""Core ML target: the deploy form as an ML program (`model.mlpackage`), fp32 / fp16 / int8.

Capture: `torch.export` (then `run_decompositions({})`), not `torch.jit.trace`. coremltools 9.0
calls its torch.export frontend beta and recommends tracing, but here (torch 2.13) both
convert the deploy form to the same program, and torch.export is the one path that works for
every precision: the W8A8 recipe is PT2E (`prepare_pt2e` / `convert_pt2e` need an exported
graph), so one capture serves all four precisions and the reference form as well, while
jit.trace of the reference form depends on Python shape arithmetic being traceable.

Precisions:
- fp32: `compute_precision=FLOAT32`.
- fp16: Core ML's default (float16 weights and activations, float32 model input / output).
- int8-weights: fp16 program, then `coremltools.optimize.coreml.linear_quantize_weights`
  (int8, per-channel symmetric; weights of at most 2048 elements stay float16), on the layers
  weight_only.py chooses by measuring on the calibration photos (their biases corrected for
  the int8 weights' mean error; the modules that need it keep float16 weights).
- int8: W8A8 via coremltools.optimize.torch's PT2E `CoreMLQuantizer`, calibrated in PyTorch on
  real photos (see coreml_w8a8.py); needs the iOS 17 opset (activation quantize/dequantize).

Minimum deployment targets (`--min-ios`): 16 (default) = ML program opset iOS16, per-channel
int8 weight compression (constexpr_affine_dequantize), fp16 compute; 17 = activation
quantization ops (quantize / dequantize, needed by W8A8) and int8 compute on the Neural
Engine for W8A8 programs; 18 = the iOS18 opset: blockwise / int4 / grouped weight compression
(constexpr_blockwise_shift_scale), stateful models and multifunction packages.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import platform
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mfdeploy import __version__
from mfdeploy.artifact import Manifest, TensorSpec, form_kind
from mfdeploy.errors import MfdeployError
from mfdeploy.export.common import SourceModel, base_manifest, calibration_inputs, export_module
from mfdeploy.export.coreml_mil import MAX_RANK, op_histogram, program_ranks
from mfdeploy.export.int8_sensitivity import DEFAULT_TARGET_SQNR
from mfdeploy.export.scopes import fx_anchor_names
from mfdeploy.labels import class_labels

MODEL_FILE = "model.mlpackage"
#: imported before staging, with signals held back (export_artifact)
CONVERTERS = ("coremltools",)
PRECISIONS = ("fp32", "fp16", "int8-weights", "int8")
MIN_IOS = (16, 17, 18)
DEFAULT_MIN_IOS = 16
W8A8_MIN_IOS = 17
INPUT_NAME = "input"
IMAGE_INPUT_NAME = "image"
OUTPUT_NAME = "logits"
WEIGHT_THRESHOLD = 2048  # int8-weights compresses weights of more elements than this
COMPRESSED_OP = "constexpr_affine_dequantize"  # an int8-weights compressed weight
AUTHOR = "mfdeploy"
LICENSE = "Apache-2.0 (model code); weights: see the source checkpoint's licence"


def add_arguments(group: argparse._ArgumentGroup) -> None:
    group.add_argument(
        "--min-ios",
        type=int,
        choices=MIN_IOS,
        help="Core ML minimum deployment target (default 16; int8 W8A8 needs and defaults to "
        "17; 18 adds blockwise/int4 weight compression)",
    )
    group.add_argument(
        "--image-input",
        action="store_true",
        help="Core ML: ImageType input (RGB 0..255, normalisation inside the model)",
    )
    group.add_argument(
        "--classifier",
        action="store_true",
        help="Core ML: add a ClassifierConfig with the ImageNet labels (softmax output)",
    )


def _ct():
    try:
        import coremltools as ct
    except ImportError:
        raise MfdeployError(
            "the coreml target needs coremltools: pip install 'mfdeploy[coreml]'"
        ) from None
    return ct


@contextlib.contextmanager
def quiet():
    """coremltools prints version warnings and progress bars; keep the CLI output clean."""
    sink = io.StringIO()
    with (
        warnings.catch_warnings(),
        contextlib.redirect_stdout(sink),
        contextlib.redirect_stderr(sink),
    ):
        warnings.simplefilter("ignore")
        previous = logging.getLogger("coremltools").level
        logging.getLogger("coremltools").setLevel(logging.ERROR)
        try:
            yield
        finally:
            logging.getLogger("coremltools").setLevel(previous)


class ImageNormalization(nn.Module):
    """0..255 RGB pixels -> (x * pixel_scale - mean) / std as the model's first op.

    Core ML's ImageType has one global scale but a per-channel bias; ImageNet's std is per
    channel, so the exact normalisation lives in the graph (one mul + one add per channel,
    folded in float64) and the ImageType keeps scale 1, bias 0.
    """

    def __init__(self, model: nn.Module, mean, std, pixel_scale: float) -> None:
        super().__init__()
        self.model = model
        mean64 = torch.tensor(mean, dtype=torch.float64)
        std64 = torch.tensor(std, dtype=torch.float64)
        self.register_buffer("scale", (pixel_scale / std64).float().reshape(1, 3, 1, 1))
        self.register_buffer("shift", (-mean64 / std64).float().reshape(1, 3, 1, 1))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model(pixels * self.scale + self.shift)


class Probabilities(nn.Module):
    """Logits -> softmax, so a Vision classifier reports probabilities as confidences."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.model(x), dim=-1)


def resolve_min_ios(precision: str, min_ios: int | None) -> int:
    if min_ios is not None and min_ios not in MIN_IOS:
        raise MfdeployError(f"--min-ios must be one of {', '.join(map(str, MIN_IOS))}")
    if precision == "int8":
        if min_ios is not None and min_ios < W8A8_MIN_IOS:
            raise MfdeployError(
                f"int8 (W8A8) Core ML programs need --min-ios {W8A8_MIN_IOS} or later "
                "(activation quantization ops arrived in iOS 17)"
            )
        return min_ios or W8A8_MIN_IOS
    return min_ios or DEFAULT_MIN_IOS


def capture(module: nn.Module, example: torch.Tensor) -> torch.export.ExportedProgram:
    """torch.export in the ATEN dialect coremltools' frontend takes."""
    for sub in module.modules():  # eval mode without .eval(): PT2E graphs refuse it
        sub.training = False
    with torch.no_grad():
        return torch.export.export(module, (example,)).run_decompositions({})


def set_metadata(mlmodel, source: SourceModel, precision: str, form: str, image: bool) -> None:
    classes = "ImageNet-1k" if source.num_classes == 1000 else f"{source.num_classes}-class"
    mlmodel.short_description = (
        f"{source.entry.title} {source.manifest_variant or ''} {classes} classifier "
        f"({source.form(form)} form, {precision}); exported by mfdeploy".replace("  ", " ")
        + ("; synthetic stand-in weights: not an ImageNet classifier" if source.synthetic else "")
    )
    mlmodel.author = AUTHOR
    mlmodel.license = LICENSE
    mlmodel.version = __version__
    meta = mlmodel.user_defined_metadata
    meta["variant"] = source.manifest_variant or ""
    meta["model"] = source.name
    meta["source_checkpoint_sha256"] = source.checkpoint_sha256
    meta["mfdeploy_version"] = __version__
    meta["precision"] = precision
    meta["form"] = source.form(form)
    prep = source.preprocessing
    meta["mean"] = ",".join(f"{m:.6g}" for m in prep.mean)
    meta["std"] = ",".join(f"{s:.6g}" for s in prep.std)
    meta["normalization_in_model"] = str(image).lower()
    desc = (
        "RGB image, normalisation applied inside the model"
        if image
        else "float32 NCHW, normalised with the manifest's mean/std"
    )
    mlmodel.input_description[mlmodel.get_spec().description.input[0].name] = desc


def convert(
    module: nn.Module,
    example: torch.Tensor,
    *,
    precision: str,
    min_ios: int,
    image_input: bool,
    classifier: bool,
    labels: list[str],
):
    """torch module -> (Core ML ML program in memory, the torch.export program it came from)."""
    ct = _ct()
    target = {16: ct.target.iOS16, 17: ct.target.iOS17, 18: ct.target.iOS18}[min_ios]
    shape = tuple(example.shape)
    if image_input:
        inputs = [
            ct.ImageType(
                name=IMAGE_INPUT_NAME,
                shape=shape,
                scale=1.0,
                bias=[0.0, 0.0, 0.0],
                color_layout=ct.colorlayout.RGB,
            )
        ]
    else:
        inputs = [ct.TensorType(name=INPUT_NAME, shape=shape, dtype=np.float32)]
    outputs = None if classifier else [ct.TensorType(name=OUTPUT_NAME, dtype=np.float32)]
    kwargs = {}
    if classifier:
        kwargs["classifier_config"] = ct.ClassifierConfig(labels)
    fp32 = precision == "fp32"
    with quiet():  # torch's decompositions of a PT2E graph warn about its own tree specs
        exported = capture(module, example)
        mlmodel = ct.convert(
            exported,
            inputs=inputs,
            outputs=outputs,
            convert_to="mlprogram",
            minimum_deployment_target=target,
            compute_precision=ct.precision.FLOAT32 if fp32 else ct.precision.FLOAT16,
            **kwargs,
        )
    return mlmodel, exported


def anchor_names(
    exported, source: SourceModel, root_class: str, form: str, batch: int
) -> dict[str, str]:
    """Per-layer anchor -> MIL value name (the torch.export node names survive conversion),
    found from the exported graph's module stacks; `verify --per-layer` reads them."""
    entry = source.entry
    if entry.module_anchors is None or entry.anchor_shapes is None:
        return {}
    form = source.form(form)
    res = source.preprocessing.resolution
    return fx_anchor_names(
        exported,
        root_class,
        entry.module_anchors(source.variant, form),
        entry.anchor_shapes(source.variant, res, batch, 0),
        entry.anchor_layouts(form),
    )


#: how far (in int8 steps) a float16 weight may sit from its grid and count as on it:
#: float16 rounds 127 steps by up to 0.06, and the scale (max / 127) by as much again
GRID_TOLERANCE = 0.25
#: a channel whose largest weight is under this is on any grid: float16 holds it in
#: subnormals, whose fixed step (6e-8) is 0.08 int8 steps at 1e-4 and more below (a batch
#: norm with a near-zero scale, fused in, makes such channels: EfficientNet-Lite0 has them)
TINY_CHANNEL = 1e-4


def on_int8_grid(values: np.ndarray) -> bool:
    """Whether each output channel (axis 0) of `values` is a whole multiple of its largest
    magnitude / 127, up to float16 rounding (TINY_CHANNEL): the weights a plan gave int8,
    still so after a per-channel scaling (a batch norm the converter fused in)."""
    flat = np.asarray(values, np.float64).reshape(len(values), -1)
    scale = np.abs(flat).max(axis=1, keepdims=True) / 127.0
    steps = np.divide(flat, scale, out=np.zeros_like(flat), where=scale > TINY_CHANNEL / 127)
    return bool(np.all(np.abs(steps - np.round(steps)) <= GRID_TOLERANCE))


def grid_consts(mlmodel) -> list[str]:
    """The program's float weights (> WEIGHT_THRESHOLD elements) already on their int8
    grid: the layers the weights-only plan quantised. Found by value, not name: a fused batch
    norm gives its convolution's weight a new, numbered const."""
    return [
        op.name
        for op in mlmodel._mil_program.functions["main"].operations
        if op.op_type == "const"
        and op.outputs[0].val is not None
        and np.issubdtype(np.asarray(op.outputs[0].val).dtype, np.floating)
        and np.size(op.outputs[0].val) > WEIGHT_THRESHOLD
        and on_int8_grid(op.outputs[0].val)
    ]


def weights_only_text(plan: dict | None) -> str:
    """What int8-weights holds, for the manifest: the rule and the modules kept float16."""
    plan = plan or {}
    kept = plan.get("float_modules") or []
    text = f"int8 per-channel symmetric (> {WEIGHT_THRESHOLD} elements)"
    if not kept:
        return text
    return f"{text}; float16 in {', '.join(kept)} ({plan.get('chosen_by', 'given')})"


def quantize_weights(mlmodel, layers: int):
    """int8 per-channel symmetric compression of the converted program's weights that the
    plan put on their int8 grid (`layers` of them; a constant that is on its grid anyway,
    such as a 0 / 1 matrix, is compressed too, losslessly); the others stay float16. Fewer
    than `layers` compressed is an error: a planned layer would silently stay float16."""
    import coremltools.optimize.coreml as cto

    linear = cto.OpLinearQuantizerConfig(
        mode="linear_symmetric",
        dtype="int8",
        granularity="per_channel",
        weight_threshold=WEIGHT_THRESHOLD,
    )
    config = cto.OptimizationConfig(op_name_configs=dict.fromkeys(grid_consts(mlmodel), linear))
    with quiet():
        compressed = cto.linear_quantize_weights(mlmodel, config)
    count = op_histogram(compressed._mil_program).get(COMPRESSED_OP, 0)
    if count < layers:
        raise MfdeployError(
            f"Core ML int8-weights: {count} weights compressed, {layers} were given int8 values"
        )
    return compressed


def export(
    source: SourceModel,
    staging: Path,
    *,
    precision: str = "fp16",
    form: str = "deploy",
    batch: int = 1,
    calib: str | Path | None = None,
    calib_count: int | None = None,
    min_ios: int | None = None,
    image_input: bool = False,
    classifier: bool = False,
    int8_float: str | None = None,
    int8_target_sqnr: float | None = None,
) -> Manifest:
    if precision not in PRECISIONS:
        raise MfdeployError(f"target coreml supports precision {', '.join(PRECISIONS)}")
    if batch < 1:
        raise MfdeployError("--batch must be at least 1")
    _ct()
    min_ios = resolve_min_ios(precision, min_ios)
    prep = source.preprocessing
    res = prep.resolution
    module: nn.Module = export_module(source, form).eval()
    root_class = type(module).__name__
    labels = list(class_labels(source.num_classes))
    extra: dict = {}
    int8_plan: dict | None = None
    if precision == "int8-weights":
        from mfdeploy.export.weight_only import weight_plan

        plan = weight_plan(
            module,
            calibration_inputs(calib, calib_count, prep),
            spec=int8_float,
            target_sqnr=int8_target_sqnr,
            min_elements=WEIGHT_THRESHOLD,
        )
        module = plan.int8_module(module)
        int8_plan = plan.to_dict()
    if precision == "int8":
        from mfdeploy.export.coreml_w8a8 import quantize_w8a8

        calib_batch = calibration_inputs(calib, calib_count, prep)
        module, extra["w8a8"], plan = quantize_w8a8(
            module,
            calib_batch,
            batch=batch,
            float_spec=int8_float,
            target_sqnr=int8_target_sqnr or DEFAULT_TARGET_SQNR,
        )
        int8_plan = plan.to_dict()
    if image_input:
        module = ImageNormalization(module, prep.mean, prep.std, prep.pixel_scale)
    if classifier:
        module = Probabilities(module)
    example = torch.zeros(batch, 3, res, res)
    if image_input:
        example = example + 128.0
    try:
        mlmodel, exported = convert(
            module,
            example,
            precision=precision,
            min_ios=min_ios,
            image_input=image_input,
            classifier=classifier,
            labels=labels,
        )
    except MfdeployError:
        raise
    except Exception as exc:  # converter failures are long; keep the first line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MfdeployError(f"Core ML conversion failed: {first}") from exc
    if precision == "int8-weights":
        mlmodel = quantize_weights(mlmodel, int8_plan["bias_corrected_layers"])
    extra["anchors"] = anchor_names(exported, source, root_class, form, batch)
    del exported

    highest, offenders = program_ranks(mlmodel._mil_program)
    if offenders and form_kind(form) == "deploy":
        raise MfdeployError(
            f"the Core ML program has tensors of rank > {MAX_RANK}: {', '.join(offenders[:3])}"
        )
    set_metadata(mlmodel, source, precision, form, image_input)
    with quiet():
        mlmodel.save(str(staging / MODEL_FILE))

    spec = mlmodel.get_spec()
    output_name = spec.description.predictedProbabilitiesName if classifier else OUTPUT_NAME
    if image_input:
        input_spec = TensorSpec(IMAGE_INPUT_NAME, [batch, 3, res, res], "uint8", "NCHW")
    else:
        input_spec = TensorSpec(INPUT_NAME, [batch, 3, res, res], "float32", "NCHW")
    manifest = base_manifest(
        source,
        target="coreml",
        precision=precision,
        form=form,
        model_file=MODEL_FILE,
        input_spec=input_spec,
        output_spec=TensorSpec(output_name, [batch, source.num_classes], "float32"),
        packages=("coremltools",),
    )
    extra.update(
        {
            "format": "mlprogram",
            "minimum_ios": min_ios,
            "minimum_macos": min_ios - 3,
            "specification_version": spec.specificationVersion,
            "compute_precision": "float32" if precision == "fp32" else "float16",
            "weights": {
                "fp32": "float32",
                "fp16": "float16",
                "int8-weights": weights_only_text(int8_plan),
                "int8": "int8 per-channel symmetric (PT2E CoreMLQuantizer)",
            }[precision],
            "activations": {"int8": "int8 (W8A8, calibrated in PyTorch)"}.get(
                precision, "float32" if precision == "fp32" else "float16"
            ),
            "input_kind": "image" if image_input else "tensor",
            "color_layout": "RGB" if image_input else None,
            "normalization_in_model": image_input,
            "classifier": classifier,
            "output_kind": "probabilities" if classifier else "logits",
            "capture": "torch.export",
            "max_tensor_rank": highest,
            "op_histogram": op_histogram(mlmodel._mil_program),
            # Nothing was executed by Core ML at export time; `mfdeploy verify` records runs.
            "checked_with": {
                "exported_on": platform.system(),
                "compute_units_checked": [],
                "note": "export runs nothing on Core ML; `mfdeploy verify` runs it (Linux: "
                "the MIL executor, CPU semantics with float16 storage; Neural Engine / GPU "
                "behaviour is only checked on Apple hardware with --compute-units)",
            },
        }
    )
    manifest.extra["coreml"] = extra
    if int8_plan is not None:  # where every int8 target puts it (int8_check reads it there)
        manifest.extra["int8_plan"] = int8_plan
    return manifest
