// The page: finds the bundled models (bundle_contract.json), classifies the bundled sample
// photo first, then any photo the user drops or picks, on the runtime picked.
//
// URL parameters (for links and the tests): runtime=litert-wasm|litert-webgpu|ort-wasm|
// ort-webgpu, threads=N, runs=N. The last result is on window.mfdeploy.result and
// <html data-state> is loading / running / done / error.

import { compareGolden, tensorSha256, tensorSum } from './golden.js';
import { median, normalize, preprocessingSpec, resizedSize, topK } from './prep.js';
import { RUNTIMES, openModel, packageVersion, webgpuAvailable } from './runtimes.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const isolated = globalThis.crossOriginIsolated === true;
const state = { bundles: {}, contract: null, model: null, modelKey: null, loadMs: null, last: null, busy: false };
window.mfdeploy = state;

function setState(name) {
  document.documentElement.dataset.state = name;
}

async function fetchOk(url, as) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return as === 'json' ? response.json() : as === 'text' ? response.text() : response.blob();
}

/** Every slot of the contract that has a bundle: {target: {dir, manifest, labels, golden}}. */
async function findBundles() {
  const contract = await fetchOk('bundle_contract.json', 'json');
  state.contract = contract;
  for (const [target, slot] of Object.entries(contract.slots)) {
    const dir = `${slot.bundle_dir}/`;
    let manifest;
    try {
      manifest = await fetchOk(dir + contract.manifest, 'json');
    } catch {
      continue; // nothing bundled for this target
    }
    const [labelsText, golden] = await Promise.all([
      fetchOk(dir + contract.labels, 'text'),
      fetchOk(dir + contract.golden, 'json'),
    ]);
    const labels = labelsText.split('\n').map((l) => l.trim()).filter(Boolean);
    state.bundles[target] = { target, dir, slot, manifest, labels, golden, spec: preprocessingSpec(manifest) };
  }
}

async function fillPickers() {
  const gpu = await webgpuAvailable();
  const select = $('runtime');
  for (const r of RUNTIMES) {
    if (!state.bundles[r.target]) continue;
    const option = new Option(`${r.name} · ${r.backend} (.${r.target})`, r.id);
    option.disabled = r.gpu && !gpu;
    if (option.disabled) option.text += ' — no WebGPU adapter';
    select.add(option);
  }
  const wanted = params.get('runtime');
  const usable = [...select.options].filter((o) => !o.disabled);
  if (!usable.length) throw new Error('no runtime for the bundled models');
  select.value = usable.some((o) => o.value === wanted) ? wanted : usable[0].value;
  if (wanted && select.value !== wanted) showNote(`runtime ${wanted} is not available here; using ${select.value}`);

  const threads = $('threads');
  const cores = navigator.hardwareConcurrency || 1;
  const counts = isolated ? [...new Set([1, 2, 4, cores])].filter((n) => n <= Math.max(cores, 2)).sort((a, b) => a - b) : [1];
  for (const n of counts) threads.add(new Option(n === 1 ? '1 thread' : `${n} threads`, String(n)));
  const asked = Number(params.get('threads') || 1);
  threads.value = counts.includes(asked) ? String(asked) : '1';
  if (asked > 1 && !isolated) showNote('threads need a cross-origin isolated page (serve.py sends COOP / COEP); running 1 thread');
  $('isolation').textContent = isolated ? 'cross-origin isolated: WASM threads available' : 'not cross-origin isolated: 1 WASM thread';
  $('runs').value = String(Math.max(1, Number(params.get('runs') || 10)));
}

function showNote(text) {
  $('note').textContent = text;
  $('note').hidden = !text;
}

function currentBundle() {
  const runtime = RUNTIMES.find((r) => r.id === $('runtime').value);
  return { runtime, bundle: state.bundles[runtime.target] };
}

/** Decoded RGBA pixels of `blob`, resized (short side) as the manifest says unless it already is. */
async function pixels(blob, spec) {
  const exact = { colorSpaceConversion: 'none', premultiplyAlpha: 'none' };
  let bitmap = await createImageBitmap(blob, exact);
  const [w, h] = resizedSize(bitmap.width, bitmap.height, spec.resize);
  const resampled = w !== bitmap.width || h !== bitmap.height;
  if (resampled) {
    bitmap.close();
    bitmap = await createImageBitmap(blob, { ...exact, resizeWidth: w, resizeHeight: h, resizeQuality: 'high' });
  }
  const canvas = new OffscreenCanvas(w, h);
  const ctx = canvas.getContext('2d', { willReadFrequently: true, colorSpace: 'srgb' });
  ctx.drawImage(bitmap, 0, 0);
  const data = ctx.getImageData(0, 0, w, h, { colorSpace: 'srgb' }).data;
  return { bitmap, width: w, height: h, data, resampled };
}

