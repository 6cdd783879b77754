"""A minimal Chrome DevTools Protocol client over --remote-debugging-pipe.

Chromium reads commands on fd 3 and writes answers and events on fd 4, each
message one JSON object followed by a NUL byte. Python's standard library is
all it needs (no websocket, no driver package).
"""

import fcntl
import json
import os
import queue
import subprocess
import threading
import time


class CdpError(Exception):
    pass


class Browser:
    """A headless Chromium child; `close()` (or the context manager) ends it."""

    def __init__(self, chromium, profile_dir):
        # to_chrome: we write, Chromium reads on fd 3; from_chrome: the reverse.
        to_r, to_w = os.pipe()
        from_r, from_w = os.pipe()
        # Moved above 10 first, so placing them at 3 and 4 in the child
        # cannot overwrite one with the other.
        child_r = fcntl.fcntl(to_r, fcntl.F_DUPFD_CLOEXEC, 10)
        child_w = fcntl.fcntl(from_w, fcntl.F_DUPFD_CLOEXEC, 10)
        for fd in (to_r, from_w):
            os.close(fd)

        def fds():
            # dup2 clears close-on-exec: only 3 and 4 reach Chromium.
            os.dup2(child_r, 3)
            os.dup2(child_w, 4)

        args = [
            chromium,
            "--headless=new",
            "--remote-debugging-pipe",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-gpu",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            "--user-data-dir=" + profile_dir,
            "about:blank",
        ]
        # Chromium refuses to run as root with its sandbox on.
        if os.geteuid() == 0:
            args.insert(1, "--no-sandbox")
        self.proc = subprocess.Popen(
            args,
            preexec_fn=fds,
            close_fds=False,
            stdout=subprocess.DEVNULL,
            stderr=open(os.path.join(profile_dir, "chromium.log"), "wb"),
        )
        os.close(child_r)
        os.close(child_w)
        self._out = os.fdopen(to_w, "wb", buffering=0)
        self._in = os.fdopen(from_r, "rb", buffering=0)
        self._next = 0
        self._answers = {}
        self._cond = threading.Condition()
        self.events = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        buf = b""
        while True:
            chunk = self._in.read(65536)
            if not chunk:
                with self._cond:
                    self._answers[None] = "closed"
                    self._cond.notify_all()
                return
            buf += chunk
            while b"\0" in buf:
                raw, buf = buf.split(b"\0", 1)
                msg = json.loads(raw)
                if "id" in msg:
                    with self._cond:
                        self._answers[msg["id"]] = msg
                        self._cond.notify_all()
                else:
                    self.events.put(msg)

    def call(self, method, params=None, session=None, timeout=30):
        self._next += 1
        msg = {"id": self._next, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        self._out.write(json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._next not in self._answers:
                if None in self._answers:
                    raise CdpError(f"{method}: Chromium closed the pipe")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise CdpError(f"{method}: no answer in {timeout} s")
                self._cond.wait(left)
            answer = self._answers.pop(self._next)
        if "error" in answer:
            raise CdpError(f"{method}: {answer['error'].get('message')}")
        return answer.get("result", {})

    def close(self):
        try:
            self.call("Browser.close", timeout=5)
        except CdpError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Page:
    """One tab, attached in flat mode (commands carry its session id)."""

    def __init__(self, browser):
        self.b = browser
        target = browser.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = browser.call(
            "Target.attachToTarget", {"targetId": target, "flatten": True}
        )["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.call(domain + ".enable")

    def call(self, method, params=None, timeout=30):
        return self.b.call(method, params, session=self.session, timeout=timeout)

    def eval(self, expression):
        """The value of a JavaScript expression (JSON-serialisable)."""
        r = self.call(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
        )
        if "exceptionDetails" in r:
            raise CdpError(f"evaluate {expression!r}: {r['exceptionDetails'].get('text')}")
        return r["result"].get("value")

    def problems(self):
        """Console errors, uncaught exceptions and error log entries so far."""
        found = []
        while True:
            try:
                ev = self.b.events.get_nowait()
            except queue.Empty:
                return found
            if ev.get("sessionId") != self.session:
                continue
            m, p = ev.get("method"), ev.get("params", {})
            if m == "Runtime.exceptionThrown":
                d = p.get("exceptionDetails", {})
                found.append("exception: " + (d.get("exception", {}).get("description") or d.get("text", "")))
            elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                found.append("console." + p["type"] + ": " + " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", [])))
            elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                e = p["entry"]
                found.append(f"log ({e.get('source')}): {e.get('text')} {e.get('url', '')}".strip())

    def viewport(self, width, height, scale=1, mobile=False):
        self.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": scale, "mobile": mobile},
        )

    def screenshot(self, path):
        import base64

        data = self.call("Page.captureScreenshot", {"format": "png"})["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))
