#!/usr/bin/python3
"""An HTTP server that checks NTLM as a Windows server would, with an
implementation this project did not write: gss-ntlmssp (Debian's NTLMSSP GSSAPI
mechanism) through python3-gssapi. Users and passwords come from the file named by
NTLM_USER_FILE ("DOMAIN:user:password" lines), gss-ntlmssp's offline user source.

It listens on 127.0.0.1 on a free port, prints the port on its first line, and
answers every request: 401 "WWW-Authenticate: NTLM" without credentials, the NTLM
challenge to a negotiate message, and 200 with "<DOMAIN\\user> <request body>" once
the authenticate message checks out (401 again when it does not). NTLM
authenticates the connection, so the handshake's state lives with the connection.

Used by auth's NTLM tests: python3 ntlm_server.py (stopped by closing its stdin).
"""
import base64
import http.server
import os
import sys
import threading

import gssapi
import gssapi.exceptions

NTLMSSP = gssapi.OID.from_int_seq("1.3.6.1.4.1.311.2.2.10")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    context = None

    def log_message(self, *args):
        pass

    def reply(self, status, body=b"", challenge=None):
        self.send_response(status)
        if status == 401:
            self.send_header("WWW-Authenticate", "NTLM" + (" " + challenge if challenge else ""))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() != "chunked":
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = b""
        while True:
            size = int(self.rfile.readline().split(b";")[0], 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return body
            body += self.rfile.read(size)
            self.rfile.readline()

    def do_POST(self):
        body = self.read_body()
        scheme, _, token = self.headers.get("Authorization", "").partition(" ")
        if scheme.lower() not in ("ntlm", "negotiate") or not token:
            self.context = None
            return self.reply(401)
        raw = base64.b64decode(token)
        if raw[8:9] == b"\x01":  # a negotiate message starts a handshake
            creds = gssapi.Credentials(usage="accept", mechs=[NTLMSSP])
            self.context = gssapi.SecurityContext(creds=creds, usage="accept")
        if self.context is None:
            return self.reply(401)
        try:
            out = self.context.step(raw)
        except gssapi.exceptions.GSSError as err:
            self.context = None
            return self.reply(401, ("refused: %s" % err).encode())
        if not self.context.complete:
            return self.reply(401, challenge=base64.b64encode(out).decode())
        who = str(self.context.initiator_name).rstrip("\x00")
        self.context = None
        self.reply(200, who.encode() + b" " + body)

    do_GET = do_POST


def main():
    if not os.environ.get("NTLM_USER_FILE"):
        sys.exit("NTLM_USER_FILE not set")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sys.stdin.read()  # until the test closes our stdin
    server.shutdown()


if __name__ == "__main__":
    main()