function drawPhoto(image, spec) {
  const canvas = $('photo');
  canvas.width = image.width;
  canvas.height = image.height;
  const ctx = canvas.getContext('2d');
  ctx.drawImage(image.bitmap, 0, 0);
  const r = spec.resolution;
  const left = Math.floor((image.width - r) / 2);
  const top = Math.floor((image.height - r) / 2);
  ctx.fillStyle = 'rgba(15, 23, 42, 0.45)';
  ctx.fillRect(0, 0, image.width, top);
  ctx.fillRect(0, top + r, image.width, image.height - top - r);
  ctx.fillRect(0, top, left, r);
  ctx.fillRect(left + r, top, image.width - left - r, r);
  ctx.strokeStyle = '#f8fafc';
  ctx.setLineDash([6, 4]);
  ctx.lineWidth = 2;
  ctx.strokeRect(left + 1, top + 1, r - 2, r - 2);
}

async function ensureModel(runtimeId, bundle, threads) {
  const key = `${runtimeId}/${threads}/${bundle.manifest.artifact_sha256}`;
  if (state.modelKey === key) return state.model;
  if (state.model) state.model.close();
  state.model = null;
  state.modelKey = null;
  const started = performance.now();
  const url = bundle.dir + bundle.slot.model;
  state.model = await openModel(runtimeId, url, bundle.manifest, threads);
  state.loadMs = performance.now() - started;
  state.modelKey = key;
  return state.model;
}

/** Preprocess, run (1 warm-up + N timed runs), check the golden when it is the sample. */
async function classify(blob, source) {
  if (state.busy) return;
  state.busy = true;
  setState('running');
  $('status').textContent = 'running…';
  try {
    const { runtime, bundle } = currentBundle();
    const threads = Number($('threads').value);
    const runs = Math.max(1, Number($('runs').value) || 1);
    const image = await pixels(blob, bundle.spec);
    drawPhoto(image, bundle.spec);
    const x = normalize(image.data, image.width, image.height, bundle.spec);
    const sha256 = await tensorSha256(x);
    const model = await ensureModel(runtime.id, bundle, threads);
    let logits = await model.run(x); // warm-up
    const times = [];
    for (let i = 0; i < runs; i++) {
      const t0 = performance.now();
      logits = await model.run(x);
      times.push(performance.now() - t0);
    }
    const isSample = source === 'sample';
    const failures = isSample ? compareGolden(bundle.golden, x, sha256, logits) : null;
    state.last = {
      runtime: runtime.id,
      target: bundle.target,
      model: bundle.manifest.model,
      precision: bundle.manifest.precision,
      source,
      threads,
      crossOriginIsolated: isolated,
      resampled: image.resampled,
      imageSize: [image.width, image.height],
      ioNote: model.ioNote,
      input: { sha256, sum: tensorSum(x), length: x.length },
      logits: Array.from(logits),
      top5: topK(logits, 5).map((t) => ({ ...t, label: bundle.labels[t.index] ?? String(t.index) })),
      latencyMs: { median: median(times), runs, all: times, loadMs: state.loadMs },
      golden: failures === null ? null : { pass: failures.length === 0, failures },
      downloads: downloads(),
    };
    render(state.last, bundle);
    setState('done');
  } catch (error) {
    console.error(error);
    state.last = { error: String(error.message ?? error) };
    $('status').textContent = `error: ${state.last.error}`;
    $('status').className = 'status error';
    setState('error');
  } finally {
    state.busy = false;
  }
}

/** Bytes this page has downloaded so far, by kind (resource timing, same origin). */
function downloads() {
  const sums = { page: 0, runtime: 0, bundle: 0 };
  const entries = [...performance.getEntriesByType('navigation'), ...performance.getEntriesByType('resource')];
  for (const e of entries) {
    const kind = e.name.includes('/node_modules/') ? 'runtime' : e.name.includes('/bundle/') ? 'bundle' : 'page';
    sums[kind] += e.encodedBodySize || 0;
  }
  return { ...sums, total: sums.page + sums.runtime + sums.bundle };
}

const mb = (bytes) => `${(bytes / 1e6).toFixed(1)} MB`;

