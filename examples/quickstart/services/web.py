"""The web front end: one static page that fetches the greeting from api."""

import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT = int(os.environ.get("WEB_PORT", "18080"))
API_PORT = int(os.environ.get("API_PORT", "18001"))

PAGE = """<!doctype html>
<html>
<head><title>devenv quickstart</title></head>
<body>
<h1>devenv quickstart</h1>
<p id="greeting">loading...</p>
<script>
fetch("http://127.0.0.1:%d/greeting")
  .then(r => r.json())
  .then(j => document.getElementById("greeting").textContent = j.greeting)
  .catch(e => document.getElementById("greeting").textContent = "api unreachable: " + e);
</script>
</body>
</html>
"""


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path not in ("/", "/index.html"):
            self.send_error(404)
            return
        body = (PAGE % API_PORT).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_request(self, code="-", size="-"):
        # Requests go to stderr, so logs show both streams.
        print(f"web: {self.command} {self.path} -> {int(code)}", file=sys.stderr, flush=True)


def main():
    server = ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
    print(f"web: serving http://127.0.0.1:{PORT}/ (api on {API_PORT})", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
