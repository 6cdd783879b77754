"""The status page in headless Chromium (run by hack/page-check.sh).

Against a real agent and etcd: apply a component, open the page, then scale
it and apply a new template while the page stays open, and assert on the
DOM that the component's replica count, progress bar and revision change
through server-sent events, with no reload and no console error. Saves
screenshots at a wall-screen and a phone size.

    check.py URL IMAGE SHOTS_DIR      (BERTH, BERTH_ETCD, BERTH_ROOT in env)
"""

import json
import os
import subprocess
import sys
import tempfile
import time

from cdp import Browser, Page

PROJECT = "pagecheck"


def manifest(image, replicas, greeting):
    return f"""apiVersion: berth/v1
kind: Project
metadata: {{name: {PROJECT}}}
---
apiVersion: berth/v1
kind: Component
metadata: {{name: web, project: {PROJECT}}}
spec:
  image: {image}
  command: ["/bin/httpd", "-f", "-p", "8080", "-h", "/www"]
  env: {{GREETING: {greeting}}}
  placement: {{replicas: {replicas}}}
  ports: [{{name: http, container: 8080}}]
  readyChecks: [{{http: {{port: 8080, path: /}}, interval: 1s}}]
  # busybox httpd as PID 1 ignores SIGTERM: stop it at once.
  termination: {{signals: [SIGKILL], gracePeriod: 1s}}
"""


def apply(text):
    berth = os.environ["BERTH"]
    r = subprocess.run([berth, "apply", "-f", "-"], input=text.encode(), capture_output=True)
    if r.returncode != 0:
        sys.exit("page-check: berth apply failed: " + r.stderr.decode().strip())


# What the test reads from the page: the component's row and its chips.
STATE_JS = """JSON.stringify((() => {
  const row = [...document.querySelectorAll('#components .comp')]
    .find((c) => c.firstChild && c.firstChild.textContent === '%s/web');
  const chips = [...document.querySelectorAll('#containers .chip')]
    .map((c) => c.textContent).filter((t) => t.startsWith('%s/web '));
  return {
    row: !!row,
    ready: row ? row.children[1].textContent : null,
    bar: row ? row.children[2].firstChild.style.width : null,
    phase: row ? row.children[3].textContent : null,
    chips: chips.sort(),
    live: (document.getElementById('live') || {}).textContent || null,
    nodes: document.querySelectorAll('#nodes tbody tr').length,
    events: document.querySelectorAll('#events li').length,
    marker: window.__pageCheck === 1,
  };
})())""" % (PROJECT, PROJECT)


def state(page):
    return json.loads(page.eval(STATE_JS))


def wait_until(page, what, pred, secs, seen):
    """Polls the DOM until `pred(state)`, recording every distinct state."""
    deadline = time.monotonic() + secs
    while True:
        s = state(page)
        key = (s["ready"], s["bar"], s["phase"], tuple(s["chips"]))
        if not seen or seen[-1] != key:
            seen.append(key)
        if pred(s):
            return s
        if time.monotonic() > deadline:
            sys.exit(f"page-check: timed out waiting for {what}; the page shows {s}")
        time.sleep(0.1)


def fail_on(problems, when):
    if problems:
        sys.exit(f"page-check: {when}: " + "; ".join(problems))


def navigate(page, url):
    """Opens `url` and waits for its document: navigation is asynchronous."""
    page.call("Page.navigate", {"url": url})
    deadline = time.monotonic() + 30
    while page.eval("location.href + ' ' + document.readyState") != url + " complete":
        if time.monotonic() > deadline:
            sys.exit(f"page-check: {url} did not load")
        time.sleep(0.1)


