"""Per-layer drift: the family's anchor tensors, reference vs artifact, worst first.

The reference side reads them with forward hooks (`ModelFamily.reference_hooks`); the
artifact side locates each anchor's module in the runtime's scoped graph
(`Runtime.scoped_graph`, `mfdeploy.export.scopes.locate`), reads the candidate tensors
(`Runtime.tensor_values`) and keeps the first whose value has the anchor's reference shape
after the family's and the runtime's layout permutations. Written once, for every runtime.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from mfdeploy.errors import MfdeployError
from mfdeploy.export import scopes
from mfdeploy.metrics import sqnr_db
from mfdeploy.models import get_family, structure_model
from mfdeploy.models.anchors import HEAD
from mfdeploy.models.registry import ModelFamily
from mfdeploy.models.source import manifest_variant_name
from mfdeploy.runtimes import Runtime
from mfdeploy.runtimes.base import chunked_intermediates


def capture(model: nn.Module, batch: np.ndarray, entry: ModelFamily) -> dict[str, np.ndarray]:
    """Run the reference once and return its anchor tensors (plus "head", the logits)."""
    modules = dict(model.named_modules())
    seen: dict[str, np.ndarray] = {}
    handles = []
    for hook_spec in entry.reference_hooks(model) if entry.reference_hooks else []:
        if hook_spec.module not in modules:
            continue

        def hook(_m, args, output, spec=hook_spec):
            value = args[0] if spec.where == "in" else output
            seen[spec.anchor] = spec.convert(value).detach().float().numpy().copy()

        handles.append(modules[hook_spec.module].register_forward_hook(hook))
    try:
        with torch.no_grad():
            seen[HEAD] = model(torch.from_numpy(np.ascontiguousarray(batch))).numpy()
    finally:
        for handle in handles:
            handle.remove()
    return seen


def _entry_with_anchors(family: str) -> ModelFamily:
    entry = get_family(family)
    if entry.module_anchors is None or entry.anchor_shapes is None:
        raise MfdeployError(f"per-layer comparison: {entry.title} declares no anchors")
    return entry


def runtime_anchors(runtime: Runtime, batch: np.ndarray) -> dict[str, np.ndarray]:
    """The anchor tensors of an opened artifact for `batch` (float32 NCHW images), in the
    reference layout; anchors the runtime's graph does not show are left out."""
    manifest = runtime.manifest
    entry = _entry_with_anchors(manifest.model_family)
    batch = np.asarray(batch, np.float32)
    module = runtime.torch_module()
    if module is not None:
        return capture(module, batch, entry)
    variant = manifest_variant_name(manifest)
    perms = entry.anchor_layouts(manifest.form)
    if runtime.maps_may_be_nhwc:
        perms = scopes.with_nhwc(perms)
    recorded = runtime.recorded_anchors()
    if recorded is not None:
        candidates = {anchor: [name] for anchor, name in recorded.items()}
    else:
        graph = runtime.scoped_graph(structure_model(manifest))
        candidates = scopes.locate(graph, entry.module_anchors(variant, manifest.form))
    out = runtime.output_id()
    ids = list(dict.fromkeys([n for names in candidates.values() for n in names] + [out]))
    ids = [i for i in ids if i is not None]
    resolution = int(manifest.preprocessing["resolution"])

    def once(chunk: np.ndarray) -> dict[str, np.ndarray]:
        values = runtime.tensor_values(chunk, ids)
        shapes = entry.anchor_shapes(variant, resolution, len(chunk), manifest.num_classes)
        found = scopes.pick(candidates, values.get, shapes, perms)
        if out is not None and out in values:
            head = scopes.to_reference(values[out], shapes[HEAD], perms)
            if head is not None:
                found[HEAD] = head
        return found

    return chunked_intermediates(batch, manifest.input.shape[0], once)


def block_report(
    reference: dict[str, np.ndarray], candidate: dict[str, np.ndarray]
) -> list[dict[str, object]]:
    """One row per anchor both sides have: SQNR and max abs, worst (lowest SQNR) first."""
    rows = []
    for anchor, ref in reference.items():
        if anchor not in candidate:
            continue
        cand = candidate[anchor]
        if cand.shape != ref.shape:
            note = f"shape {cand.shape} vs reference {ref.shape}"
            rows.append({"block": anchor, "sqnr_db": None, "max_abs": None, "note": note})
            continue
        rows.append(
            {
                "block": anchor,
                "sqnr_db": sqnr_db(ref, cand),
                "max_abs": float(np.max(np.abs(ref - cand))),
                "note": "",
            }
        )
    return sorted(rows, key=lambda r: (r["sqnr_db"] is not None, r["sqnr_db"] or 0.0))


def per_layer_rows(runtime: Runtime, reference: nn.Module, sample: np.ndarray) -> list[dict]:
    """`block_report` of the artifact against its reference on `sample`."""
    entry = _entry_with_anchors(runtime.manifest.model_family)
    return block_report(capture(reference, sample, entry), runtime_anchors(runtime, sample))
