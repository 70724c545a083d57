#!/usr/bin/python3
"""A deliberately misbehaving OpenAI-compatible server for `moecap bench` tests.

The behaviour of each /v1/completions or /v1/chat/completions request is chosen by the
first word after "MODE " in the prompt (or the last user message):
  good      SSE stream: 6 chunks "The", " answer", " is", " 4", "2", "." then a usage
            chunk (prompt_tokens = prompt length in bytes, completion_tokens = 6) and [DONE];
            the first chunk after FIRST_MS ms, the rest GAP_MS ms apart
  nousage   like good, without the usage chunk
  nonstream a plain application/json completion (ignores "stream")
  drop      headers and two chunks, then the connection is closed (no [DONE])
  drop0     the connection is closed before any response
  garbage   a 200 event stream whose data lines are not JSON
  slow      one chunk every 0.5 s, for 60 s (the client's --timeout must cut it)
  hang      reads the request, never answers (until the client gives up)
  http500   HTTP 500 with a JSON error body
  error     a 200 stream carrying {"error": {...}}
  chunked   like good, but HTTP/1.1 chunked transfer encoding whose chunks cut the SSE
            text at odd places (mid-line, mid-"data:", between "\r" and "\n")
  flood     an endless stream of content chunks as fast as the socket takes them (never
            [DONE]; the client's --timeout must end it, with bounded memory and log)
  hugeusage like good, but usage claims completion_tokens 9.9e18 and prompt_tokens -5
  badutf8   like good, but the text carries bytes that are not UTF-8 (raw in the JSON)
Listens on 127.0.0.1 only, on an ephemeral port written to the file named by argv[1];
exits on its own after argv[2] seconds (default 120) so no test can leave it behind.
"""
import json, socket, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FIRST_MS = 200
GAP_MS = 100
WORDS = ["The", " answer", " is", " 4", "2", "."]


