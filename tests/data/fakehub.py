"""A loopback HTTP server that serves files like the Hugging Face Hub and like S3/plain HTTP, with faults.

Hub routes (docs/explanation/hub-and-datasets.md): `/api/datasets/{repo}[/revision/{rev}]`, `/api/datasets/{repo}/tree/{rev}[/{dir}]`,
HEAD/GET `/datasets/{repo}/resolve/{rev}/{path}` with X-Repo-Commit, ETag (git-blob sha1), Content-Length and
Range; 404s carry X-Error-Code. Any other path is looked up in `files` (plain HTTP, Range supported).
Faults are queued as (regex on "METHOD /path", kind, times, params): status (code, retry_after), reset (RST after
`after` bytes), truncate (FIN after `after` bytes), slow (delay before headers), ignore_range, corrupt,
flip (one byte at offset `after`).
Run as a script (`python fakehub.py SPEC.json`) it serves a JSON spec; see hubrun.py.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import struct
import sys
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit, parse_qs


@dataclass
class Fault:
    pattern: str
    kind: str
    times: int = 1
    status: int = 503
    after: int = 0
    delay: float = 0.0
    retry_after: str | None = None


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class FakeHub:
    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.repos: dict[str, dict[str, bytes]] = {}
        self.faults: list[Fault] = []
        self.log: list[str] = []
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None

    # -------------------------------------------------------------- setup
    def add_fault(self, pattern: str, kind: str, **kw) -> None:
        self.faults.append(Fault(pattern, kind, **kw))

    def sha(self, repo: str) -> str:
        h = hashlib.sha1()
        for path in sorted(self.repos[repo]):
            h.update(path.encode() + b"\0" + self.repos[repo][path])
        return h.hexdigest()

    def take_fault(self, line: str) -> Fault | None:
        with self.lock:
            for f in self.faults:
                if f.times and re.search(f.pattern, line):
                    f.times -= 1
                    return f
        return None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> "FakeHub":
        hub = self

        class Handler(_Handler):
            pass
        Handler.hub = hub
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def requests(self, pattern: str) -> list[str]:
        return [line for line in self.log if re.search(pattern, line)]


class _Handler(BaseHTTPRequestHandler):
    hub: FakeHub
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # keep test output quiet
        pass

    def do_HEAD(self):
        self._dispatch()

    def do_GET(self):
        self._dispatch()

    # -------------------------------------------------------------- routing
    def _dispatch(self):
        hub = self.hub
        url = urlsplit(self.path)
        path = url.path
        line = f"{self.command} {path}"
        with hub.lock:
            hub.log.append(line + (f" Range={self.headers['Range']}" if self.headers.get("Range") else ""))
        fault = hub.take_fault(line)
        if fault and fault.kind == "slow":
            threading.Event().wait(fault.delay)
        if fault and fault.kind == "status":
            hdrs = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            return self._send(fault.status, b"fault", hdrs)
        if fault and fault.kind == "drop":
            return self._rst()
        m = re.fullmatch(r"/api/datasets/([^/]+/[^/]+)(?:/revision/([^/]+))?", path)
        if m:
            return self._repo_info(unquote(m.group(1)))
        m = re.fullmatch(r"/api/datasets/([^/]+/[^/]+)/tree/([^/]+)(?:/(.*))?", path)
        if m:
            q = parse_qs(url.query)
            return self._tree(m.group(1), unquote(m.group(3) or ""), q.get("recursive", ["false"])[0] == "true")
        m = re.fullmatch(r"/datasets/([^/]+/[^/]+)/resolve/([^/]+)/(.*)", path)
        if m:
            return self._resolve(m.group(1), unquote(m.group(3)), fault)
        body = hub.files.get(path)
        if body is None:
            return self._send(404, b"not found")
        return self._body(body, {"ETag": f'"{hashlib.md5(body).hexdigest()}"'}, fault)

    def _repo_info(self, repo):
        if repo not in self.hub.repos:
            return self._send(404, b'{"error":"Repository not found"}', {"X-Error-Code": "RepoNotFound"})
        sha = self.hub.sha(repo)
        body = json.dumps({"id": repo, "sha": sha, "private": False,
                           "siblings": [{"rfilename": p} for p in sorted(self.hub.repos[repo])]}).encode()
        self._send(200, body, {"Content-Type": "application/json"})

    def _tree(self, repo, sub, recursive):
        files = self.hub.repos.get(repo)
        if files is None:
            return self._send(404, b"{}", {"X-Error-Code": "RepoNotFound"})
        prefix = sub.strip("/") + "/" if sub.strip("/") else ""
        out, dirs = [], set()
        for p in sorted(files):
            if not p.startswith(prefix):
                continue
            rest = p[len(prefix):]
            if "/" in rest and not recursive:
                dirs.add(prefix + rest.split("/")[0])
                continue
            if recursive:
                parts = rest.split("/")[:-1]
                for i in range(len(parts)):
                    dirs.add(prefix + "/".join(parts[:i + 1]))
            out.append({"type": "file", "path": p, "size": len(files[p]), "oid": git_blob_sha1(files[p])})
        if not out and not dirs and prefix:
            return self._send(404, b"{}", {"X-Error-Code": "EntryNotFound"})
        out += [{"type": "directory", "path": d, "oid": "0" * 40} for d in sorted(dirs)]
        self._send(200, json.dumps(out).encode(), {"Content-Type": "application/json"})

    def _resolve(self, repo, fpath, fault):
        files = self.hub.repos.get(repo)
        if files is None:
            return self._send(404, b"", {"X-Error-Code": "RepoNotFound"})
        sha = self.hub.sha(repo)
        data = files.get(fpath)
        if data is None:
            return self._send(404, b"", {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": sha})
        hdrs = {"X-Repo-Commit": sha, "ETag": f'"{git_blob_sha1(data)}"'}
        self._body(data, hdrs, fault)

    # -------------------------------------------------------------- bodies and faults
    def _body(self, data: bytes, hdrs: dict, fault):
        hdrs = dict(hdrs, **{"Accept-Ranges": "bytes"})
        rng = self.headers.get("Range")
        m = re.fullmatch(r"bytes=(\d+)-", rng or "")
        if m and not (fault and fault.kind == "ignore_range"):
            start = int(m.group(1))
            if start >= len(data):
                return self._send(416, b"", {"Content-Range": f"bytes */{len(data)}"})
            hdrs["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
            return self._send(206, data[start:], hdrs, fault)
        self._send(200, data, hdrs, fault)

    def _send(self, status: int, body: bytes, hdrs: dict | None = None, fault: Fault | None = None):
        self.send_response(status)
        for k, v in (hdrs or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command == "HEAD":
            return
        if fault and fault.kind == "corrupt":
            body = bytes(b ^ 0xFF for b in body[:16]) + body[16:]
        if fault and fault.kind == "flip":  # one byte changed, length kept: only a hash notices
            body = body[:fault.after] + bytes([body[fault.after] ^ 0x01]) + body[fault.after + 1:]
        if fault and fault.kind in ("reset", "truncate"):
            self.wfile.write(body[:fault.after])
            self.wfile.flush()
            if fault.kind == "reset":
                self._rst()
            else:
                self.connection.shutdown(socket.SHUT_WR)
                self.close_connection = True
            return
        self.wfile.write(body)

    def _rst(self):
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()


def hub_from_spec(spec: dict) -> FakeHub:
    """Spec: {"files": {path: hexbytes-file-path}, "repos": {repo: {path: file-path}}, "faults": [{...}]}."""
    hub = FakeHub()
    for url_path, src in spec.get("files", {}).items():
        hub.files[url_path] = open(src, "rb").read()
    for repo, files in spec.get("repos", {}).items():
        hub.repos[repo] = {p: open(src, "rb").read() for p, src in files.items()}
    for f in spec.get("faults", []):
        hub.add_fault(**f)
    return hub


if __name__ == "__main__":  # pragma: no cover - used by hubrun in a network namespace
    h = hub_from_spec(json.load(open(sys.argv[1]))).start()
    print(h.url, flush=True)
    threading.Event().wait()
