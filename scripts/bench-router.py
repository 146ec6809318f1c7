#!/usr/bin/env python3
"""Added latency of devenvd's local HTTP router (docs/benchmarks.md).

Starts a throwaway daemon (its own socket, data dir, any free router port) with one
local service (a keep-alive HTTP/1.1 server of Python's standard library answering
`ok`), then times N sequential GETs on one kept-alive connection directly to the
service and N through http://app.bench.localhost:PORT/, alternating in rounds so
both see the same machine load. Prints median and p99 of each and the difference.

    python3 scripts/bench-router.py [N]   # devenv/devenvd from target/debug unless DEVENV_BIN/DEVENVD_BIN
"""
import http.client, json, os, socket, statistics, subprocess, sys, tempfile, time

N = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
devenv = os.environ.get("DEVENV_BIN", os.path.join(root, "target/debug/devenv"))
devenvd = os.environ.get("DEVENVD_BIN", os.path.join(root, "target/debug/devenvd"))

UPSTREAM = """
import socket, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def setup(self):
        super().setup(); self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    def do_GET(self):
        self.send_response(200); self.send_header("Content-Length", "2"); self.end_headers(); self.wfile.write(b"ok")
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def timed(conn, host, n):
    out = []
    for _ in range(n):
        t = time.perf_counter()
        conn.request("GET", "/", headers={"Host": host})
        r = conn.getresponse(); r.read()
        out.append(time.perf_counter() - t)
        assert r.status == 200, r.status
    return out

with tempfile.TemporaryDirectory() as d:
    env = dict(os.environ, HOME=d, DEVENV_SOCKET=f"{d}/s.sock", DEVENV_DATA_DIR=f"{d}/data",
               XDG_RUNTIME_DIR=d, DEVENVD_BIN=devenvd, DEVENV_DASHBOARD_PORT="0", DEVENV_ROUTER_PORT="0")
    port = free_port()
    os.makedirs(f"{d}/p/.devenv")
    open(f"{d}/p/up.py", "w").write(UPSTREAM)
    open(f"{d}/p/.devenv/config.yml", "w").write(
        "apiVersion: devenv/v1\nkind: Environment\nmetadata:\n  name: bench\nspec:\n  services:\n"
        f"    - name: app\n      command: [python3, up.py, \"{port}\"]\n      ports: [{port}]\n"
        f"      readiness: {{ tcp: {{ port: {port} }} }}\n")
    run = lambda *a: subprocess.run([devenv, "-C", f"{d}/p", *a], env=env, check=True, capture_output=True, text=True).stdout
    try:
        run("up")
        url = [s for s in json.loads(run("status", "--json"))["services"] if s["name"] == "app"][0]["url"]
        rport = int(url.rsplit(":", 1)[1].strip("/"))
        direct = http.client.HTTPConnection("127.0.0.1", port)
        routed = http.client.HTTPConnection("127.0.0.1", rport)
        timed(direct, f"127.0.0.1:{port}", 200); timed(routed, f"app.bench.localhost:{rport}", 200)  # warm
        a, b = [], []
        for _ in range(10):
            a += timed(direct, f"127.0.0.1:{port}", N // 10)
            b += timed(routed, f"app.bench.localhost:{rport}", N // 10)
        q = lambda xs, p: sorted(xs)[min(len(xs) - 1, int(len(xs) * p))] * 1e6
        print(f"{N} requests each, one keep-alive connection")
        print(f"direct : median {q(a, .5):7.0f} us  p99 {q(a, .99):7.0f} us")
        print(f"router : median {q(b, .5):7.0f} us  p99 {q(b, .99):7.0f} us")
        print(f"added  : median {q(b, .5) - q(a, .5):7.0f} us  p99 {q(b, .99) - q(a, .99):7.0f} us")
    finally:
        subprocess.run([devenv, "-C", f"{d}/p", "down"], env=env, capture_output=True)
        subprocess.run([devenv, "-C", f"{d}/p", "daemon", "stop"], env=env, capture_output=True)
