// The golden check of mfdeploy/golden.py `compare`, on the page: the preprocessed tensor of the
// bundled sample and the top-5 logits against golden.json (written by `mfdeploy bundle`).

import { topK } from './prep.js';

/** sha256 (hex) of a float32 tensor's little-endian bytes (what golden.json records). */
export async function tensorSha256(x) {
  if (!globalThis.crypto?.subtle) return null; // not a secure context (plain http, not localhost)
  const bytes = new Uint8Array(x.length * 4);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < x.length; i++) view.setFloat32(i * 4, x[i], true);
  const digest = await crypto.subtle.digest('SHA-256', bytes);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');
}

/** Sum of a tensor in float64 (golden.json's `input.sum`). */
export function tensorSum(x) {
  let total = 0;
  for (const v of x) total += v;
  return total;
}

/**
 * What differs between this run and the golden (an empty list: pass). The rule is golden.py's:
 * input checksum equal, each sampled value and the sum within tolerance; each golden class's
 * logit within the logit tolerance, and a class may enter the top-5 only if its logit is within
 * tolerance of the lowest golden logit (near-ties may swap).
 */
export function compareGolden(golden, x, sha256, logits) {
  const failures = [];
  const spec = golden.input;
  const tol = spec.tolerance;
  const size = spec.shape.reduce((a, b) => a * b, 1);
  if (x.length !== size) return [`input has ${x.length} values, golden shape ${spec.shape.join('x')}`];
  if (sha256 === null) failures.push('input checksum not computed (crypto.subtle needs a secure context)');
  else if (sha256 !== spec.sha256) failures.push('input checksum differs from the golden');
  for (const s of spec.samples) {
    if (Math.abs(x[s.index] - s.value) > tol) {
      failures.push(`input[${s.position.join(',')}] = ${x[s.index].toPrecision(7)}, golden ${s.value}`);
    }
  }
  const total = tensorSum(x);
  if (Math.abs(total - spec.sum) > tol * size) failures.push(`input sum ${total.toFixed(6)}, golden ${spec.sum.toFixed(6)}`);
  const logitTol = golden.logit_tolerance;
  const goldenTop = new Map(golden.top_k.map((t) => [t.index, t.logit]));
  for (const [index, logit] of goldenTop) {
    if (Math.abs(logits[index] - logit) > logitTol) {
      failures.push(`class ${index}: logit ${logits[index].toFixed(6)}, golden ${logit.toFixed(6)}`);
    }
  }
  const floor = Math.min(...goldenTop.values()) + logitTol;
  for (const { index } of topK(logits, goldenTop.size)) {
    if (!goldenTop.has(index) && logits[index] > floor) {
      failures.push(`class ${index} (${logits[index].toFixed(6)}) is in the top-${goldenTop.size}, not golden`);
    }
  }
  return failures;
}
