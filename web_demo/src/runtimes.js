// The page's runtimes: LiteRT.js for .tflite, ONNX Runtime Web for .onnx, each on WASM or
// (where the browser has an adapter) WebGPU. Both are loaded from the local node_modules copy
// through the page's import map; nothing comes from a CDN.
//
// Thread count: 1 loads the single-threaded WASM build; more needs a cross-origin isolated page
// (SharedArrayBuffer: serve.py sends COOP / COEP) and loads the threaded build.

import { dequantize, quantize } from './prep.js';

export const RUNTIMES = [
  { id: 'litert-wasm', target: 'tflite', name: 'LiteRT.js', backend: 'WASM · XNNPACK', gpu: false },
  { id: 'litert-webgpu', target: 'tflite', name: 'LiteRT.js', backend: 'WebGPU', gpu: true },
  { id: 'ort-wasm', target: 'onnx', name: 'ONNX Runtime Web', backend: 'WASM', gpu: false },
  { id: 'ort-webgpu', target: 'onnx', name: 'ONNX Runtime Web', backend: 'WebGPU', gpu: true },
];

const NODE_MODULES = new URL('../node_modules/', import.meta.url);
const INTEGER = new Set(['int8', 'uint8']);

/** Whether the browser gives a WebGPU adapter (headless Chromium without a GPU does not). */
export async function webgpuAvailable() {
  try {
    return Boolean(navigator.gpu && (await navigator.gpu.requestAdapter()));
  } catch {
    return false;
  }
}

/**
 * How the model's input and output are fed, per the manifest: float32 as is, int8 / uint8
 * quantised and dequantised here with the manifest's scale and zero point.
 */
export function ioPlan(manifest, runtimeId) {
  const { input, output } = manifest;
  const quantised = [input, output].filter((t) => INTEGER.has(t.dtype));
  for (const t of [input, output]) {
    if (t.dtype !== 'float32' && !INTEGER.has(t.dtype)) throw new Error(`${t.name}: ${t.dtype} tensors are not supported`);
    if (INTEGER.has(t.dtype) && (t.scale == null || t.zero_point == null)) throw new Error(`${t.name}: ${t.dtype} without scale / zero point in the manifest`);
  }
  if (runtimeId.startsWith('litert') && quantised.some((t) => t.dtype === 'int8')) {
    throw new Error('LiteRT.js tensors are float32 / int32 / uint8 only: this int8-I/O .tflite cannot run here; export it with --float-io');
  }
  let note;
  if (quantised.length) {
    note = `${input.dtype} in / ${output.dtype} out: quantised (scale ${input.scale ?? '-'}, zero point ${input.zero_point ?? '-'}) and dequantised in JS per the manifest`;
  } else if (manifest.precision !== 'fp32' && manifest.precision !== 'fp16') {
    note = `${manifest.precision} model with float32 I/O${manifest.target === 'tflite' ? ' (--float-io export: LiteRT.js has no int8 tensors)' : ''}`;
  } else {
    note = 'float32 in / float32 out';
  }
  return {
    note,
    encode: (x) => (INTEGER.has(input.dtype) ? quantize(x, input.scale, input.zero_point, input.dtype) : x),
    decode: (y) => (INTEGER.has(output.dtype) ? dequantize(y, output.scale, output.zero_point) : Float32Array.from(y)),
  };
}

let liteRt = null; // {module, threads}: LiteRT.js has one global WASM module per page

async function loadLiteRtModule(threads) {
  const module = await import('@litertjs/core');
  const wanted = threads > 1;
  if (liteRt && liteRt.threads !== wanted) {
    module.unloadLiteRt();
    liteRt = null;
  }
  if (!liteRt) {
    await module.loadLiteRt(new URL('@litertjs/core/wasm/', NODE_MODULES).href, { threads: wanted });
    liteRt = { module, threads: wanted };
  }
  return module;
}

async function openLiteRt(runtime, modelUrl, manifest, threads, io) {
  const lrt = await loadLiteRtModule(threads);
  const options = { accelerator: runtime.gpu ? 'webgpu' : 'wasm' };
  if (!runtime.gpu) options.cpuOptions = { numThreads: threads };
  const model = await lrt.loadAndCompile(modelUrl, options);
  const shape = manifest.input.shape;
  return {
    async run(x) {
      const input = new lrt.Tensor(io.encode(x), shape);
      const outputs = await model.run(input);
      input.delete();
      const logits = io.decode(await outputs[0].data());
      for (const t of outputs) t.delete();
      return logits;
    },
    close: () => model.delete(),
  };
}

async function openOrt(runtime, modelUrl, manifest, threads, io) {
  const ort = runtime.gpu ? await import('onnxruntime-web/webgpu') : await import('onnxruntime-web/wasm');
  ort.env.wasm.wasmPaths = new URL('onnxruntime-web/dist/', NODE_MODULES).href;
  ort.env.wasm.numThreads = threads;
  const session = await ort.InferenceSession.create(modelUrl, {
    executionProviders: [runtime.gpu ? 'webgpu' : 'wasm'],
    graphOptimizationLevel: 'all',
  });
  const { input, output } = manifest;
  return {
    async run(x) {
      const feed = new ort.Tensor(input.dtype, io.encode(x), input.shape);
      const results = await session.run({ [input.name]: feed });
      const out = results[output.name] ?? results[session.outputNames[0]];
      const logits = io.decode(await out.getData());
      out.dispose();
      return logits;
    },
    close: () => session.release(),
  };
}

/** Opens the model on the runtime: {run(x: Float32Array) -> logits Float32Array, close, ioNote}. */
export async function openModel(runtimeId, modelUrl, manifest, threads) {
  const runtime = RUNTIMES.find((r) => r.id === runtimeId);
  if (!runtime) throw new Error(`unknown runtime ${runtimeId}`);
  if (runtime.target !== manifest.target) throw new Error(`${runtime.name} runs ${runtime.target} models, not ${manifest.target}`);
  const io = ioPlan(manifest, runtimeId);
  const open = runtime.target === 'tflite' ? openLiteRt : openOrt;
  return { ...(await open(runtime, modelUrl, manifest, threads, io)), ioNote: io.note };
}

/** Version of an npm package as installed in node_modules (shown on the page). */
export async function packageVersion(name) {
  try {
    const response = await fetch(new URL(`${name}/package.json`, NODE_MODULES));
    return (await response.json()).version;
  } catch {
    return '?';
  }
}