def check_sign_in(page):
    """On an agent with --api-tokens only, the page asks for a token; a read
    token entered at the prompt brings the board, live."""
    url, token = os.environ.get("AUTH_URL"), os.environ.get("READ_TOKEN")
    if not url or not token:
        sys.exit("page-check: AUTH_URL and READ_TOKEN are not set")
    page.eval("localStorage.clear()")
    navigate(page, url)
    shown = """(() => ({
      login: !document.getElementById('login').hidden,
      board: !document.getElementById('board').hidden,
      live: (document.getElementById('live') || {}).textContent || null,
      nodes: document.querySelectorAll('#nodes tbody tr').length,
    }))()"""
    deadline = time.monotonic() + 30
    while True:
        s = json.loads(page.eval("JSON.stringify(%s)" % shown))
        if s["login"] and not s["board"]:
            break
        if time.monotonic() > deadline:
            sys.exit(f"page-check: no token prompt on an agent with auth: {s}")
        time.sleep(0.1)
    page.eval(
        "document.getElementById('token').value = %s; document.getElementById('login').requestSubmit()"
        % json.dumps(token)
    )
    deadline = time.monotonic() + 30
    while True:
        s = json.loads(page.eval("JSON.stringify(%s)" % shown))
        if s["board"] and not s["login"] and s["live"] == "live" and s["nodes"] >= 1:
            # The first fetch without a token is answered 401 on purpose
            # (that is what shows the prompt); anything else is a problem.
            fail_on([p for p in page.problems() if "status of 401" not in p], "signing in")
            return
        if time.monotonic() > deadline:
            sys.exit(f"page-check: the board did not come after signing in: {s}")
        time.sleep(0.1)


def main():
    url, image, shots = sys.argv[1], sys.argv[2], sys.argv[3]
    chromium = os.environ.get("CHROMIUM", "chromium")
    apply(manifest(image, 1, "one"))
    with tempfile.TemporaryDirectory() as profile, Browser(chromium, profile) as browser:
        page = Page(browser)
        page.viewport(1920, 1080)
        navigate(page, url)
        seen = []
        # The nodes table follows its own watch: it may fill after the
        # component's row, so it is waited for too, not asserted at once.
        s = wait_until(
            page,
            "one ready replica of revision 1, the node listed, live",
            lambda s: s["ready"] == "1/1 ready"
            and s["phase"] == "Complete r1"
            and len(s["chips"]) == 1
            and s["nodes"] >= 1
            and s["live"] == "live",
            120,
            seen,
        )
        fail_on(page.problems(), "loading the page")
        # Set on this document only: a reload would lose it.
        page.eval("window.__pageCheck = 1")

        # Scale to 3 and change the template (a new revision) while open.
        before = seen[-1]
        events_before = s["events"]
        during = [before]
        apply(manifest(image, 3, "three"))
        s = wait_until(
            page,
            "three ready replicas of revision 2",
            lambda s: s["ready"] == "3/3 ready"
            and s["phase"] == "Complete r2"
            and s["bar"] == "100%"
            and len(s["chips"]) == 3
            and all(" r2 ready" in c for c in s["chips"]),
            180,
            during,
        )
        seen += during[1:]
        if not s["marker"]:
            sys.exit("page-check: the page was reloaded (the marker is gone)")
        # The rollout's progress showed on the way: some state between the
        # one before and the last (fewer ready, a partial bar, Progressing).
        middle = [d for d in during[1:-1] if d != before]
        if not middle:
            sys.exit(f"page-check: no intermediate rollout state was shown: {seen}")
        fail_on(page.problems(), "during the rollout")
        # The rollout's events (started, ready, rollout steps) arrived through
        # the events watch: the list grew without a reload.
        if s["events"] <= events_before:
            sys.exit(f"page-check: the events list did not grow ({events_before} -> {s['events']})")

        os.makedirs(shots, exist_ok=True)
        page.screenshot(os.path.join(shots, "status-page.png"))
        page.viewport(390, 844, scale=2, mobile=True)
        # Two animation frames: the layout at the new size is painted.
        page.eval("new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))")
        page.screenshot(os.path.join(shots, "status-page-phone.png"))
        fail_on(page.problems(), "after the screenshots")
        check_sign_in(page)
    print(f"page-check: ok; {len(seen)} distinct states shown without a reload:")
    for ready, bar, phase, chips in seen:
        print(f"  {ready} | bar {bar} | {phase} | {', '.join(chips)}")


if __name__ == "__main__":
    main()
