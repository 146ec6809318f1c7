"""A stand-in database: a key/value store speaking one line per request over TCP.

    SET key value   -> OK
    GET key         -> the value, or NIL
    PING            -> PONG
"""

import os
import socketserver
import sys

PORT = int(os.environ.get("DB_PORT", "18432"))
DATA = {"greeting": "hello from db"}


class Handler(socketserver.StreamRequestHandler):
    def handle(self):
        for raw in self.rfile:
            parts = raw.decode("utf-8", "replace").strip().split(" ", 2)
            cmd = parts[0].upper()
            if cmd == "PING":
                reply = "PONG"
            elif cmd == "GET" and len(parts) == 2:
                reply = DATA.get(parts[1], "NIL")
            elif cmd == "SET" and len(parts) == 3:
                DATA[parts[1]] = parts[2]
                reply = "OK"
                print(f"db: set {parts[1]}", flush=True)
            else:
                reply = "ERR unknown command"
            self.wfile.write((reply + "\n").encode())


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def main():
    with Server(("127.0.0.1", PORT), Handler) as server:
        print(f"db: listening on 127.0.0.1:{PORT}", flush=True)
        server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
