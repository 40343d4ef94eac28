#!/usr/bin/env node
// The page's pure arithmetic (src/prep.js) on cases from a JSON file, results as JSON on stdout;
// tests/test_web_demo.py compares them with numpy / PIL bit for bit.
//
//   node test/arith.mjs CASES.json
//   CASES: {"normalize": [{rgba, width, height, manifest}], "quantize": [{x, scale, zero_point,
//           dtype}], "dequantize": [{q, scale, zero_point}], "resized": [{width, height,
//           resize}], "topk": [{logits, k}]}

import { readFileSync } from 'node:fs';
import { dequantize, normalize, preprocessingSpec, quantize, resizedSize, topK } from '../src/prep.js';

const cases = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const out = {
  normalize: (cases.normalize ?? []).map((c) =>
    Array.from(normalize(Uint8Array.from(c.rgba), c.width, c.height, preprocessingSpec(c.manifest)))),
  quantize: (cases.quantize ?? []).map((c) => Array.from(quantize(Float32Array.from(c.x), c.scale, c.zero_point, c.dtype))),
  dequantize: (cases.dequantize ?? []).map((c) => Array.from(dequantize(c.q, c.scale, c.zero_point))),
  resized: (cases.resized ?? []).map((c) => resizedSize(c.width, c.height, c.resize)),
  topk: (cases.topk ?? []).map((c) => topK(Float32Array.from(c.logits), c.k).map((t) => t.index)),
};
process.stdout.write(JSON.stringify(out) + '\n');
