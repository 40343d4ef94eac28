"""int8 sensitivity sweep on 26m in PyTorch: the PT2E graph after convert_pt2e (reference
quantize / dequantize ops), no litert conversion, a few seconds per recipe. Ad-hoc tool
behind docs/tflite_int8.md; its SQNR matches the converted TFLite model to ~0.1 dB.

    PYTHONPATH=. .venv/bin/python benchmarks/tflite_int8_sweep.py deploy [recipe,recipe,...]

A recipe is a module-path regex (RECIPES below). Environment switches:
  ONLY=1          quantise only the matching modules (default: keep them float)
  FLOAT_OPS=a,b   keep ops whose aten name contains a / b float
  MINMAX=regex    modules using MinMax (or HIST=1: histogram) observers whose range is
                  widened MARGIN times
  CALIB_ALL=1     diagnostic only: also calibrate on the evaluation photos
"""

import os
import re
import sys
import time

import numpy as np
import torch
from litert_torch.quantize import pt2e_quantizer as pq
from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

from mfdeploy.export.common import calibration_inputs, export_module, load_source
from mfdeploy.metrics import cosine, sqnr_db, top1_agreement
from mfdeploy.photos import resolve_images
from mfdeploy.preprocessing import load_image, preprocess
from tests.conftest import WEIGHTS_26M


class Q(pq.PT2EQuantizer):
    def __init__(self, float_re):
        super().__init__()
        self.float_re = re.compile(float_re) if float_re else None

    def _annotate_for_static_quantization_config(self, model):
        def keep(n):
            if FLOAT_OPS and any(o in str(n.target) for o in FLOAT_OPS):
                return False
            if self.float_re is None:
                return True
            stack = n.meta.get("nn_module_stack", {})
            hit = any(self.float_re.search(path) for path, _ in stack.values())
            return hit if ONLY else not hit

        if MINMAX:
            import dataclasses

            from torchao.quantization.pt2e.observer import HistogramObserver as _H
            from torchao.quantization.pt2e.observer import MinMaxObserver as _MM

            base = _H if os.environ.get("HIST") else _MM

            class MinMaxObserver(base):
                def calculate_qparams(self):
                    if base is _H:
                        lo, hi = self._non_linear_param_search()
                    else:
                        lo, hi = self.min_val, self.max_val
                    c, r = (hi + lo) / 2, (hi - lo) / 2 * MARGIN
                    return self._calculate_qparams(c - r, c + r)

            cfg = self.global_config
            act = dataclasses.replace(
                cfg.input_activation,
                observer_or_fake_quant_ctr=MinMaxObserver.with_args(eps=2**-12),
            )
            mm = dataclasses.replace(cfg, input_activation=act, output_activation=act)
            rx = re.compile(MINMAX)

            def in_mm(n):
                return any(rx.search(p) for p, _ in n.meta.get("nn_module_stack", {}).values())

            self._annotate_all_static_patterns(model, mm, lambda n: keep(n) and in_mm(n))
        self._annotate_all_static_patterns(model, self.global_config, keep)
        return model


FLOAT_OPS = [o for o in os.environ.get("FLOAT_OPS", "").split(",") if o]
ONLY = os.environ.get("ONLY") == "1"
MINMAX = os.environ.get("MINMAX")
MARGIN = float(os.environ.get("MARGIN", "1"))
form = sys.argv[1] if len(sys.argv) > 1 else "deploy"
src = load_source("26m", WEIGHTS_26M)
m = export_module(src, form).eval()
calib = torch.from_numpy(calibration_inputs(None, 10, src.preprocessing))
photos = torch.from_numpy(
    np.stack([preprocess(load_image(p)) for p in resolve_images(None, "evaluation")])
)
with torch.no_grad():
    ref = m(photos).numpy()
if os.environ.get("CALIB_ALL"):
    calib = torch.cat([calib, photos])
if os.environ.get("CALIB_FLIP"):
    calib = torch.cat([calib, calib.flip(-1)])
ep = torch.export.export(m, (calib[:1],))
RECIPES = dict(
    stem=r"^stem$",
    lite=r"^lite",
    pw1=r"blocks\.\d+\.pw1$",
    dw=r"blocks\.\d+\.dw\d?$",
    pw2=r"blocks\.\d+\.pw2$",
    act=r"act\d$",
    bridge_in=r"bridge_in$",
    former=r"former$",
    bridge_out=r"bridge_out$",
    bridge_final=r"bridge_final$",
    blockown=r"blocks\.\d+$",
    head_conv=r"head\.conv$",
    head_fc1=r"head\.fc1$",
    head_fc2=r"head\.fc2$",
    head_own=r"^head$",
    all="",
    f_dyrelu=r"act\d$",
    f_bridges=r"bridge",
    f_former=r"former$",
    f_head=r"^head",
    f_fc2=r"^head\.fc2",
    f_stem=r"^stem",
    f_tokens=r"bridge|former$",
    f_tokens_dyrelu=r"bridge|former$|act\d$",
    f_tokens_dyrelu_head=r"bridge|former$|act\d$|^head",
    f_head_fc1=r"^head\.fc1",
    f_head_conv=r"^head\.conv",
    f_head_fcs=r"^head\.fc",
    f_head_noconv=r"^head$|^head\.fc",
    f_head_dyrelu=r"^head|act\d$",
    f_head_bridges=r"^head|bridge",
    f_head_former=r"^head|former$",
    f_head_stem=r"^head|^stem",
    f_head_tokens=r"^head|bridge|former$",
    f_hb_dyrelu=r"bridge|^head|act\d$",
    f_hbin=r"bridge_in|bridge_final|^head",
    f_hbin_former=r"bridge_in|bridge_final|^head|former$",
    only_convs=r"bridge|former$|act\d$|^head|blocks\.\d+$",
)
sel = sys.argv[2].split(",") if len(sys.argv) > 2 else list(RECIPES)
for name in sel:
    t = time.time()
    q = Q(RECIPES[name]).set_global(
        pq.get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False)
    )
    g = prepare_pt2e(ep.module(), q)
    with torch.no_grad():
        for x in calib:
            g(x[None])
    g = convert_pt2e(g, fold_quantize=False)
    with torch.no_grad():
        out = torch.cat([g(x[None]) for x in photos]).numpy()
    nq = sum(
        1
        for n in g.graph.nodes
        if "quantize_per_tensor" in str(n.target) and "dequant" not in str(n.target)
    )
    print(
        f"{name:24s} SQNR {sqnr_db(ref, out):6.2f} dB  cos {cosine(ref, out):.4f} "
        f"top1 {top1_agreement(ref, out):.2f}  q-nodes {nq}  {time.time() - t:.0f}s",
        flush=True,
    )
