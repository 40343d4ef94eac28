"""`mfdeploy bundle` into copies of android_demo/ and ios_demo/ (26m fp32 with the fixture
weights: the session's shared exports of `exported`).

The apps are not compiled here (no Android SDK / Gradle / Swift toolchain); what is checked
is the contract between the bundler and the app sources: file names read from the apps'
contract files, the bundled manifest against the real model signature, the golden file
against the Python runtime, and the refusals leaving the previous bundle intact.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from mfdeploy.apps.bundle import APPS, contract_targets, read_contract
from mfdeploy.apps.golden import compare, model_input, tensor_sha256
from mfdeploy.artifact import Manifest, path_sha256
from mfdeploy.cli import main
from mfdeploy.preprocessing import Preprocessing, center_crop, load_image, normalize, preprocess
from mfdeploy.runtimes import open_runtime
from tests.conftest import ROOT

pytest.importorskip("litert_torch")
pytest.importorskip("coremltools")


@pytest.fixture(scope="module")
def artifacts(exported):
    return {target: exported(target, "fp32") for target in ("tflite", "coreml")}


def copy_app(app: str, dest: Path) -> Path:
    """A copy of the app project (sources + sample photo, no earlier bundle)."""
    src = ROOT / APPS[app].default_dir
    project = dest / src.name
    shutil.copytree(src, project)
    for target in contract_targets(app, project):
        shutil.rmtree(project / read_contract(app, project, target).bundle_dir, ignore_errors=True)
    return project


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def bundled(artifacts, tmp_path_factory):
    """{app: project dir} with the matching fp32 artifact bundled."""
    root = tmp_path_factory.mktemp("apps")
    made = {}
    for app, target in (("android", "tflite"), ("ios", "coreml")):
        project = copy_app(app, root)
        assert (
            main(["bundle", "--app", app, str(artifacts[target]), "--project", str(project)]) == 0
        )
        made[app] = project
    return made


def bundle_dir(app: str, project: Path) -> Path:
    return project / read_contract(app, project).bundle_dir


# ---------------------------------------------------------------- the contract
def test_contract_files_are_the_apps_own(bundled):
    android = read_contract("android", bundled["android"])
    assert android.target == "tflite" and android.model == "model.tflite"
    ios = read_contract("ios", bundled["ios"])
    assert ios.target == "coreml" and ios.model == "model.mlpackage"
    # Android: the bundle dir is an assets dir, and the app reads it under ASSET_DIR.
    kotlin = (bundled["android"] / APPS["android"].contract_file).read_text()
    asset_dir = re.search(r'const val ASSET_DIR = "([^"]+)"', kotlin).group(1)
    assert android.bundle_dir == f"app/src/main/assets/{asset_dir}"
    # iOS: project.yml copies the bundle dir into the app as the folder resourceDir.
    swift = (bundled["ios"] / APPS["ios"].contract_file).read_text()
    resource_dir = re.search(r'static let resourceDir = "([^"]+)"', swift).group(1)
    project_yml = (bundled["ios"] / "project.yml").read_text()
    assert f"- path: {ios.bundle_dir}\n        type: folder" in project_yml
    assert Path(ios.bundle_dir).name == resource_dir


@pytest.mark.parametrize(
    "app, sources, reference",
    [
        ("android", "app/src", "BundleContract.{}"),
        ("ios", "MobileFormerDemo*", "BundleContract.{}"),
    ],
)
def test_app_code_reads_every_bundled_file_through_the_contract(bundled, app, sources, reference):
    project = bundled[app]
    contract = read_contract(app, project)
    code = "\n".join(
        p.read_text()
        for pattern in (f"{sources}/**/*.kt", f"{sources}/**/*.swift")
        for p in project.glob(pattern)
        if p.name != Path(APPS[app].contract_file).name
    )
    # Android reads the model through its engine's slot (BundleContract.LITERT / EXECUTORCH,
    # see test_android_kotlin_slots_are_the_bundlers), the shared names directly.
    constants = {
        "android": ("MANIFEST", "LABELS", "GOLDEN", "SAMPLE_IMAGE", "SLOTS", "LITERT", "EXECUTORCH")
    }.get(app, ("model", "manifest", "labels", "golden", "sampleImage"))
    for name in constants:
        assert reference.format(name) in code, f"{app} app never reads BundleContract.{name}"
    for name in contract.bundle_files:
        assert (bundle_dir(app, project) / name).exists(), name
    assert not list(bundle_dir(app, project).parent.glob(".mfdeploy.*"))  # no staging left


# ------------------------------------------------------- manifest vs real model
def test_android_manifest_matches_the_tflite_signature(bundled):
    from ai_edge_litert.interpreter import Interpreter

    folder = bundle_dir("android", bundled["android"])
    manifest = Manifest.load(folder)
    interpreter = Interpreter(model_path=str(folder / "model.tflite"))
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    assert list(inp["shape"]) == manifest.input.shape == [1, 224, 224, 3]
    assert manifest.input.layout == "NHWC"
    assert np.dtype(inp["dtype"]).name == manifest.input.dtype
    assert list(out["shape"]) == manifest.output.shape
    assert np.dtype(out["dtype"]).name == manifest.output.dtype
    assert manifest.input.scale is None and manifest.input.zero_point is None
    assert path_sha256(folder / "model.tflite") == manifest.artifact_sha256


def test_ios_manifest_matches_the_coreml_spec(bundled):
    import coremltools as ct

    folder = bundle_dir("ios", bundled["ios"])
    manifest = Manifest.load(folder)
    spec = ct.models.MLModel(str(folder / "model.mlpackage"), skip_model_load=True).get_spec()
    (inp,), (out,) = spec.description.input, spec.description.output
    float32 = ct.proto.FeatureTypes_pb2.ArrayFeatureType.FLOAT32
    assert inp.name == manifest.input.name and out.name == manifest.output.name
    assert list(inp.type.multiArrayType.shape) == manifest.input.shape == [1, 3, 224, 224]
    assert inp.type.multiArrayType.dataType == float32 and manifest.input.dtype == "float32"
    assert list(out.type.multiArrayType.shape) == manifest.output.shape
    assert path_sha256(folder / "model.mlpackage") == manifest.artifact_sha256


# ------------------------------------------------------------------- golden file
@pytest.mark.parametrize("app", ["android", "ios"])
def test_golden_is_reproduced_by_the_python_runtime(bundled, app):
    folder = bundle_dir(app, bundled[app])
    contract = read_contract(app, bundled[app])
    golden = json.loads((folder / contract.golden).read_text())
    manifest = Manifest.load(folder)
    assert golden["artifact_sha256"] == manifest.artifact_sha256
    assert golden["runtime"]["runtime"] == {"tflite": "litert", "coreml": "coreml"}[manifest.target]
    assert len(golden["top_k"]) == 5 and golden["input"]["tolerance"] <= 1e-6
    nchw, x = model_input(folder / golden["sample_image"], manifest)
    beside = (contract.golden, contract.sample_image)  # the bundle's own files
    logits = open_runtime(folder, beside=beside).run(nchw)[0]
    assert compare(golden, x, logits) == []
    # and the check is not vacuous: a nudged tensor or other logits fail it
    nudged = x.copy()
    nudged.reshape(-1)[golden["input"]["samples"][2]["index"]] += 1e-4
    assert compare(golden, nudged, logits)
    assert compare(golden, x, np.roll(logits, 1))


def test_golden_tflite_top5_from_the_bare_interpreter(bundled):
    """The bundled .tflite run without the adapter (what the app does) gives the golden."""
    from ai_edge_litert.interpreter import Interpreter

    folder = bundle_dir("android", bundled["android"])
    golden = json.loads((folder / "golden.json").read_text())
    _, x = model_input(folder / "sample.png", Manifest.load(folder))
    interpreter = Interpreter(model_path=str(folder / "model.tflite"))
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    logits = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])[0]
    assert compare(golden, x, logits) == []


@pytest.mark.parametrize("app", ["android", "ios"])
def test_shipped_sample_needs_no_resampling(bundled, app):
    """The app's path (crop + normalise, no resize) equals `preprocess` bit for bit."""
    folder = bundle_dir(app, bundled[app])
    manifest = Manifest.load(folder)
    prep = Preprocessing.from_dict(manifest.preprocessing)
    image = load_image(folder / "sample.png")
    assert min(image.size) == prep.resize
    no_resize = normalize(np.asarray(center_crop(image, prep)), prep)
    assert np.array_equal(no_resize, preprocess(image, prep))
    golden = json.loads((folder / "golden.json").read_text())
    _, x = model_input(folder / "sample.png", manifest)
    assert tensor_sha256(x) == golden["input"]["sha256"]


