"""The API: JSON over HTTP, backed by db.

    GET /healthz        -> 200 once db answers PING
    GET /greeting       -> {"greeting": ...} read from db
    GET /               -> a short description
"""

import json
import os
import socket
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT = int(os.environ.get("API_PORT", "18001"))
DB_PORT = int(os.environ.get("DB_PORT", "18432"))


def db(command):
    with socket.create_connection(("127.0.0.1", DB_PORT), timeout=2) as conn:
        conn.sendall((command + "\n").encode())
        return conn.makefile().readline().strip()


class Handler(BaseHTTPRequestHandler):
    def reply(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Access-Control-Allow-Origin", "*")
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        try:
            if self.path == "/healthz":
                ok = db("PING") == "PONG"
                self.reply(200 if ok else 503, {"db": "ok" if ok else "down"})
            elif self.path == "/greeting":
                self.reply(200, {"greeting": db("GET greeting")})
            elif self.path == "/":
                self.reply(200, {"service": "api", "endpoints": ["/healthz", "/greeting"]})
            else:
                self.reply(404, {"error": "not found"})
        except OSError as err:
            self.reply(503, {"error": f"db unreachable: {err}"})

    def log_request(self, code="-", size="-"):
        # One line per request on stdout, so `devenv logs api` shows traffic; with a
        # level (`devenv logs --level warn` shows the failed requests only).
        code = int(code)
        level = "ERROR" if code >= 500 else "WARN" if code >= 400 else "INFO"
        print(f"{level} api: {self.command} {self.path} -> {code}", flush=True)


def main():
    server = ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
    print(f"api: listening on 127.0.0.1:{PORT} (db on {DB_PORT})", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
