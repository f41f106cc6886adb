#!/usr/bin/env python3
"""The dashboard (GET /ui) in a real headless Chromium, driven by Selenium through chromedriver.

Starts three shardd nodes on loopback (real TLS, ports from the kernel), signs in with the
token, checks each view's figures against the REST API's, starts a migration from the page and
waits for its bar to reach done, applies a rebalance plan from the page, measures the render
of a 20-node, 1,000-shard cluster, and saves a screenshot of each view.

    SHARDD_BIN=build/src/node/shardd test/browser/test_dashboard.py [ARTIFACT_DIR]

Exit 77 (a skip for meson) when Chromium, chromedriver or Selenium is not installed.
"""
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request

try:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select
except ImportError:
    print("SKIP: python3-selenium is not installed (scripts/setup.sh installs it)")
    sys.exit(77)

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
    print("SKIP: chromium or chromium-driver is not installed (scripts/setup.sh installs them)")
    sys.exit(77)

ROOT = os.environ.get("SHARDD_SOURCE_ROOT") or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("SHARDD_BIN") or os.path.join(ROOT, "build", "src", "node", "shardd")
ARTIFACTS = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.getcwd(), "dashboard-artifacts")
failures = []
STARTED = time.time()


def step(name):
    print("[%6.1f s] %s" % (time.time() - STARTED, name), flush=True)


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAILED:", what, flush=True)
    return cond


def require(cond, what):
    if not cond:
        raise AssertionError(what)


_given = set()


def free_port():
    # The kernel's choice, never the same one twice in this run.
    while True:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        if port not in _given:
            _given.add(port)
            return port


class Cluster:
    def __init__(self, n):
        self.dir = tempfile.mkdtemp(prefix="shardd-ui-")
        self.token = os.urandom(24).hex()
        ids = ["node-%d" % i for i in range(1, n + 1)]
        subprocess.run([os.path.join(ROOT, "scripts", "dev-certs.sh"), os.path.join(self.dir, "certs")] + ids, check=True,
                       stdout=subprocess.DEVNULL)
        self.ca = os.path.join(self.dir, "certs", "ca.pem")
        self.ctx = ssl.create_default_context(cafile=self.ca)
        self.procs = []
        self.ports = []
        for i, node in enumerate(ids):
            rest, peer = free_port(), free_port()
            self.ports.append((rest, peer))
            d = os.path.join(self.dir, node)
            os.makedirs(d)
            cluster = {"bootstrap": True} if i == 0 else {"join": "127.0.0.1:%d" % self.ports[0][1]}
            cluster.update({"heartbeat_interval_ms": 300})
            cfg = {"node_id": node, "cluster_id": "ui", "data_dir": "data",
                   "rest": {"listen": "127.0.0.1:%d" % rest, "token": self.token},
                   "peer": {"listen": "127.0.0.1:%d" % peer},
                   "tls": {"cert": "../certs/%s.pem" % node, "key": "../certs/%s.key" % node, "ca": "../certs/ca.pem"},
                   "cluster": cluster, "monitor": {"interval_ms": 1000}, "rebalance": {"mode": "plan-only"},
                   "migration": {"undo_window_ms": 300}}
            with open(os.path.join(d, "shardd.json"), "w") as f:
                json.dump(cfg, f)
            log = open(os.path.join(d, "shardd.log"), "w")
            self.procs.append(subprocess.Popen([BIN, "--config", os.path.join(d, "shardd.json")], stdout=log, stderr=log, cwd=d))
            self.wait_health(i)

    def url(self, i=0):
        return "https://127.0.0.1:%d" % self.ports[i][0]

    def call(self, method, path, body=None, i=0, headers=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url(i) + path, data=data, method=method)
        req.add_header("Authorization", "Bearer " + self.token)
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, context=self.ctx, timeout=30) as r:
                text = r.read().decode()
                return r.status, (json.loads(text) if text and r.headers.get("Content-Type", "").startswith("application/json") else text), r.headers
        except urllib.error.HTTPError as e:
            text = e.read().decode()
            return e.code, (json.loads(text) if text.startswith("{") else text), e.headers

    def get(self, path, i=0):
        status, body, _ = self.call("GET", path, i=i)
        require(status == 200, "GET %s answered %s: %s" % (path, status, body))
        return body

    def wait_health(self, i):
        for _ in range(300):
            if self.procs[i].poll() is not None:
                raise RuntimeError("node-%d exited at start; see %s" % (i + 1, self.dir))
            try:
                with urllib.request.urlopen(self.url(i) + "/v1/health", context=self.ctx, timeout=2) as r:
                    if r.status == 200:
                        return
            except Exception:
                pass
            time.sleep(0.1)
        raise RuntimeError("node-%d did not answer /v1/health" % (i + 1))

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def logs(self):
        out = ""
        for i in range(len(self.procs)):
            with open(os.path.join(self.dir, "node-%d" % (i + 1), "shardd.log")) as f:
                out += "=== node-%d\n%s\n" % (i + 1, "".join(f.readlines()[-30:]))
        return out