# ---------------------------------------------------------------------- refusals
def _tampered(artifact: Path, dest: Path) -> Path:
    shutil.copytree(artifact, dest)
    model = dest / "model.tflite"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    return dest


def _other_target(artifact: Path, dest: Path, target: str, model_file: str) -> Path:
    shutil.copytree(artifact, dest)
    manifest = json.loads((dest / "manifest.json").read_text())
    manifest.update(target=target, model_file=model_file)
    (dest / "manifest.json").write_text(json.dumps(manifest))
    return dest


def _without(artifact: Path, dest: Path, name: str) -> Path:
    shutil.copytree(artifact, dest)
    (dest / name).unlink()
    return dest


REFUSALS = {
    "sha256 mismatch": ("android", lambda a, d: _tampered(a["tflite"], d), "does not match"),
    "coreml into android": ("android", lambda a, d: a["coreml"], "coreml artifact"),
    "onnx into ios": (
        "ios",
        lambda a, d: _other_target(a["coreml"], d, "onnx", "model.onnx"),
        "onnx artifact",
    ),
    "pytorch into android": (
        "android",
        lambda a, d: _other_target(a["tflite"], d, "pytorch", "model.safetensors"),
        "pytorch artifact",
    ),
    "missing model": (
        "android",
        lambda a, d: _without(a["tflite"], d, "model.tflite"),
        "model.tflite is missing",
    ),
    "missing labels": (
        "ios",
        lambda a, d: _without(a["coreml"], d, "labels.txt"),
        "labels.txt is missing",
    ),
    "missing manifest": (
        "android",
        lambda a, d: _without(a["tflite"], d, "manifest.json"),
        "not an artifact",
    ),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_refusals_exit_2_with_one_line_and_keep_the_previous_bundle(
    case, artifacts, bundled, tmp_path, capsys
):
    app, make, message = REFUSALS[case]
    project = bundled[app]
    before = path_sha256(bundle_dir(app, project))
    code, out, err = run_cli(
        capsys, "bundle", "--app", app, str(make(artifacts, tmp_path / "artifact")), "--project",
        str(project),
    )  # fmt: skip
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and err.startswith("mfdeploy: error:"), err
    assert message in err and out == ""
    assert path_sha256(bundle_dir(app, project)) == before
    assert not list(bundle_dir(app, project).parent.glob(".mfdeploy.*"))


@pytest.mark.parametrize("app", ["android", "ios"])
def test_wrong_project_is_refused(app, artifacts, bundled, tmp_path, capsys):
    other = bundled["ios" if app == "android" else "android"]
    target = "tflite" if app == "android" else "coreml"
    for project in (other, tmp_path):
        before = path_sha256(other)
        code, _, err = run_cli(
            capsys, "bundle", "--app", app, str(artifacts[target]), "--project", str(project)
        )
        assert code == 2 and len(err.strip().splitlines()) == 1
        assert f"is not the {app} demo app" in err
        assert path_sha256(other) == before


def test_rebundling_replaces_the_bundle_whole(artifacts, tmp_path, capsys):
    project = copy_app("android", tmp_path)
    args = ("bundle", "--app", "android", str(artifacts["tflite"]), "--project", str(project))
    assert run_cli(capsys, *args)[0] == 0
    folder = bundle_dir("android", project)
    (folder / "stale.bin").write_bytes(b"left over from an older bundle")
    code, out, _ = run_cli(capsys, *args)
    assert code == 0 and Path(out.strip()) == folder
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        read_contract("android", project).bundle_files
    )