class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def do_GET(self):
        if self.path.endswith("/models"):
            self.send_json(200, {"object": "list", "data": [{"id": "mock-model", "object": "model"}]})
        else:
            self.send_json(404, {"error": {"message": "not found"}})

    def send_json(self, code, obj):
        b = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(b)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(b)
        self.close_connection = True

    def start_stream(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

    def ev(self, obj):
        data = obj if isinstance(obj, str) else json.dumps(obj)
        self.wfile.write(("data: " + data + "\n\n").encode())
        self.wfile.flush()

    def chunk(self, chat, text):
        if chat:
            return {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}
        return {"object": "text_completion", "choices": [{"index": 0, "text": text, "finish_reason": None}]}

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(n) or b"{}")
        chat = self.path.endswith("/chat/completions")
        prompt = body["messages"][-1]["content"] if chat else body.get("prompt", "")
        mode = prompt.split("MODE ", 1)[1].split()[0] if "MODE " in prompt else "good"
        plen = len(prompt.encode())
        try:
            getattr(self, "mode_" + mode)(chat, plen)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def mode_good(self, chat, plen, usage=True):
        self.start_stream()
        time.sleep(FIRST_MS / 1000)
        for i, w in enumerate(WORDS):
            if i:
                time.sleep(GAP_MS / 1000)
            self.ev(self.chunk(chat, w))
        last = self.chunk(chat, "")
        last["choices"][0]["finish_reason"] = "stop"
        self.ev(last)
        if usage:
            self.ev({"choices": [], "usage": {"prompt_tokens": plen, "completion_tokens": len(WORDS),
                                              "total_tokens": plen + len(WORDS)}})
        self.ev("[DONE]")

    def mode_nousage(self, chat, plen):
        self.mode_good(chat, plen, usage=False)

    def mode_nonstream(self, chat, plen):
        text = "".join(WORDS)
        choice = {"index": 0, "finish_reason": "stop"}
        if chat:
            choice["message"] = {"role": "assistant", "content": text}
        else:
            choice["text"] = text
        self.send_json(200, {"choices": [choice], "usage": {"prompt_tokens": plen, "completion_tokens": 6, "total_tokens": plen + 6}})

    def mode_drop(self, chat, plen):
        self.start_stream()
        self.ev(self.chunk(chat, "The"))
        self.ev(self.chunk(chat, " answer"))
        self.connection.shutdown(socket.SHUT_RDWR)

    def mode_drop0(self, chat, plen):
        self.connection.shutdown(socket.SHUT_RDWR)
        self.close_connection = True

    def mode_garbage(self, chat, plen):
        self.start_stream()
        self.wfile.write(b"data: {not json at all\n\n")
        self.wfile.write(b"\x00\xff\xfe garbage without a field\n")
        self.wfile.write(b"data: [1, 2\n\n")
        self.ev(self.chunk(chat, "x"))
        self.wfile.write(b"data: }}}\n\ndata: " + b"A" * 3000 + b"\n\n")
        self.ev("[DONE]")

    def mode_slow(self, chat, plen):
        self.start_stream()
        for _ in range(120):
            self.ev(self.chunk(chat, "."))
            time.sleep(0.5)

    def mode_hang(self, chat, plen):
        time.sleep(60)

    def mode_http500(self, chat, plen):
        self.send_json(500, {"error": {"message": "internal meltdown", "type": "server_error"}})

    def mode_chunked(self, chat, plen):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        text = ""
        for w in WORDS:
            text += "data: " + json.dumps(self.chunk(chat, w)) + "\r\n\r\n"
        text += "data: " + json.dumps({"choices": [], "usage": {"prompt_tokens": plen, "completion_tokens": 6, "total_tokens": plen + 6}}) + "\n\n"
        text += "data: [DONE]\n\n"
        raw = text.encode()
        cuts, i = [], 0
        for step in (3, 7, 1, 50, 2, 11, 5):       # uneven pieces, repeated
            cuts.append(step)
        k = 0
        while i < len(raw):
            n = cuts[k % len(cuts)]
            k += 1
            piece = raw[i:i + n]
            i += n
            self.wfile.write(b"%x\r\n" % len(piece) + piece + b"\r\n")
            self.wfile.flush()
            time.sleep(0.002)
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def mode_flood(self, chat, plen):
        self.start_stream()
        block = ("data: " + json.dumps(self.chunk(chat, "flood ")) + "\n\n").encode() * 512
        while True:
            self.wfile.write(block)

    def mode_hugeusage(self, chat, plen):
        self.start_stream()
        for w in WORDS:
            self.ev(self.chunk(chat, w))
        self.ev({"choices": [], "usage": {"prompt_tokens": -5, "completion_tokens": 9.9e18, "total_tokens": 9.9e18}})
        self.ev("[DONE]")

    def mode_badutf8(self, chat, plen):
        self.start_stream()
        key = b'"delta": {"content": ' if chat else b'"text": '
        for piece in (b'"ok \xff\xfe end"', b'" half \xe2\x82"', b'" overlong \xc0\xaf"', b'" fine \xe2\x82\xac"'):
            self.wfile.write(b'data: {"choices": [{"index": 0, ' + key + piece + (b"}" if chat else b"") + b"}]}\n\n")
        self.ev("[DONE]")

    def mode_error(self, chat, plen):
        self.start_stream()
        self.ev({"error": {"message": "model overloaded", "code": 503}})
        self.ev("[DONE]")


def main():
    ThreadingHTTPServer.request_queue_size = 128   # the default 5 drops concurrent SYNs
    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    srv.daemon_threads = True
    with open(sys.argv[1] + ".tmp", "w") as f:
        f.write(str(srv.server_address[1]))
    import os
    os.rename(sys.argv[1] + ".tmp", sys.argv[1])
    life = float(sys.argv[2]) if len(sys.argv) > 2 else 120
    threading.Timer(life, lambda: os._exit(0)).start()
    srv.serve_forever()


if __name__ == "__main__":
    main()
