"""Latency of artifacts in the web demo page (headless Chromium) beside their Python runtime.

    python benchmarks/web_latency.py ARTIFACT_DIR... [--runs 30] [--threads 1,2]

For each artifact: bundle it into a temporary copy of web_demo/ (`mfdeploy bundle --app web`),
serve it with web_demo/serve.py (cross-origin isolated, so WASM threads are available), open
the page once per thread count (LiteRT.js WASM for .tflite, ONNX Runtime Web WASM for .onnx)
and read its median over --runs runs after 1 warm-up; then `mfdeploy bench`'s worker on the
same artifact (LiteRT / ONNX Runtime in Python, same thread counts, 3 warm-ups). Also the bytes
the page downloaded (runtime JS + WASM, model bundle, page). Prints a Markdown table; --json
writes the rows. Needs what tests/test_web_demo.py needs (node, web_demo/node_modules, Chromium).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from mfdeploy.apps.bundle import bundle
from mfdeploy.artifact import Manifest
from mfdeploy.harness import bench

WEB = Path(__file__).resolve().parent.parent / "web_demo"
PAGE_RUNTIME = {"tflite": "litert-wasm", "onnx": "ort-wasm"}


def page_latency(artifact: Path, threads: list[int], runs: int, work: Path) -> list[dict]:
    """The page's result for each thread count (one browser session)."""
    project = work / "web_demo"
    shutil.copytree(WEB, project, ignore=shutil.ignore_patterns("node_modules", "bundle"))
    (project / "node_modules").symlink_to(WEB / "node_modules", target_is_directory=True)
    bundle("web", artifact, project)
    runtime = PAGE_RUNTIME[Manifest.load(artifact).target]
    server = subprocess.Popen(
        [sys.executable, str(WEB / "serve.py"), "--root", str(project), "--port", "0", "--quiet"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        url = server.stdout.readline().strip()
        jobs = [{"url": f"{url}?runtime={runtime}&threads={n}&runs={runs}"} for n in threads]
        (work / "jobs.json").write_text(json.dumps(jobs))
        done = subprocess.run(
            ["node", str(WEB / "test" / "drive.mjs"), str(work / "jobs.json")],
            capture_output=True,
            text=True,
            check=True,
        )
    finally:
        server.terminate()
        server.wait(timeout=10)
    results = json.loads(done.stdout)
    for result in results:
        if result["state"] != "done":
            raise RuntimeError(f"{artifact}: the page failed: {result['last']}")
    return [r["last"] for r in results]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("artifacts", nargs="+", type=Path)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--json", type=Path, help="write the rows here")
    args = parser.parse_args(argv)
    threads = [int(n) for n in args.threads.split(",")]
    rows = []
    for artifact in args.artifacts:
        manifest = Manifest.load(artifact)
        with tempfile.TemporaryDirectory(prefix="mfdeploy-web-bench-") as work:
            page = page_latency(artifact, threads, args.runs, Path(work))
        for n, result in zip(threads, page, strict=True):
            assert result["threads"] == n and result["crossOriginIsolated"]
            python = bench.run_worker(artifact, n, args.runs, 3)
            rows.append(
                {
                    "model": manifest.model,
                    "target": manifest.target,
                    "precision": manifest.precision,
                    "io": result["ioNote"],
                    "threads": n,
                    "page_runtime": result["runtime"],
                    "page_median_ms": result["latencyMs"]["median"],
                    "page_load_ms": result["latencyMs"]["loadMs"],
                    "golden": result["golden"]["pass"],
                    "python_median_ms": python["latency_ms"]["median"],
                    "python_executor": python.get("executor"),
                    "download_bytes": result["downloads"],
                }
            )
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    if args.json:
        args.json.write_text("".join(json.dumps(r) + "\n" for r in rows))
    print("| model | precision | page runtime | threads | page median ms | Python median ms "
          "| page / Python | golden | page download MB (runtime + model + page) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        d = r["download_bytes"]
        print(
            f"| {r['model']} | {r['target']} {r['precision']} | {r['page_runtime']} "
            f"| {r['threads']} | {r['page_median_ms']:.1f} | {r['python_median_ms']:.1f} "
            f"| {r['page_median_ms'] / r['python_median_ms']:.2f} "
            f"| {'pass' if r['golden'] else 'FAIL'} "
            f"| {d['total'] / 1e6:.1f} ({d['runtime'] / 1e6:.1f} + {d['bundle'] / 1e6:.1f} "
            f"+ {d['page'] / 1e6:.2f}) |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
