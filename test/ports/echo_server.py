"""A test server run inside a sandbox (Python standard library only).

GET /cookie    -> sets a cookie (app=1)
GET /headers   -> the request's method, path and headers as JSON
GET /stream?gate=PATH -> "first" flushed as a chunk, then, once PATH exists, "last"
GET /ws        -> a WebSocket that echoes every text or binary message
anything else  -> 200 "hello from the sandbox"
Usage: python3 echo_server.py PORT
"""
import base64
import hashlib
import json
import os
import struct
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send_body(self, status, body, ctype="text/plain"):
        data = body.encode()
        self.send_response(status)
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        n = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(n)
        self.send_body(200, hashlib.sha256(body).hexdigest())

    def do_GET(self):
        if self.path.startswith("/ws") and self.headers.get("upgrade", "").lower() == "websocket":
            return self.websocket()
        if self.path.startswith("/cookie"):
            data = b"cookie set"
            self.send_response(200)
            self.send_header("set-cookie", "app=1; Path=/")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        if self.path.startswith("/headers"):
            info = {"method": self.command, "path": self.path, "headers": [[k, v] for k, v in self.headers.items()]}
            return self.send_body(200, json.dumps(info), "application/json")
        if self.path.startswith("/stream"):
            gate = self.path.split("gate=")[1]
            self.send_response(200)
            self.send_header("content-type", "text/plain")
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            self.chunk(b"first\n")
            deadline = time.time() + 120
            while not os.path.exists(gate) and time.time() < deadline:
                time.sleep(0.02)
            self.chunk(b"last\n")
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
            return
        self.send_body(200, "hello from the sandbox")

    def chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def websocket(self):
        key = self.headers.get("sec-websocket-key", "")
        accept = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
        self.send_response(101)
        self.send_header("upgrade", "websocket")
        self.send_header("connection", "Upgrade")
        self.send_header("sec-websocket-accept", accept)
        self.end_headers()
        self.wfile.flush()
        r, w = self.rfile, self.wfile
        while True:
            head = r.read(2)
            if len(head) < 2:
                return
            opcode = head[0] & 0x0F
            masked = head[1] & 0x80
            n = head[1] & 0x7F
            if n == 126:
                n = struct.unpack(">H", r.read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", r.read(8))[0]
            mask = r.read(4) if masked else b"\0\0\0\0"
            data = bytes(b ^ mask[i % 4] for i, b in enumerate(r.read(n)))
            if opcode == 8:
                w.write(b"\x88\x00")
                w.flush()
                return
            if opcode in (1, 2):
                if len(data) < 126:
                    w.write(bytes([0x80 | opcode, len(data)]) + data)
                else:
                    w.write(bytes([0x80 | opcode, 126]) + struct.pack(">H", len(data)) + data)
                w.flush()


if __name__ == "__main__":
    port = int(sys.argv[1])
    ThreadingHTTPServer(("0.0.0.0", port), Handler).serve_forever()