def test_help_explains(capsys):
    assert main(["bundle", "--help"]) == 0
    text = capsys.readouterr().out
    for phrase in ("--app", "--project", "golden", "sha256", "exit code 2"):
        assert phrase in text


# --------------------------------------------- the Kotlin logic, where it can run
def test_kotlin_core_reproduces_the_golden_tensor(bundled, tmp_path):
    """Compile the app's pure Kotlin + JVM unit tests with kotlinc and run them on the bundle.

    Runs only where kotlinc and JUnit 4 are installed (Debian: kotlin, junit4); the
    GoldenFileTest there checks the Kotlin preprocessing against the golden checksum.
    """
    kotlinc = shutil.which("kotlinc")
    junit = [Path("/usr/share/java/junit4.jar"), Path("/usr/share/java/hamcrest-core.jar")]
    if not kotlinc or not all(p.is_file() for p in junit):
        pytest.skip("kotlinc / junit4 not installed")
    stdlib = Path(kotlinc).resolve().parent.parent / "lib" / "kotlin-stdlib.jar"
    app = bundled["android"] / "app"
    cp = ":".join(map(str, junit))
    core, tests = tmp_path / "core.jar", tmp_path / "tests.jar"
    main_src = sorted(map(str, (app / "src/main/java/org/mfdeploy/demo/core").glob("*.kt")))
    test_src = sorted(map(str, (app / "src/test/java/org/mfdeploy/demo/core").glob("*.kt")))
    subprocess.run([kotlinc, *main_src, "-d", str(core)], check=True, capture_output=True)
    subprocess.run(
        [kotlinc, "-cp", f"{core}:{cp}", *test_src, "-d", str(tests)],
        check=True,
        capture_output=True,
    )
    classes = [f"org.mfdeploy.demo.core.{Path(p).stem}" for p in test_src]
    classes.append("org.mfdeploy.demo.core.GoldenCheckTest")  # second class in TopKTest.kt
    result = subprocess.run(
        ["java", "-cp", f"{core}:{tests}:{cp}:{stdlib}", "org.junit.runner.JUnitCore", *classes],
        cwd=app,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert "OK (" in result.stdout


# ------------------------------------------- Android: the ExecuTorch engine's slot
def _kotlin_consts(project: Path) -> dict[str, str]:
    """BundleContract.kt's constants, read here with the test's own regex (not the bundler's)."""
    text = (project / APPS["android"].contract_file).read_text()
    return dict(re.findall(r'const val (\w+) = "([^"]*)"', text))


@pytest.fixture(scope="module")
def android_both(exported, tmp_path_factory):
    """A copy of android_demo with an fp32 TFLite and an fp32 ExecuTorch artifact bundled (the
    same 26m fixture weights), and the two artifacts."""
    project = copy_app("android", tmp_path_factory.mktemp("android-both"))
    made = {"tflite": exported("tflite", "fp32"), "executorch": exported("executorch", "fp32")}
    for artifact in made.values():
        assert main(["bundle", "--app", "android", str(artifact), "--project", str(project)]) == 0
    return project, made


def test_android_kotlin_slots_are_the_bundlers(android_both):
    """The Kotlin Slot list (what the app opens) names the same directories and models as the
    slots the bundler parses, and the ExecuTorch slot is the one the issue asks for."""
    project, _ = android_both
    consts = _kotlin_consts(project)
    assert consts["EXECUTORCH_TARGET"] == "executorch"
    assert consts["EXECUTORCH_MODEL"] == "model.pte"
    assert (
        consts["EXECUTORCH_BUNDLE_DIR"] == f"app/src/main/assets/{consts['EXECUTORCH_ASSET_DIR']}"
    )
    assert consts["BUNDLE_DIR"] == f"app/src/main/assets/{consts['ASSET_DIR']}"
    text = (project / APPS["android"].contract_file).read_text()
    calls = re.findall(r'Slot\(\s*"(\w+)",\s*(\w+),\s*(\w+),\s*(\w+),\s*(\w+)\s*\)', text)
    assert [c[0] for c in calls] == ["LiteRT", "ExecuTorch"]
    kotlin = [tuple(consts[name] for name in call[1:]) for call in calls]
    assert [row[0] for row in kotlin] == contract_targets("android", project)
    for target, bundle_dir, asset_dir, model in kotlin:
        contract = read_contract("android", project, target)
        assert (contract.bundle_dir, contract.model) == (bundle_dir, model)
        assert bundle_dir == f"app/src/main/assets/{asset_dir}"
    # The two slots are separate directories, neither inside the other (re-bundling one
    # replaces its directory whole).
    lite, et = (Path(row[1]) for row in kotlin)
    assert lite != et and lite not in et.parents and et not in lite.parents
    # build.gradle.kts keeps the .pte uncompressed and pulls in ExecuTorch's Android runtime.
    gradle = (project / "app/build.gradle.kts").read_text()
    assert 'noCompress += "pte"' in gradle and "libs.executorch.android" in gradle
    toml = (project / "gradle/libs.versions.toml").read_text()
    assert 'module = "org.pytorch:executorch-android"' in toml


def test_executorch_bundle_lands_in_its_slot(android_both):
    project, made = android_both
    consts = _kotlin_consts(project)
    folder = project / consts["EXECUTORCH_BUNDLE_DIR"]
    expected = {consts[k] for k in ("EXECUTORCH_MODEL", "MANIFEST", "LABELS", "GOLDEN")}
    expected.add(consts["SAMPLE_IMAGE"])
    assert sorted(p.name for p in folder.iterdir()) == sorted(expected)
    artifact = made["executorch"]
    for name in ("model.pte", "manifest.json", "labels.txt"):
        assert path_sha256(folder / name) == path_sha256(artifact / name), name
    manifest = Manifest.load(folder)
    assert manifest.target == "executorch" and manifest.model_file == "model.pte"
    assert manifest.input.shape == [1, 3, 224, 224] and manifest.input.layout == "NCHW"
    assert manifest.input.dtype == manifest.output.dtype == "float32"
    assert not list(folder.parent.glob(".mfdeploy*"))  # no staging left


def test_executorch_golden_is_reproduced_by_the_python_runtime(android_both):
    project, _ = android_both
    contract = read_contract("android", project, "executorch")
    folder = project / contract.bundle_dir
    golden = json.loads((folder / contract.golden).read_text())
    manifest = Manifest.load(folder)
    assert golden["runtime"]["runtime"] == "executorch" and golden["target"] == "executorch"
    assert golden["artifact_sha256"] == path_sha256(folder / "model.pte")
    assert golden["input"]["layout"] == "NCHW" and golden["input"]["shape"] == [1, 3, 224, 224]
    assert golden["logit_tolerance"] > 0 and len(golden["top_k"]) == 5
    nchw, x = model_input(folder / golden["sample_image"], manifest)
    assert np.array_equal(nchw, x)  # NCHW: the app feeds the runtimes' own layout
    logits = open_runtime(folder, beside=(contract.golden, contract.sample_image)).run(nchw)[0]
    assert compare(golden, x, logits) == []
    assert compare(golden, x, logits + 2 * golden["logit_tolerance"])  # not vacuous
    assert compare(golden, x, np.roll(logits, 1))


def test_executorch_golden_from_the_bare_runtime(android_both):
    """The bundled .pte through executorch.runtime's Program / Method API (load, forward on
    one float32 NCHW tensor, logits: what the app's Module.load / forward does), not the
    adapter, gives the golden top-5."""
    import torch
    from executorch.runtime import Runtime

    project, _ = android_both
    folder = project / read_contract("android", project, "executorch").bundle_dir
    golden = json.loads((folder / "golden.json").read_text())
    _, x = model_input(folder / "sample.png", Manifest.load(folder))
    method = Runtime.get().load_program(folder / "model.pte").load_method("forward")
    logits = method.execute([torch.from_numpy(np.ascontiguousarray(x))])[0].numpy()[0]
    assert compare(golden, x, logits) == []


def test_the_two_engines_goldens_agree(android_both):
    """Same weights, two runtimes: the LiteRT and ExecuTorch goldens name the same top-5
    classes with logits within the fp32 tolerance, and their input tensors are the same
    values in two layouts (NHWC / NCHW)."""
    project, _ = android_both
    goldens = {
        t: json.loads(
            (project / read_contract("android", project, t).bundle_dir / "golden.json").read_text()
        )
        for t in ("tflite", "executorch")
    }
    lite, et = goldens["tflite"], goldens["executorch"]
    assert lite["runtime"]["runtime"] == "litert" and et["runtime"]["runtime"] == "executorch"
    assert lite["input"]["layout"] == "NHWC" and et["input"]["layout"] == "NCHW"
    assert lite["input"]["sum"] == pytest.approx(et["input"]["sum"], abs=1e-3)
    tol = max(lite["logit_tolerance"], et["logit_tolerance"])
    et_logits = {t["index"]: t["logit"] for t in et["top_k"]}
    for entry in lite["top_k"]:
        if entry["index"] in et_logits:
            assert abs(et_logits[entry["index"]] - entry["logit"]) <= tol
        else:  # a near-tie at the 5th place may swap
            assert entry["logit"] <= min(et_logits.values()) + tol


def test_tflite_and_executorch_bundles_coexist(android_both, capsys):
    """Re-bundling one engine's artifact replaces its slot only: the other is byte-identical."""
    project, made = android_both
    dirs = {t: project / read_contract("android", project, t).bundle_dir for t in made}
    for target, artifact in made.items():
        other = dirs["executorch" if target == "tflite" else "tflite"]
        before = path_sha256(other)
        code, out, _ = run_cli(
            capsys, "bundle", "--app", "android", str(artifact), "--project", str(project)
        )
        assert code == 0 and Path(out.strip()) == dirs[target]
        assert path_sha256(other) == before
    for target, folder in dirs.items():
        contract = read_contract("android", project, target)
        assert sorted(p.name for p in folder.iterdir()) == sorted(contract.bundle_files)
        assert Manifest.load(folder).target == target


def test_onnx_into_android_is_refused_and_nothing_is_written(
    android_both, exported, tmp_path, capsys
):
    project, _ = android_both
    onnx = exported("onnx", "fp32")
    capsys.readouterr()  # the export's own progress lines
    before = path_sha256(project)
    fresh = copy_app("android", tmp_path)
    for where in (project, fresh):
        code, out, err = run_cli(
            capsys, "bundle", "--app", "android", str(onnx), "--project", str(where)
        )
        assert code == 2 and out == ""
        assert len(err.strip().splitlines()) == 1 and err.startswith("mfdeploy: error:"), err
        assert "onnx artifact" in err and "tflite or executorch" in err
    assert path_sha256(project) == before
    assets = fresh / "app/src/main/assets"
    assert sorted(p.name for p in assets.iterdir()) == [".gitkeep"]  # no bundle, no staging


def test_float16_executorch_io_is_refused(android_both, tmp_path, capsys):
    """The ExecuTorch engine feeds a FloatArray: a float16-I/O .pte (fp16 export) is refused
    before anything is written (manifest edited: the check runs before the seal's)."""
    project, made = android_both
    art = _other_target(made["executorch"], tmp_path / "fp16", "executorch", "model.pte")
    manifest = json.loads((art / "manifest.json").read_text())
    manifest["input"]["dtype"] = "float16"
    (art / "manifest.json").write_text(json.dumps(manifest))
    folder = project / read_contract("android", project, "executorch").bundle_dir
    before = path_sha256(folder)
    code, _, err = run_cli(
        capsys, "bundle", "--app", "android", str(art), "--project", str(project)
    )
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "float16 input" in err and "float32 tensors only" in err
    assert path_sha256(folder) == before


def test_a_second_family_bundles_with_its_own_preprocessing(exported, tmp_path, capsys):
    """MobileViTv2-0.5 (bicubic, short side 288, crop 256, [0, 1] without mean / std) into
    the Android app: the shipped sample, cropped and scaled the app's way, is the family's
    preprocessing of the original photo, and the golden holds on the bundled model."""
    artifact = exported("tflite", "fp32", model="mobilevitv2_050")
    project = copy_app("android", tmp_path)
    code, _, err = run_cli(
        capsys, "bundle", "--app", "android", str(artifact), "--project", str(project)
    )
    assert code == 0, err
    folder = bundle_dir("android", project)
    contract = read_contract("android", project)
    manifest = Manifest.load(folder)
    prep = Preprocessing.from_dict(manifest.preprocessing)
    assert (prep.interpolation, prep.resize, prep.resolution) == ("bicubic", 288, 256)
    assert list(prep.mean) == [0.0, 0.0, 0.0] and list(prep.std) == [1.0, 1.0, 1.0]
    original = load_image(project / contract.sample_source)
    shipped = load_image(folder / contract.sample_image)
    assert min(shipped.size) == 288
    assert np.array_equal(
        normalize(np.asarray(center_crop(shipped, prep)), prep), preprocess(original, prep)
    )
    golden = json.loads((folder / contract.golden).read_text())
    nchw, x = model_input(folder / contract.sample_image, manifest)
    assert (
        golden["input"]["shape"] == [1, 256, 256, 3]
        and tensor_sha256(x) == golden["input"]["sha256"]
    )
    logits = open_runtime(folder, beside=(contract.golden, contract.sample_image)).run(nchw)[0]
    assert compare(golden, x, logits) == [] and compare(golden, x, np.roll(logits, 1))