function render(result, bundle) {
  const list = $('top5');
  list.replaceChildren();
  const best = result.top5[0].score;
  for (const t of result.top5) {
    const li = document.createElement('li');
    li.innerHTML = '<div class="row"><span class="label"></span><span class="score"></span></div><div class="bar"><span></span></div>';
    li.querySelector('.label').textContent = t.label;
    li.querySelector('.score').textContent = `${(t.score * 100).toFixed(1)} %  ·  logit ${t.logit.toFixed(3)}`;
    li.querySelector('.bar span').style.width = `${Math.max(1, (t.score / best) * 100)}%`;
    li.title = `class ${t.index}`;
    list.append(li);
  }
  const lat = result.latencyMs;
  $('latency').textContent = `${lat.median.toFixed(1)} ms`;
  $('latency-detail').textContent = `median of ${lat.runs} run${lat.runs > 1 ? 's' : ''} after 1 warm-up · ${result.threads} thread${result.threads > 1 ? 's' : ''} · load + compile ${lat.loadMs.toFixed(0)} ms`;
  const golden = $('golden');
  if (result.golden === null) {
    golden.textContent = 'golden: n/a (your photo)';
    golden.className = 'badge neutral';
    $('golden-detail').textContent = result.resampled ? 'resized by the browser (not PIL\'s filter): close to mfdeploy predict, not bit-exact' : '';
  } else {
    golden.textContent = result.golden.pass ? 'golden: pass' : 'golden: fail';
    golden.className = `badge ${result.golden.pass ? 'pass' : 'fail'}`;
    $('golden-detail').textContent = result.golden.pass
      ? `input sha256 ${result.input.sha256.slice(0, 12)}… = golden; top-5 logits within ${bundle.golden.logit_tolerance.toPrecision(2)}`
      : result.golden.failures.join('; ');
  }
  const m = bundle.manifest;
  $('model').textContent = `${m.model} · ${m.target} ${m.precision}${m.synthetic_weights ? ' · synthetic weights' : ''}`;
  $('io').textContent = `I/O: ${result.ioNote}`;
  const d = result.downloads;
  $('downloads').textContent = `downloaded ${mb(d.total)} (runtime ${mb(d.runtime)}, model bundle ${mb(d.bundle)}, page ${(d.page / 1e3).toFixed(0)} kB)`;
  const size = `${result.imageSize.join('×')}, centre crop ${bundle.spec.resolution}×${bundle.spec.resolution} (dashed)`;
  $('status').textContent = `${result.source === 'sample' ? 'bundled sample photo' : `your photo: ${result.source}`} · ${size}`;
  $('status').className = 'status';
}

async function classifySample() {
  const { bundle } = currentBundle();
  const blob = await fetchOk(bundle.dir + state.contract.sample_image, 'blob');
  await classify(blob, 'sample');
}

function wireInputs() {
  $('file').addEventListener('change', (e) => {
    const file = e.target.files[0];
    if (file) classify(file, file.name);
  });
  const drop = $('drop');
  drop.addEventListener('dragover', (e) => {
    e.preventDefault();
    drop.classList.add('over');
  });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    const file = [...e.dataTransfer.files].find((f) => f.type.startsWith('image/'));
    if (file) classify(file, file.name);
  });
  $('sample').addEventListener('click', classifySample);
  $('runtime').addEventListener('change', classifySample);
  // ONNX Runtime Web reads its thread count once per page: a new count reloads the page.
  $('threads').addEventListener('change', () => {
    const next = new URLSearchParams(location.search);
    next.set('threads', $('threads').value);
    next.set('runtime', $('runtime').value);
    location.search = next.toString();
  });
  $('rerun').addEventListener('click', classifySample);
}

async function main() {
  setState('loading');
  try {
    await findBundles();
    if (!Object.keys(state.bundles).length) {
      throw new Error('no model bundled: run `mfdeploy bundle --app web ARTIFACT_DIR` first');
    }
    await fillPickers();
    const [lrt, ort] = await Promise.all([packageVersion('@litertjs/core'), packageVersion('onnxruntime-web')]);
    $('versions').textContent = `LiteRT.js ${lrt} · ONNX Runtime Web ${ort}`;
    wireInputs();
    await classifySample();
  } catch (error) {
    console.error(error);
    state.last = { error: String(error.message ?? error) };
    $('status').textContent = `error: ${state.last.error}`;
    $('status').className = 'status error';
    setState('error');
  }
}

main();
