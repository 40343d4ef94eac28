"""web_demo/ in headless Chromium: the page against the Python runtimes, for real.

The page is served by web_demo/serve.py on 127.0.0.1 (cross-origin isolated, so WASM threads
run) and driven by web_demo/test/drive.mjs: playwright-core from the committed npm lockfile
with Debian's /usr/bin/chromium (`executablePath`), so the whole browser side comes from
`npm ci` + apt, with no browser download and no chromedriver version to keep in step, and the
Python venv needs no extra package.

Bundled: Mobile-Former 26m fp32 (fixture weights) as .tflite (LiteRT.js) and .onnx (ONNX
Runtime Web), EfficientNet-Lite0 int8 .tflite exported with --float-io (LiteRT.js has no int8
tensors). For each, on the bundled sample photo: the page's preprocessed-tensor sha256 equals
Python's, its top-5 equals the golden top-5, all its logits are within the golden's fp32 /
int8 bound of the Python runtime's, and it shows "golden: pass"; a tampered golden shows
"golden: fail". Screenshots go to this module's output folder (printed).

Without node, web_demo/node_modules or Chromium these tests skip and say why; with CI set
they fail instead (`make setup` installs all three). The Node arithmetic test needs node only.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mfdeploy.apps.bundle import read_contract
from mfdeploy.apps.golden import logit_tolerance, model_input, tensor_sha256
from mfdeploy.artifact import Manifest, TensorSpec, path_sha256
from mfdeploy.cli import main
from mfdeploy.labels import labels_text
from mfdeploy.preprocessing import Preprocessing, center_crop, normalize, resize_short_side
from mfdeploy.runtimes import open_runtime
from mfdeploy.runtimes.base import dequantize, quantize
from tests.conftest import ROOT

WEB = ROOT / "web_demo"
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))


def _missing(browser: bool) -> str | None:
    """Why Node (and, for `browser`, the npm packages and Chromium) cannot run here, or None."""
    if not shutil.which("node"):
        return "node is not installed"
    if browser and not (WEB / "node_modules" / "playwright-core").is_dir():
        return "web_demo/node_modules is missing (make setup runs npm ci there)"
    if browser and not CHROMIUM.is_file():
        return f"{CHROMIUM} is missing (make setup: apt-get install -y chromium chromium-driver)"
    return None


def _require(browser: bool) -> None:
    """Skip with the reason; in CI (CI set) fail instead: there the test must run."""
    reason = _missing(browser)
    if reason and os.environ.get("CI"):
        pytest.fail(f"web demo test cannot run in CI: {reason}")
    if reason:
        pytest.skip(reason)


@pytest.fixture(scope="module")
def tools() -> None:
    _require(browser=True)


@pytest.fixture
def node_only() -> None:
    _require(browser=False)


def node(script: str, *args: str) -> str:
    result = subprocess.run(
        ["node", str(WEB / "test" / script), *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "CHROMIUM": str(CHROMIUM)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


# --------------------------------------------------- the page's arithmetic, in Node
EFFNET_PREP = Preprocessing(mean=(127.0,) * 3, std=(128.0,) * 3, pixel_scale=1.0)


def test_js_arithmetic_matches_numpy_bit_for_bit(node_only, tmp_path):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (13, 10, 3), dtype=np.uint8)
    rgba = np.concatenate([pixels, np.full((13, 10, 1), 255, np.uint8)], axis=2)
    preps = [
        Preprocessing(
            resolution=8, layout=layout, mean=m.mean, std=m.std, pixel_scale=m.pixel_scale
        )
        for m in (Preprocessing(), EFFNET_PREP)
        for layout in ("NCHW", "NHWC")
    ]
    x = rng.normal(0, 2, 500).astype(np.float32)
    scale, zero = 0.0078125, -1
    x[:8] = (np.arange(8) - 4 + 0.5) * scale  # exact ties: round half to even
    sizes = [(451, 300), (300, 451), (640, 480), (257, 255), (333, 222), (1000, 999), (256, 256)]
    logits = np.array([0.5, 2.0, 2.0, -1.0, 1.5, 2.0], np.float32)
    cases = {
        "normalize": [
            {
                "rgba": rgba.reshape(-1).tolist(),
                "width": 10,
                "height": 13,
                "manifest": {"preprocessing": p.to_dict(), "input": {"layout": p.layout}},
            }
            for p in preps
        ],
        "quantize": [
            {"x": x.tolist(), "scale": scale, "zero_point": zero, "dtype": d}
            for d in ("int8", "uint8")
        ],
        "dequantize": [{"q": list(range(-128, 128)), "scale": 0.0607497, "zero_point": -47}],
        "resized": [{"width": w, "height": h, "resize": 256} for w, h in sizes],
        "topk": [{"logits": logits.tolist(), "k": 4}],
    }
    path = tmp_path / "cases.json"
    path.write_text(json.dumps(cases))
    out = json.loads(node("arith.mjs", str(path)))

    image = Image.fromarray(pixels)
    for prep, got in zip(preps, out["normalize"], strict=True):
        want = normalize(np.asarray(center_crop(image, prep)), prep)
        assert np.array_equal(np.float32(got), want.reshape(-1)), prep.layout
    for dtype, got in zip((np.int8, np.uint8), out["quantize"], strict=True):
        assert np.array_equal(got, quantize(x, scale, zero, dtype))
    q = np.arange(-128, 128)
    assert np.array_equal(np.float32(out["dequantize"][0]), dequantize(q, 0.0607497, -47))
    prep = Preprocessing()
    for (w, h), got in zip(sizes, out["resized"], strict=True):
        assert tuple(got) == resize_short_side(Image.new("RGB", (w, h)), prep).size
    assert out["topk"] == [[1, 2, 5, 4]]  # ties: lower index first, as metrics.top_k


# ---------------------------------------------------------------- bundling refusals
def _fake_artifact(dest: Path, target: str, input: str = "float32", output: str = "float32"):
    """An artifact dir that passes the checksum (random model bytes) with the given target and
    I/O dtypes: enough for the refusals, which come before any model is run."""
    dest.mkdir(parents=True)
    model = dest / {"coreml": "model.mlpackage"}.get(target, f"model.{target}")
    model.write_bytes(os.urandom(64))
    Manifest(
        model_family="mobile_former",
        model="mobile_former_26m",
        variant="26m",
        target=target,
        precision="int8",
        form="deploy",
        model_file=model.name,
        input=TensorSpec("input", [1, 224, 224, 3], input, "NHWC"),
        output=TensorSpec("logits", [1, 1000], output),
        preprocessing=Preprocessing().to_dict(),
        artifact_sha256=path_sha256(model),
    ).save(dest)
    (dest / "labels.txt").write_text(labels_text())
    return dest


def web_copy(dest: Path) -> Path:
    """A copy of web_demo/ (sources + sample photo, no bundle); node_modules linked, not copied."""
    project = dest / "web_demo"
    shutil.copytree(WEB, project, ignore=shutil.ignore_patterns("node_modules", "bundle"))
    if (WEB / "node_modules").is_dir():
        (project / "node_modules").symlink_to(WEB / "node_modules", target_is_directory=True)
    return project


@pytest.mark.parametrize(
    "target, dtypes, message",
    [
        ("tflite", {"input": "int8"}, "int8 input; the web app feeds tflite models float32"),
        ("tflite", {"output": "int8"}, "export with --float-io"),
        ("coreml", {}, "the web app runs tflite or onnx models"),
    ],
)
def test_web_refusals_exit_2_with_one_line(tmp_path, capsys, target, dtypes, message):
    project = web_copy(tmp_path)
    artifact = _fake_artifact(tmp_path / "artifact", target, **dtypes)
    code = main(["bundle", "--app", "web", str(artifact), "--project", str(project)])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith("mfdeploy: error:"), err
    assert message in err
    assert not (project / "bundle").exists()


def test_page_reads_every_name_from_the_contract():
    """The page has no second list of file names: it reads bundle_contract.json."""
    contract = json.loads((WEB / "bundle_contract.json").read_text())
    code = "\n".join(
        line
        for p in (WEB / "src").glob("*.js")
        for line in p.read_text().splitlines()
        if not line.lstrip().startswith(("//", "/*", "*"))  # comments may name the files
    )
    assert "bundle_contract.json" in code
    for key in ("manifest", "labels", "golden", "sample_image"):
        assert f"contract.{key}" in code, key
        assert contract[key] not in code, f"{contract[key]} hard-coded in src/"
    for target, slot in contract["slots"].items():
        assert slot["model"] not in code and slot["bundle_dir"] not in code
        assert read_contract("web", WEB, target).model == slot["model"]


# ------------------------------------------------------------------ the page, for real
CASES = {
    # id: (project, runtime, threads)
    "26m-fp32-tflite-litert": ("mf26m", "litert-wasm", 1),
    "26m-fp32-onnx-ort": ("mf26m", "ort-wasm", 2),
    "effnet-int8-tflite-litert": ("effnet", "litert-wasm", 2),
}


class Server:
    """web_demo/serve.py on a free loopback port, for one project directory."""

    def __init__(self, root: Path):
        self.process = subprocess.Popen(
            [sys.executable, str(WEB / "serve.py"), "--root", str(root), "--port", "0", "--quiet"],
            stdout=subprocess.PIPE,
            text=True,
        )
        self.url = self.process.stdout.readline().strip()
        assert self.url.startswith("http://127.0.0.1:"), self.url

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


@pytest.fixture(scope="module")
def page_runs(tools, exported, tmp_path_factory):
    """{case: (bundle dir, page result)} plus the tampered-golden run, one browser session."""
    root = tmp_path_factory.mktemp("web-demo")
    shots = tmp_path_factory.mktemp("web-demo-screenshots")
    projects = {"mf26m": web_copy(root / "mf26m"), "effnet": web_copy(root / "effnet")}
    artifacts = [
        ("mf26m", exported("tflite", "fp32")),
        ("mf26m", exported("onnx", "fp32")),
        ("effnet", exported("tflite", "int8", "efficientnet_lite0", float_io=True)),
    ]
    for name, artifact in artifacts:
        assert (
            main(["bundle", "--app", "web", str(artifact), "--project", str(projects[name])]) == 0
        )
    # The same 26m bundle with one golden value changed: the page must say fail.
    projects["tampered"] = shutil.copytree(projects["mf26m"], root / "tampered", symlinks=True)
    golden_path = projects["tampered"] / "bundle" / "onnx" / "golden.json"
    golden = json.loads(golden_path.read_text())
    golden["input"]["sha256"] = "0" * 64
    golden_path.write_text(json.dumps(golden))

    servers = {name: Server(path) for name, path in projects.items()}
    try:
        jobs = [
            {
                "url": f"{servers[project].url}?runtime={runtime}&threads={threads}&runs=3",
                "screenshot": str(shots / f"{case}.png"),
            }
            for case, (project, runtime, threads) in CASES.items()
        ]
        jobs[-1]["upload"] = str(WEB / "sample" / "chelsea.png")  # then a picked photo
        jobs.append({"url": f"{servers['tampered'].url}?runtime=ort-wasm&runs=1"})
        results = json.loads(node("drive.mjs", _write(root / "jobs.json", jobs)))
    finally:
        for server in servers.values():
            server.stop()
    print(f"\nweb demo screenshots: {shots}")
    runs = {}
    for (case, (project, runtime, _)), result in zip(CASES.items(), results, strict=False):
        slot = "tflite" if runtime.startswith("litert") else "onnx"
        runs[case] = (projects[project] / "bundle" / slot, result, shots / f"{case}.png")
    runs["tampered"] = results[-1]
    return runs


def _write(path: Path, data) -> str:
    path.write_text(json.dumps(data))
    return str(path)


def _page(page_runs, case: str) -> tuple[Path, dict, dict]:
    folder, result, _ = page_runs[case]
    assert result["state"] == "done", result
    assert not [e for e in result["errors"] if e.startswith("pageerror")], result["errors"]
    return folder, result["last"], result["text"]


@pytest.mark.parametrize("case", list(CASES))
def test_page_tensor_and_top5_match_python(page_runs, case):
    folder, last, text = _page(page_runs, case)
    manifest = Manifest.load(folder)
    golden = json.loads((folder / "golden.json").read_text())
    nchw, x = model_input(folder / "sample.png", manifest)
    assert last["input"]["sha256"] == tensor_sha256(x) == golden["input"]["sha256"]
    assert [t["index"] for t in last["top5"]] == [t["index"] for t in golden["top_k"]]
    contract = read_contract("web", folder.parents[1], manifest.target)
    beside = (contract.golden, contract.sample_image)  # the bundle's files, not the artifact's
    python = open_runtime(folder, beside=beside).run(nchw)[0]
    page = np.asarray(last["logits"], np.float32)
    bound = logit_tolerance(manifest.precision, python)
    assert page.shape == python.shape
    assert float(np.abs(page - python).max()) <= bound, (np.abs(page - python).max(), bound)
    assert last["golden"] == {"pass": True, "failures": []}
    assert text["golden"] == "golden: pass"


@pytest.mark.parametrize("case", list(CASES))
def test_page_runs_what_was_asked(page_runs, case):
    folder, last, text = _page(page_runs, case)
    _, runtime, threads = CASES[case]
    manifest = Manifest.load(folder)
    assert last["runtime"] == runtime and last["threads"] == threads
    assert last["crossOriginIsolated"] is True  # serve.py's COOP / COEP: threads are real
    assert (last["model"], last["precision"]) == (manifest.model, manifest.precision)
    assert last["latencyMs"]["runs"] == 3 and len(last["latencyMs"]["all"]) == 3
    assert last["latencyMs"]["median"] > 0
    # the page says how the int8 model's I/O is fed
    expected = "--float-io" if manifest.precision == "int8" else "float32 in / float32 out"
    assert expected in text["io"], text["io"]
    assert last["downloads"]["bundle"] >= (folder / manifest.model_file).stat().st_size
    shot = page_runs[case][2]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


def test_page_reports_a_golden_mismatch(page_runs):
    result = page_runs["tampered"]
    assert result["state"] == "done", result
    assert result["text"]["golden"] == "golden: fail"
    assert result["last"]["golden"]["failures"] == ["input checksum differs from the golden"]


CATS = {281, 282, 283, 284, 285}  # tabby, tiger cat, Persian, Siamese, Egyptian cat


def test_page_classifies_a_picked_photo(page_runs):
    """The original photo (451 x 300) picked in the file input: resized by the browser, so no
    golden (the page says n/a), but EfficientNet-Lite0 still sees the cat the golden sees."""
    folder, _, _ = _page(page_runs, "effnet-int8-tflite-litert")
    upload = page_runs["effnet-int8-tflite-litert"][1]["upload"]
    assert upload["state"] == "done", upload
    last = upload["last"]
    assert last["source"] == "chelsea.png" and last["resampled"] is True
    prep = Preprocessing.from_dict(Manifest.load(folder).preprocessing)
    original = Image.open(WEB / "sample" / "chelsea.png")
    assert tuple(last["imageSize"]) == resize_short_side(original, prep).size
    assert last["golden"] is None and upload["text"]["golden"] == "golden: n/a (your photo)"
    assert last["top5"][0]["index"] in CATS
    golden = json.loads((folder / "golden.json").read_text())
    shared = {t["index"] for t in last["top5"]} & {t["index"] for t in golden["top_k"]}
    assert len(shared) >= 3, last["top5"]