def wait_for(fn, what, timeout=30.0, every=0.2):
    until = time.time() + timeout
    last = None
    while time.time() < until:
        try:
            last = fn()
            if last:
                return last
        except Exception as e:  # the page is mid-render: try again
            last = e
        time.sleep(every)
    raise AssertionError("timed out waiting for %s (last: %r)" % (what, last))


def wait_migration(c, mid, timeout=60):
    def done():
        m = c.get("/v1/migrations/" + mid)
        return m if m["phase"] in ("done", "cancelled", "rolled_back", "failed") else None
    return wait_for(done, "migration %s to finish" % mid, timeout)


def main():
    os.makedirs(ARTIFACTS, exist_ok=True)
    step("starting three nodes")
    c = Cluster(3)
    step("nodes started")
    driver = None
    try:
        wait_for(lambda: sum(n["state"] == "up" for n in c.get("/v1/cluster")["nodes"]) == 3, "three nodes up")
        status, _, _ = c.call("PUT", "/v1/indexes/demo", {"partitioning": "hash", "shards": 6})
        require(status == 201, "create demo: %s" % status)
        lines = "".join(json.dumps({"op": "put", "key": "user-%04d" % i, "doc": {"n": i}}) + "\n" for i in range(300))
        req = urllib.request.Request(c.url(1) + "/v1/indexes/demo/bulk", data=lines.encode(), method="POST")
        req.add_header("Authorization", "Bearer " + c.token)
        with urllib.request.urlopen(req, context=c.ctx, timeout=30) as r:
            require(r.status == 200, "bulk load")

        opts = webdriver.ChromeOptions()
        opts.binary_location = CHROMIUM
        for a in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync", "--window-size=1400,1000",
                  "--ignore-certificate-errors", "--user-data-dir=" + os.path.join(c.dir, "chromium")]:
            opts.add_argument(a)
        # meson sets MALLOC_PERTURB_ for the nodes' sake; Chromium under it runs minutes slower.
        browser_env = {k: v for k, v in os.environ.items() if k != "MALLOC_PERTURB_"}
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER, env=browser_env), options=opts)
        driver.set_page_load_timeout(30)
        by_id = lambda i: driver.find_element(By.ID, i)

        # --- sign in: a wrong token is refused, the right one opens the page

        step('sign in')
        driver.get(c.url(1) + "/ui")
        check(by_id("login").is_displayed(), "the login form shows first")
        by_id("token").send_keys("wrong")
        by_id("login-form").submit()
        wait_for(lambda: "refused" in by_id("login-error").text, "a wrong token refused")
        check(not by_id("app").is_displayed(), "the app stays hidden with a wrong token")
        by_id("token").clear()
        by_id("token").send_keys(c.token)
        by_id("login-form").submit()
        wait_for(lambda: by_id("app").is_displayed(), "the app after sign-in")
        check(driver.execute_script("return sessionStorage.getItem('shardd.token')") == c.token, "token kept in session storage")

        # --- cluster: every node's figures equal /v1/cluster's

        step('cluster')
        def rows(table):
            return driver.execute_script(
                "return [...document.querySelectorAll('#' + arguments[0] + ' tbody tr')].map(r => "
                "({data: Object.assign({}, r.dataset), cells: [...r.cells].map(c => c.textContent)}))", table)
        wait_for(lambda: len(rows("nodes-table")) == 3, "three node rows")
        cl = c.get("/v1/cluster")
        page = {r["data"]["node"]: r["cells"] for r in rows("nodes-table")}
        for n in cl["nodes"]:
            cells = page.get(n["id"])
            if not check(cells is not None, "node %s listed" % n["id"]):
                continue
            check(cells[2] == n["state"], "%s state %s vs %s" % (n["id"], cells[2], n["state"]))
            check(cells[4] == "{:,}".format(n["shards"]), "%s shards %s vs %s" % (n["id"], cells[4], n["shards"]))
            check(cells[5] == "{:,}".format(n["records"]), "%s records %s vs %s" % (n["id"], cells[5], n["records"]))
            check(("controller" in cells[1]) == n["controller"], "%s controller mark" % n["id"])
        check(by_id("cluster-status").text == cl["status"], "status badge %s vs %s" % (by_id("cluster-status").text, cl["status"]))
        driver.save_screenshot(os.path.join(ARTIFACTS, "cluster.png"))

        # --- ring: one vnode path per node, one arc per shard, a lookup that agrees

        step('ring')
        driver.find_element(By.CSS_SELECTOR, "#tabs button[data-view=ring]").click()
        ring = c.get("/v1/ring?vnodes=true")
        check(len(ring["tokens"]) == ring["vnode_count"], "ring lists every vnode")
        wait_for(lambda: len(driver.find_elements(By.CSS_SELECTOR, "#ring path.shard-arc")) == 6, "six shard arcs")
        check(len(driver.find_elements(By.CSS_SELECTOR, "#ring path.vnodes")) == len(ring["nodes"]), "one vnode path per node")
        ticks = driver.execute_script("return [...document.querySelectorAll('#ring path.vnodes')].map(p => (p.getAttribute('d').match(/M/g) || []).length).reduce((a, b) => a + b, 0)")
        check(ticks == ring["vnode_count"], "ticks drawn %s vs vnodes %s" % (ticks, ring["vnode_count"]))
        by_id("lookup-key").send_keys("user-0042")
        by_id("lookup-form").submit()
        want = c.get("/v1/ring/lookup?index=demo&key=user-0042")
        wait_for(lambda: "shard %d on %s" % (want["shard"], want["owner"]) in by_id("lookup-result").text, "lookup result")
        check(want["token"] in by_id("lookup-result").text, "lookup shows the token")
        hit = driver.find_elements(By.CSS_SELECTOR, "#ring path.shard-arc.hit")
        check(len(hit) == 1 and hit[0].get_attribute("data-shard") == str(want["shard"]), "the key's shard highlighted")
        check(len(driver.find_elements(By.ID, "lookup-token")) == 1, "the key's token drawn")
        driver.save_screenshot(os.path.join(ARTIFACTS, "ring.png"))

        # --- shards: owners and counts equal /v1/shards; sort and filter work

        step('shards')
        driver.find_element(By.CSS_SELECTOR, "#tabs button[data-view=shards]").click()
        api_shards = {(s["index"], s["shard"]): s for s in c.get("/v1/shards")["shards"]}
        wait_for(lambda: len(rows("shards-table")) == len(api_shards), "every shard listed")
        for r in rows("shards-table"):
            s = api_shards.get((r["data"]["index"], int(r["data"]["shard"])))
            if check(s is not None, "shard row %s known" % r["data"]):
                check(r["cells"][3] == s["node"], "shard %s owner %s vs %s" % (s["shard"], r["cells"][3], s["node"]))
                check(r["cells"][5] == "{:,}".format(s["records"]), "shard %s records %s vs %s" % (s["shard"], r["cells"][5], s["records"]))
        driver.find_element(By.CSS_SELECTOR, "#shards-table th[data-key=records]").click()
        recs = [int(r["cells"][5].replace(",", "")) for r in rows("shards-table")]
        check(recs == sorted(recs), "sorted by records ascending: %s" % recs)
        driver.find_element(By.CSS_SELECTOR, "#shards-table th[data-key=records]").click()
        recs = [int(r["cells"][5].replace(",", "")) for r in rows("shards-table")]
        check(recs == sorted(recs, reverse=True), "sorted by records descending: %s" % recs)
        by_id("shards-filter").send_keys("node-2")
        owners = {r["cells"][3] for r in rows("shards-table")}
        check(owners == {"node-2"}, "filter keeps node-2's shards only: %s" % owners)
        check(len(rows("shards-table")) == sum(1 for s in api_shards.values() if s["node"] == "node-2"), "filter count")
        driver.save_screenshot(os.path.join(ARTIFACTS, "shards.png"))
        by_id("shards-filter").clear()
        driver.execute_script("document.getElementById('shards-filter').dispatchEvent(new Event('input'))")

        # --- migrations: a move started from the page, its bar reaches done

        step('migrations')
        moving = next(s for s in sorted(api_shards.values(), key=lambda s: s["shard"]) if s["node"] != "node-3")
        driver.find_element(By.CSS_SELECTOR, "#tabs button[data-view=migrations]").click()
        wait_for(lambda: len(Select(by_id("migrate-target")).options) == 3, "targets listed")
        Select(by_id("migrate-index")).select_by_value("demo")
        by_id("migrate-shard").clear()
        by_id("migrate-shard").send_keys(str(moving["shard"]))
        Select(by_id("migrate-target")).select_by_value("node-3")
        by_id("migrate-form").submit()
        wait_for(lambda: by_id("confirm").is_displayed(), "a confirmation")
        check("node-3" in by_id("confirm-text").text, "the confirmation names the target")
        by_id("confirm-ok").click()
        row = wait_for(lambda: [r for r in rows("migrations-table") if r["cells"][1] == "demo/%d" % moving["shard"]], "the move listed")
        mid = row[0]["data"]["id"]
        wait_for(lambda: any(r["data"]["id"] == mid and r["data"]["phase"] == "done" for r in rows("migrations-table")),
                 "the move's row reaches done", 60)
        width = driver.execute_script("return document.querySelector('#migrations-table tr[data-id=\"' + arguments[0] + '\"] .bar > span').style.width", mid)
        check(float(width.rstrip("%")) == 100, "the done move's bar is full: %s" % width)
        m = c.get("/v1/migrations/" + mid)
        check(m["phase"] == "done" and m["target"] == "node-3" and m["reason"] == "api", "REST agrees: %s" % m)
        owner = {(s["index"], s["shard"]): s["node"] for s in c.get("/v1/shards")["shards"]}[("demo", moving["shard"])]
        check(owner == "node-3", "the shard is on node-3 now (%s)" % owner)
        driver.save_screenshot(os.path.join(ARTIFACTS, "migrations.png"))

        # A cancelled confirmation does nothing.
        before = len(c.get("/v1/migrations")["migrations"])
        by_id("migrate-shard").clear()
        by_id("migrate-shard").send_keys(str(moving["shard"]))
        Select(by_id("migrate-target")).select_by_value("node-1")
        by_id("migrate-form").submit()
        wait_for(lambda: by_id("confirm").is_displayed(), "a confirmation")
        by_id("confirm-cancel").click()
        time.sleep(1)
        check(len(c.get("/v1/migrations")["migrations"]) == before, "no move after Cancel")

        # --- rebalance: skew the cluster, make a plan on the page, apply it

        step('rebalance')
        for s in c.get("/v1/shards")["shards"]:
            if s["node"] != "node-1":
                st, body, _ = c.call("POST", "/v1/shards/demo/%d/migrate" % s["shard"], {"target": "node-1"})
                require(st == 202, "skew move: %s %s" % (st, body))
                wait_migration(c, body["id"])
        driver.find_element(By.CSS_SELECTOR, "#tabs button[data-view=rebalance]").click()
        by_id("plan-make").click()
        wait_for(lambda: "plan p" in by_id("plan-status").text, "a plan made")
        plan_rows = len(driver.find_elements(By.CSS_SELECTOR, "#plan-moves tbody tr"))
        check(plan_rows > 0, "the plan has moves (%d)" % plan_rows)
        check(by_id("plan-apply").is_enabled(), "Apply enabled")
        driver.save_screenshot(os.path.join(ARTIFACTS, "rebalance.png"))
        by_id("plan-apply").click()
        wait_for(lambda: by_id("confirm").is_displayed(), "a confirmation")
        by_id("confirm-ok").click()
        wait_for(lambda: "applied:" in by_id("plan-status").text, "plan applied (%s)" % by_id("plan-status").text)
        queued = [m for m in c.get("/v1/migrations")["migrations"] if m["reason"] == "balance"]
        check(len(queued) == plan_rows, "REST lists the plan's %d moves: %d" % (plan_rows, len(queued)))
        for m in queued:
            wait_migration(c, m["id"])
        by_id("plan-explain").click()
        wait_for(lambda: by_id("plan-explain-text").text.strip() != "", "explain text")

        # --- events: the journal's newest entries, live

        step('events')
        driver.find_element(By.CSS_SELECTOR, "#tabs button[data-view=events]").click()
        last = c.get("/v1/events?limit=1000")["last_id"]
        wait_for(lambda: int(driver.find_element(By.CSS_SELECTOR, "#events-list li").get_attribute("data-id")) >= last,
                 "the newest event listed")
        types = {li.get_attribute("data-type") for li in driver.find_elements(By.CSS_SELECTOR, "#events-list li")}
        check("migration" in types and "map" in types, "migration and map events listed: %s" % types)
        driver.save_screenshot(os.path.join(ARTIFACTS, "events.png"))

        # --- load: a line per node after a few refreshes

        step('load')
        # Reads aimed at one key: its shard becomes the busiest of the monitor's history.
        hot = c.get("/v1/ring/lookup?index=demo&key=user-0007")
        for _ in range(150):
            c.get("/v1/indexes/demo/records/user-0007")
        driver.find_element(By.CSS_SELECTOR, "#tabs button[data-view=load]").click()
        wait_for(lambda: len(driver.find_elements(By.CSS_SELECTOR, "#charts svg[data-field=rps] path[data-node]")) == 3, "three load lines")
        busiest = "demo/%d" % hot["shard"]
        wait_for(lambda: driver.execute_script(
            "const p = document.querySelector('#shard-charts svg[data-field=rps] path[data-shard]'); return p && p.dataset.shard") == busiest,
            "the read shard drawn first among the busiest", 30)
        # The page draws the monitor's stored history: a node's line has a point for every
        # point of /v1/stats/history (compared with what the page fetched, then with the node's answer).
        page_hist = driver.execute_script("return shardd.state.history")
        check(page_hist["window"] == "15m" and len(page_hist["nodes"]) == 3, "the page holds every node's history")
        for n in page_hist["nodes"]:
            drawn = int(driver.find_element(By.CSS_SELECTOR, "#charts svg[data-field=rps] path[data-node='%s']" % n["node"]).get_attribute("data-points"))
            check(drawn == len(n["t"]) == len(n["totals"]["requests_per_sec"]), "%s: %d points drawn, %d in the history" % (n["node"], drawn, len(n["t"])))
        owner = hot["owner"]
        def owner_history():
            h = c.get("/v1/stats/history?window=15m&points=90&top=8", i=int(owner.split("-")[1]) - 1)
            return h if h["shards"] and h["shards"][0]["requests"] >= 150 else None
        direct = wait_for(owner_history, "the owner's history to count the 150 reads", 10)
        check(direct["node"] == owner and direct["shards"][0]["shard"] == hot["shard"],
              "the owner's history puts the read shard first: %s" % direct["shards"][:1])
        driver.save_screenshot(os.path.join(ARTIFACTS, "load.png"))

        # --- 20 nodes and 1,000 shards: every view renders in under 200 ms

        step('20 nodes and 1,000 shards')
        timings = driver.execute_script("""
          shardd.stop();
          const s = shardd.state, nodes = [], shards = [], tokens = [], owners = [];
          for (let i = 0; i < 20; i++) nodes.push({id: 'big-' + i, state: 'up', weight: 1, shards: 50, controller: i === 0,
            migrations_out: 0, migrations_in: 0, anomalies_open: 0, records: 50000, bytes: 5e6, disk_used: 1e9, disk_total: 1e10, disk_level: 'ok'});
          const hex = (f) => Math.floor(f * 2 ** 52).toString(16).padStart(13, '0') + '000';
          for (let i = 0; i < 2560; i++) { tokens.push(hex(i / 2560)); owners.push(i % 20); }
          for (let i = 0; i < 1000; i++) shards.push({index: 'big', shard: i, start: hex(i / 1000), end: i === 999 ? null : hex((i + 1) / 1000),
            node: 'big-' + (i % 20), state: 'active', records: 1000 + i, bytes: 100000 + i});
          s.cluster = Object.assign({}, s.cluster, {nodes}); s.shards = shards;
          s.ring = {vnode_count: 2560, tokens, owners, nodes: nodes.map((n) => ({id: n.id, weight: 1, vnodes: 128, ownership: 0.05}))};
          s.migrations = []; s.load = {nodes: []}; s.sort = {key: 'shard', dir: 1}; s.page = 0;
          document.getElementById('ring-index').value = '';
          const out = {};
          for (const v of ['cluster', 'ring', 'shards', 'migrations']) {
            document.querySelector('#tabs button[data-view=' + v + ']').click();
            const t0 = performance.now();
            shardd.render();
            const t1 = performance.now();
            document.body.getBoundingClientRect();  // layout included
            out[v] = performance.now() - t0;
            out[v + '_js'] = t1 - t0;
          }
          out.rows = document.querySelectorAll('#shards-table tbody tr').length;
          return out;""")
        print("render at 20 nodes / 1,000 shards (ms):", {k: round(v, 1) for k, v in timings.items() if k != "rows"}, flush=True)
        check(timings["rows"] == 200, "the first page of 200 shard rows rendered (%s)" % timings["rows"])
        driver.find_element(By.CSS_SELECTOR, "#tabs button[data-view=shards]").click()
        check(by_id("shards-count").text == "1–200 of 1,000 shards", "page counter: %s" % by_id("shards-count").text)
        by_id("shards-next").click()
        check(by_id("shards-count").text == "201–400 of 1,000 shards", "next page: %s" % by_id("shards-count").text)
        check(rows("shards-table")[0]["data"]["shard"] == "200", "page two starts at shard 200")
        shares = sum(int(d.text.split(" shards")[0].split()[-1]) for d in driver.find_elements(By.CSS_SELECTOR, "#shares > div"))
        check(shares == 1000, "the share bars count every shard, not one page: %d" % shares)
        driver.find_element(By.CSS_SELECTOR, "#tabs button[data-view=ring]").click()
        arcs = len(driver.find_elements(By.CSS_SELECTOR, "#ring path.shard-arc"))
        check(arcs == 1000, "1,000 arcs drawn (%d)" % arcs)
        driver.save_screenshot(os.path.join(ARTIFACTS, "ring-1000-shards.png"))
        for v in ["cluster", "ring", "shards", "migrations"]:
            check(timings[v] < 200, "%s renders 1,000 shards in under 200 ms: %.1f ms" % (v, timings[v]))

        # --- the page asked nothing of any host but this node

        step('the page asked nothing of any host but this node')
        hosts = driver.execute_script("return [...new Set(performance.getEntriesByType('resource').map(e => new URL(e.name).host))]")
        check(hosts == ["127.0.0.1:%d" % c.ports[1][0]], "requests only to the node: %s" % hosts)

        # --- sign out forgets the token

        step('sign out forgets the token')
        by_id("logout").click()
        check(by_id("login").is_displayed(), "signed out")
        check(driver.execute_script("return sessionStorage.getItem('shardd.token')") is None, "token forgotten")
    except Exception as e:
        failures.append("error: %r" % e)
        print("ERROR:", repr(e), flush=True)
        if driver:
            driver.save_screenshot(os.path.join(ARTIFACTS, "error.png"))
    finally:
        if driver:
            driver.quit()
        c.stop()
        if failures:
            print(c.logs())
        shutil.rmtree(c.dir, ignore_errors=True)
    print("screenshots in", ARTIFACTS)
    if failures:
        print("%d failure(s)" % len(failures))
        sys.exit(1)
    print("dashboard: all checks passed")


if __name__ == "__main__":
    main()
