// The arithmetic of mfdeploy/preprocessing.py and mfdeploy/metrics.py, with no DOM types, so
// that Node runs it too (tests/test_web_demo.py checks it against numpy bit for bit).
//
// 1. resize the short side to `resize` (resizedSize: Python's rounding; the resampling itself
//    is the browser's, skipped when the image already has that size, as the bundled sample
//    does), 2. centre-crop `resolution` (offsets rounded down), 3. (pixel * pixel_scale - mean)
//    / std in float32, in the model's layout (NCHW or NHWC).

const f32 = Math.fround;

/** Python's round(): nearest integer, ties to even. */
export function roundHalfEven(x) {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** The preprocessing block of a manifest, checked; numbers as float32 where numpy uses them so. */
export function preprocessingSpec(manifest) {
  const p = manifest.preprocessing ?? {};
  const layout = manifest.input?.layout ?? 'NCHW';
  const resolution = p.resolution ?? 224;
  const resize = p.resize ?? Math.trunc(roundHalfEven(resolution / (p.crop_pct ?? 0.875)));
  const triple = (v, name) => {
    if (!Array.isArray(v) || v.length !== 3) throw new Error(`manifest preprocessing.${name}: expected 3 numbers`);
    return v.map(f32);
  };
  if (!['NCHW', 'NHWC'].includes(layout)) throw new Error(`manifest input.layout ${layout}: expected NCHW or NHWC`);
  return {
    resolution,
    resize,
    mean: triple(p.mean ?? [0.485, 0.456, 0.406], 'mean'),
    std: triple(p.std ?? [0.229, 0.224, 0.225], 'std'),
    pixelScale: f32(p.pixel_scale ?? 1 / 255),
    interpolation: p.interpolation ?? 'bilinear',
    layout,
  };
}

/** [width, height] after resizing the short side to `resize`, as PIL sizes it. */
export function resizedSize(width, height, resize) {
  if (width <= height) return [resize, Math.max(resize, roundHalfEven((height * resize) / width))];
  return [Math.max(resize, roundHalfEven((width * resize) / height)), resize];
}

/** [left, top] of the centred crop: (size - resolution) // 2. */
export function cropOrigin(width, height, resolution) {
  if (width < resolution || height < resolution) {
    throw new Error(`image ${width}x${height} is smaller than the crop ${resolution}`);
  }
  return [Math.floor((width - resolution) / 2), Math.floor((height - resolution) / 2)];
}

/**
 * RGBA pixels of the resized image (row major, 4 bytes a pixel, alpha ignored) -> centre crop
 * -> float32 tensor in spec.layout. Each step is one float32 operation, in numpy's order.
 */
export function normalize(rgba, width, height, spec) {
  if (rgba.length !== width * height * 4) throw new Error(`expected ${width * height * 4} bytes, got ${rgba.length}`);
  const res = spec.resolution;
  const [left, top] = cropOrigin(width, height, res);
  const out = new Float32Array(3 * res * res);
  const plane = res * res;
  const nhwc = spec.layout === 'NHWC';
  for (let y = 0; y < res; y++) {
    for (let x = 0; x < res; x++) {
      const p = ((top + y) * width + left + x) * 4;
      for (let c = 0; c < 3; c++) {
        const v = f32(f32(f32(rgba[p + c] * spec.pixelScale) - spec.mean[c]) / spec.std[c]);
        out[nhwc ? (y * res + x) * 3 + c : c * plane + y * res + x] = v;
      }
    }
  }
  return out;
}

const INT_RANGES = { int8: [-128, 127, Int8Array], uint8: [0, 255, Uint8Array] };

/** float32 -> int8 / uint8 as mfdeploy.runtimes.base.quantize: round(x / scale) + zp, clipped. */
export function quantize(x, scale, zeroPoint, dtype) {
  const range = INT_RANGES[dtype];
  if (!range) throw new Error(`cannot quantise to ${dtype}`);
  const [lo, hi, Out] = range;
  const s = f32(scale);
  const q = new Out(x.length);
  for (let i = 0; i < x.length; i++) {
    q[i] = Math.min(hi, Math.max(lo, roundHalfEven(f32(x[i] / s)) + zeroPoint));
  }
  return q;
}

/** int -> float32 as mfdeploy.runtimes.base.dequantize: (q - zp) * scale. */
export function dequantize(q, scale, zeroPoint) {
  const s = f32(scale);
  const out = new Float32Array(q.length);
  for (let i = 0; i < q.length; i++) out[i] = f32((q[i] - zeroPoint) * s);
  return out;
}

/** Softmax of one logit vector (float64 here; scores are only displayed). */
export function softmax(logits) {
  let max = -Infinity;
  for (const v of logits) max = Math.max(max, v);
  const e = Array.from(logits, (v) => Math.exp(v - max));
  const sum = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / sum);
}

/** [{index, score}] of the k best classes, best first (ties: lower index), like metrics.top_k. */
export function topK(logits, k) {
  const scores = softmax(logits);
  const order = Array.from(logits, (_, i) => i);
  order.sort((a, b) => logits[b] - logits[a] || a - b);
  return order.slice(0, k).map((index) => ({ index, logit: logits[index], score: scores[index] }));
}

/** Median of a list of numbers. */
export function median(values) {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}
