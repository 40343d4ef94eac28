#!/usr/bin/env python3
"""Serve the web demo as static files on 127.0.0.1 (standard library only).

    python3 web_demo/serve.py            # http://127.0.0.1:8000/
    python3 web_demo/serve.py --port 0   # any free port; the first stdout line is the URL

The page is cross-origin isolated by default (COOP same-origin + COEP require-corp), which
WASM threads need (SharedArrayBuffer); --no-isolation serves without those headers, as a
plain static host would (the page then runs 1 thread). No caching, so a re-bundle shows up
on reload. This server is for local use: it binds the loopback address only.
"""

from __future__ import annotations

import argparse
import functools
import sys
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).resolve().parent
TYPES = {".js": "text/javascript", ".mjs": "text/javascript", ".wasm": "application/wasm",
         ".json": "application/json", ".tflite": "application/octet-stream",
         ".onnx": "application/octet-stream"}  # fmt: skip


class Handler(SimpleHTTPRequestHandler):
    """Static files with explicit MIME types, no-store, and optionally COOP / COEP."""

    isolation = True
    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, **TYPES}

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")
        if self.isolation:
            self.send_header("Cross-Origin-Opener-Policy", "same-origin")
            self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        super().end_headers()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (base signature)
        if not self.server.quiet:  # type: ignore[attr-defined]
            super().log_message(format, *args)


def make_server(root: Path, port: int, isolation: bool = True, quiet: bool = False):
    """A threading HTTP server for `root` on 127.0.0.1:port (0: any free port)."""
    handler = type("DemoHandler", (Handler,), {"isolation": isolation})
    server = ThreadingHTTPServer(("127.0.0.1", port), functools.partial(handler, directory=root))
    server.quiet = quiet  # type: ignore[attr-defined]
    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000; 0: any)")
    parser.add_argument("--root", type=Path, default=HERE, help="directory (default: web_demo/)")
    parser.add_argument("--no-isolation", action="store_true", help="no COOP / COEP headers")
    parser.add_argument("--quiet", action="store_true", help="no request log")
    args = parser.parse_args(argv)
    if not (args.root / "index.html").is_file():
        print(f"serve.py: {args.root} has no index.html", file=sys.stderr)
        return 2
    if not (args.root / "node_modules").is_dir():
        print(f"serve.py: warning: no node_modules in {args.root} (npm ci)", file=sys.stderr)
    server = make_server(args.root, args.port, not args.no_isolation, args.quiet)
    print(f"http://127.0.0.1:{server.server_address[1]}/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
