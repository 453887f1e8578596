"""`edgeclf serve-web`: the web page, onnxruntime-web's files and the artifacts, on one local HTTP server."""

from __future__ import annotations

import functools
import http.server
import json
import posixpath
import sys
import urllib.parse
from pathlib import Path

from edgeclf.report.plots import COLORS  # the one palette (plots and page); plots imports matplotlib lazily
from edgeclf.runtime.errors import InputError

ORT_DIST = Path("node_modules") / "onnxruntime-web" / "dist"
ORT_WEB_VERSION = "1.30.0"  # web/package.json's pin (a test holds them equal)
ORT_CDN = f"https://cdn.jsdelivr.net/npm/onnxruntime-web@{ORT_WEB_VERSION}/dist/"
PAGE = Path(__file__).parent.parent / "web"  # the page installed with the package (edgeclf/web/)


class Handler(http.server.SimpleHTTPRequestHandler):
    """Routes /artifacts/ and /ort/ to their folders, the rest to web/; never lists or leaves a folder.

    Two answers are generated on request: /artifacts/index.json (the sorted names of the artifact folder's
    sub-folders that hold a manifest.json: the page's task picker) and /palette.json (report.plots.COLORS).
    """

    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map,
                      ".mjs": "text/javascript", ".js": "text/javascript", ".wasm": "application/wasm",
                      ".onnx": "application/octet-stream", ".json": "application/json"}

    def __init__(self, *args: object, routes: dict[str, Path], **kwargs: object) -> None:
        self.routes = routes
        super().__init__(*args, directory=str(routes["/"]), **kwargs)  # type: ignore[arg-type]

    def generated(self) -> bytes | None:
        """The two JSON answers made on request: the task list and the palette (None: an ordinary file)."""
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
        if path == "/artifacts/index.json":
            root = self.routes["/artifacts/"]
            tasks = sorted(d.name for d in root.iterdir() if d.is_dir() and (d / "manifest.json").is_file())
            return json.dumps(tasks).encode()
        if path == "/palette.json":
            return json.dumps(list(COLORS)).encode()
        return None

    def send_generated(self, body: bytes, head_only: bool) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if not head_only:
            self.wfile.write(body)

    def do_GET(self) -> None:
        self._answer(head_only=False)

    def do_HEAD(self) -> None:
        self._answer(head_only=True)

    def _answer(self, head_only: bool) -> None:
        body = self.generated()
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
        if path.startswith("/ort/") and "/ort/" not in self.routes:  # no local copy: the pinned CDN's
            self.send_response(302)
            self.send_header("Location", ORT_CDN + posixpath.normpath(path[len("/ort/"):]).lstrip("./"))
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif body is not None:
            self.send_generated(body, head_only)
        elif head_only:
            super().do_HEAD()
        else:
            super().do_GET()

    def translate_path(self, path: str) -> str:
        path = urllib.parse.unquote(urllib.parse.urlsplit(path).path)
        for prefix in ("/artifacts/", "/ort/", "/"):
            if path.startswith(prefix) and prefix in self.routes:
                root = self.routes[prefix]
                rel = posixpath.normpath(path[len(prefix):]).lstrip("/")
                if rel == ".." or rel.startswith("../"):  # normpath leaves only leading ../: the path leaves root
                    return str(root / "__outside__")  # a 404, whatever ../ tricks the path holds
                # not resolved: a link inside root is served where it points (an editable install links the
                # page's files to the checkout), but no name in the request climbs out of root
                return str(root / rel) if rel not in ("", ".") else str(root)
        return str(self.routes["/"] / "__none__")

    def list_directory(self, path: str | Path) -> None:  # type: ignore[override]
        self.send_error(404, "No listing")
        return None

    def log_message(self, format: str, *args: object) -> None:  # quiet: tests and demos read their own output
        pass


class Server(http.server.ThreadingHTTPServer):
    ort: Path | None = None  # the local onnxruntime-web served under /ort/ (None: redirects to ORT_CDN)

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that leaves mid-response (a closed tab, a reload) is routine, not a traceback on stderr."""
        if isinstance(sys.exc_info()[1], ConnectionError):  # BrokenPipeError, ConnectionResetError, ...Aborted
            return
        super().handle_error(request, client_address)  # type: ignore[arg-type]


def make_server(web: Path | None, artifacts: Path, host: str = "127.0.0.1", port: int = 8000,
                ort: Path | None = None) -> Server:
    """web: the page's folder (None: the one installed with edgeclf). ort: onnxruntime-web's dist/ folder (None:
    the page folder's node_modules, as `npm ci --prefix web` leaves it; where there is none, as after a plain
    `pip install edgeclf`, the server answers /ort/ with redirects to the pinned version on ORT_CDN)."""
    web, artifacts = Path(web) if web is not None else PAGE, Path(artifacts)
    if not (web / "index.html").is_file():
        raise InputError(f"no index.html in {web}: pass --web, the folder holding edgeclf's web page")
    dist = Path(ort) if ort is not None else ort_dist(web)
    if dist is not None and not (dist / "ort.wasm.min.js").is_file():
        raise InputError(f"no ort.wasm.min.js in {dist}: pass --ort, onnxruntime-web's dist/ folder")
    if not artifacts.is_dir():
        raise InputError(f"artifacts folder {artifacts} does not exist: pass --artifacts, the folder holding the "
                         f"exported models (one sub-folder each)")
    routes = {"/": web, "/artifacts/": artifacts, **({"/ort/": dist} if dist is not None else {})}
    server = Server((host, port), functools.partial(Handler, routes=routes))
    server.ort = dist
    return server


def ort_dist(web: Path) -> Path | None:
    """onnxruntime-web's dist/ beside the page: in the page's folder, or (an editable install links the page's
    files into the package) beside the file the page's index.html links to."""
    for root in (web, (web / "index.html").resolve().parent):
        if (root / ORT_DIST / "ort.wasm.min.js").is_file():
            return root / ORT_DIST
    return None
