#!/usr/bin/env python3
"""Migration benchmarks for shardd. Prints figures; asserts nothing.

  bench/migration_bench.py [--quick] [--part big|fence|redis|adaptive|saturated]...

big:    one migration of a shard of 1 KiB documents (>= 1 GiB) and one of 100-byte documents,
        both padding that compresses 20-40x, then one of 1 KiB documents of words and numbers
        that compress 1.8x with LZ4, as ordinary JSON does (BENCH_DOC_STYLE=words of
        bulk_bench): MiB/s and records/s beside a raw TLS stream of the same bytes over
        loopback (the floor); then each shard moves back while foreground GETs run through
        both nodes: the rate under load and the foreground p50/p99 beside the same GETs at rest.
        BENCH_MIGRATION_CONFIG (a JSON object) adds `migration` settings for the nodes (also redis).
fence:  write-fence durations (p50/p99/max) over many migrations under a write load.
adaptive: two equal shards of 1 KiB documents on node-1 move to node-2 one after the other
        while GETs of node-1's shards run against node-1: the first with the adaptive
        throttle off, the second with it on (bound: twice the p99 of the same GETs at rest):
        foreground p99 and move time of each, beside the at-rest anchor, as ratios.
saturated: two pairs of equal shards (200,000 1 KiB documents each) move from node-1 to
        node-2 while wrk saturates both nodes with GETs (64 connections each), alternating
        priority normal and high: move times and the ratio high/normal.
redis:  1,000,000 records of 100-byte values on 3 nodes, a 4th added, time until balanced:
        Redis Cluster (redis-cli --cluster rebalance --cluster-use-empty-masters) and shardd
        (the rebalancer after a join), in the same run. BENCH_REDIS_PIPELINE sets redis-cli's
        --cluster-pipeline (keys per MIGRATE; default 10, as redis-cli's).
"""
import json
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("BENCH_BUILD", os.path.join(REPO, "build-release"))  # another build to compare with
TOKEN = "bench-token-0123456789abcdef"


def sh(cmd, **kw):
    return subprocess.run(cmd, shell=True, check=True, text=True, capture_output=True, **kw).stdout


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Cluster:
    """`meta`: an etcd://... address list (every node starts with --meta); None: the embedded
    plane (node-1 bootstraps, the others join it)."""

    def __init__(self, work, n, config, meta=None):
        self.work, self.nodes, self.procs, self.meta = work, [], [], meta
        self.ca = os.path.join(work, "certs", "ca.pem")
        self.ctx = ssl.create_default_context(cafile=self.ca)
        self.config = config
        for _ in range(n):
            self.add()

    def add(self):
        i = len(self.nodes) + 1
        rest, peer = free_port(), free_port()
        d = os.path.join(self.work, f"node-{i}")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "shardd.json"), "w") as f:
            json.dump(self.config, f)
        args = [os.path.join(BUILD, "src/node/shardd"), "--config", os.path.join(d, "shardd.json"),
                "--node-id", f"node-{i}", "--data-dir", os.path.join(d, "data"),
                "--rest-listen", f"127.0.0.1:{rest}", "--peer-listen", f"127.0.0.1:{peer}",
                "--tls-cert", os.path.join(self.work, "certs", f"node-{i}.pem"),
                "--tls-key", os.path.join(self.work, "certs", f"node-{i}.key"),
                "--tls-ca", self.ca, "--log-level", os.environ.get("BENCH_LOG_LEVEL", "warn")]
        if self.meta:
            args += ["--meta", self.meta]
        else:
            args += ["--bootstrap"] if i == 1 else ["--join", f"127.0.0.1:{self.nodes[0]['peer']}"]
        self.nodes.append({"rest": rest, "peer": peer, "url": f"https://127.0.0.1:{rest}", "args": args})
        self.procs.append(None)
        self.start(i)

    def start(self, i):
        """Starts (or starts again) node i; returns once it answers."""
        n = self.nodes[i - 1]
        log = open(os.path.join(self.work, f"node-{i}", "shardd.log"), "a")
        self.procs[i - 1] = subprocess.Popen(n["args"], stdout=log, stderr=log, env=dict(os.environ, SHARDD_TOKEN=TOKEN))
        for _ in range(200):
            try:
                self.api(i, "GET", "/v1/health")
                return
            except Exception:
                time.sleep(0.05)
        raise RuntimeError(f"node-{i} did not start")

    def api(self, i, method, path, body=None):
        data = None if body is None else (body if isinstance(body, (bytes, str)) else json.dumps(body))
        if isinstance(data, str):
            data = data.encode()
        req = urllib.request.Request(self.nodes[i - 1]["url"] + path, data=data, method=method,
                                     headers={"Authorization": "Bearer " + TOKEN})
        try:
            with urllib.request.urlopen(req, context=self.ctx, timeout=120) as r:
                return json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            raise RuntimeError(f"{method} {path}: {e.code} {e.read()[:300]}")

    def stop(self):
        for p in self.procs:
            if p and p.poll() is None:
                p.terminate()
        for p in self.procs:
            if p:
                p.wait()


def routing_for(cl, index, owner):
    shards = {s["shard"]: s["node"] for s in cl.api(1, "GET", f"/v1/shards?index={index}")["shards"]}
    for i in range(10000):
        look = cl.api(1, "GET", f"/v1/ring/lookup?index={index}&key=r{i}")
        if shards[look["shard"]] == owner:
            return f"r{i}", look["shard"]
    raise RuntimeError("no routing value")


def bulk(cl, node, index, records, doc_bytes, routing=None, prefix="b", style="pad"):
    env = dict(os.environ, SHARDD_TOKEN=TOKEN, BENCH_DOC_BYTES=str(doc_bytes), BENCH_PREFIX=prefix,
               BENCH_DOC_STYLE=style)
    if routing:
        env["BENCH_ROUTING"] = routing
    out = sh(f"{BUILD}/bench/bulk_bench {cl.nodes[node - 1]['rest']} {cl.ca} {index} {records} 5000 2", env=env)
    return out.strip()


def wrk(url, seconds, conns, script, env):
    out = subprocess.run(["wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "--latency", "-s", script, url],
                         capture_output=True, text=True, env=dict(os.environ, SHARDD_TOKEN=TOKEN, **env)).stdout
    for line in out.splitlines():
        if line.startswith("RESULT"):
            return dict(kv.split("=") for kv in line.split()[1:])
    return {}


def cpu_seconds(procs):
    """User + system CPU seconds used so far by these processes (from /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for p in procs:
        with open(f"/proc/{p.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def children_cpu_seconds():
    import resource
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def settle(procs, idle_cores=0.05, timeout=180):
    """Waits until these processes together use under `idle_cores` for a whole second (the
    flushes and compactions of a load are over), at most `timeout` seconds; the seconds waited."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        c0 = cpu_seconds(procs)
        time.sleep(1)
        if cpu_seconds(procs) - c0 < idle_cores:
            break
    return time.time() - t0


def wait_migration(cl, mid, timeout=3600):
    t0 = time.time()
    while time.time() - t0 < timeout:
        m = cl.api(1, "GET", f"/v1/migrations/{mid}")
        if m["phase"] in ("retiring", "done", "failed", "cancelled", "rolled_back"):
            return m, time.time()
        time.sleep(0.05)
    raise RuntimeError("migration did not finish")


def foreground_index(cl):
    """An index "fg" of 100,000 100-byte records on node-1, and wrk's GET script and env for it."""
    cl.api(1, "PUT", "/v1/indexes/fg", {"shards": 2})
    fg_routing, _ = routing_for(cl, "fg", "node-1")
    bulk(cl, 1, "fg", 100000, 100, fg_routing, prefix="f")
    script = os.path.join(REPO, "bench", "wrk-get.lua")
    return script, {"BENCH_INDEX": "fg", "BENCH_KEYS": "100000", "BENCH_PREFIX": "f", "BENCH_ROUTING": fg_routing}


def migration_config():
    """The nodes' `migration` settings: a short undo window, plus BENCH_MIGRATION_CONFIG (a JSON
    object, e.g. '{"threads":4}')."""
    return {"undo_window_ms": 1000, **json.loads(os.environ.get("BENCH_MIGRATION_CONFIG", "{}"))}


def part_big(work, quick):
    cfg = {"migration": migration_config(), "storage": {"block_cache_mb": 512}}
    cl = Cluster(work, 2, cfg)
    try:
        cl.api(1, "PUT", "/v1/rebalance/settings", {"mode": "off"})
        gib = 1 << 30
        cases = [("1 KiB documents", 1024, (gib // 1034 + 1) if not quick else 100000, "pad"),
                 ("100-byte documents", 100, 2000000 if not quick else 200000, "pad"),
                 ("1 KiB word documents", 1024, (gib // 1034 + 1) if not quick else 100000, "words")]
        # Foreground traffic: GETs of another index (held by node-1) sent to node-2, which
        # forwards them: both nodes of the move serve it.
        script, fg_env = foreground_index(cl)
        base = wrk(cl.nodes[1]["url"], 5, 16, script, fg_env)
        print(f"# foreground GET through node-2 (forwarded to node-1), 16 connections, no migration: "
              f"{base.get('req_per_s')} req/s, p50 {base.get('p50_ms')} ms, p99 {base.get('p99_ms')} ms")

        def move(index, shard, source, target, fg_seconds=0):
            # The move alone is measured: the background work of what came before (the load's
            # flushes and compactions, the last move's) is waited out first.
            print(f"  nodes idle after {settle(cl.procs):.1f} s", flush=True)
            fg = {}
            th = threading.Thread(target=lambda: fg.update(wrk(cl.nodes[1]["url"], fg_seconds, 16, script, fg_env)))
            if fg_seconds:
                th.start()
                time.sleep(0.5)
            t0, c0 = time.time(), cpu_seconds(cl.procs)
            mid = cl.api(1, "POST", f"/v1/shards/{index}/{shard}/migrate", {"target": target})["id"]
            m, t1 = wait_migration(cl, mid)
            fg["cores"] = (cpu_seconds(cl.procs) - c0) / (t1 - t0)  # both nodes, during the move
            if fg_seconds:
                th.join()
            return m, t1 - t0, fg

        for n, (label, doc, records, style) in enumerate(cases):
            index = f"big{n}"
            cl.api(1, "PUT", f"/v1/indexes/{index}", {"shards": 2})
            routing, shard = routing_for(cl, index, "node-1")
            t = time.time()
            print(f"# loading {records} records of {label} into one shard ...", flush=True)
            print("  " + bulk(cl, 1, index, records, doc, routing, prefix="k", style=style))
            print(f"  loaded in {time.time() - t:.1f} s", flush=True)
            m, secs, alone = move(index, shard, "node-1", "node-2")
            c0, f0 = children_cpu_seconds(), time.time()
            floor = sh(f"{BUILD}/bench/tls_floor {work}/certs/node-1.pem {work}/certs/node-1.key {cl.ca} {m['bytes_done']}")
            floor_cpu = children_cpu_seconds() - c0
            floor_cores = floor_cpu / (time.time() - f0)
            floor_mib = float(floor.split("mib_per_s=")[1])
            mib = m["bytes_done"] / secs / (1 << 20)
            # CPU per MiB moved, both ends together, beside the raw stream's (both ends too).
            total_mib = m["bytes_done"] / (1 << 20)
            cpu_ms_per_mib = 1000 * alone["cores"] * secs / total_mib
            floor_cpu_ms_per_mib = 1000 * floor_cpu / total_mib
            print(f"RESULT migration docs={label.replace(' ', '_')} records={m['records_done']} "
                  f"mib={m['bytes_done'] / (1 << 20):.0f} seconds={secs:.1f} mib_per_s={mib:.1f} "
                  f"records_per_s={m['records_done'] / secs:.0f} fence_ms={m['fence_ms']} "
                  f"raw_tls_mib_per_s={floor_mib:.1f} of_floor={100 * mib / floor_mib:.0f}% "
                  f"cores_used={alone['cores']:.2f} floor_cores_used={floor_cores:.2f} "
                  f"cpu_ms_per_mib={cpu_ms_per_mib:.2f} floor_cpu_ms_per_mib={floor_cpu_ms_per_mib:.2f} "
                  f"cpu_vs_floor={cpu_ms_per_mib / floor_cpu_ms_per_mib:.2f}x", flush=True)
            # The same shard back, with foreground reads running through both nodes.
            m, secs, fg = move(index, shard, "node-2", "node-1", fg_seconds=max(3, int(secs * 1.5) + 2))
            mib = m["bytes_done"] / secs / (1 << 20)
            print(f"RESULT migration_under_load docs={label.replace(' ', '_')} seconds={secs:.1f} mib_per_s={mib:.1f} "
                  f"records_per_s={m['records_done'] / secs:.0f} fence_ms={m['fence_ms']} "
                  f"foreground_req_per_s={fg.get('req_per_s')} foreground_p50_ms={fg.get('p50_ms')} "
                  f"foreground_p99_ms={fg.get('p99_ms')}", flush=True)
    finally:
        cl.stop()


def part_fence(work, quick):
    cl = Cluster(work, 2, {"migration": {"undo_window_ms": 500}})
    try:
        cl.api(1, "PUT", "/v1/rebalance/settings", {"mode": "off"})
        cl.api(1, "PUT", "/v1/migrations/settings", {"max_outgoing": 2, "max_incoming": 2})
        cl.api(1, "PUT", "/v1/indexes/fz", {"shards": 64})
        bulk(cl, 1, "fz", 64000, 100)
        script = os.path.join(REPO, "bench", "wrk-put.lua")
        shards = [s["shard"] for s in cl.api(1, "GET", "/v1/shards?index=fz")["shards"] if s["node"] == "node-1"]
        if quick:
            shards = shards[:6]
        load = {}
        th = threading.Thread(target=lambda: load.update(wrk(cl.nodes[0]["url"], 20 if not quick else 6, 16, script,
                                                              {"BENCH_INDEX": "fz"})))
        th.start()
        time.sleep(1)
        ids = [cl.api(2, "POST", f"/v1/shards/fz/{s}/migrate", {"target": "node-2"})["id"] for s in shards]
        fences = []
        for mid in ids:
            m, _ = wait_migration(cl, mid)
            fences.append(m["fence_ms"])
        th.join()
        fences.sort()
        p = lambda q: fences[min(len(fences) - 1, int(q * len(fences)))]
        print(f"RESULT fence migrations={len(fences)} p50_ms={p(0.5)} p99_ms={p(0.99)} max_ms={fences[-1]} "
              f"(under PUT load: {load.get('req_per_s')} req/s, p99 {load.get('p99_ms')} ms)")
    finally:
        cl.stop()


def crc16(data):
    crc = 0
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def part_redis(work, quick):
    records = 1000000 if not quick else 100000
    value = "x" * 100
    # --- Redis Cluster -------------------------------------------------------------------
    ports = []
    while len(ports) < 4:
        p = free_port()
        if p < 55000 and p not in ports:
            ports.append(p)
    procs = []
    try:
        for p in ports:
            d = os.path.join(work, f"redis-{p}")
            os.makedirs(d)
            procs.append(subprocess.Popen(["redis-server", "--port", str(p), "--cluster-enabled", "yes",
                                           "--cluster-config-file", "nodes.conf", "--appendonly", "no", "--save", "",
                                           "--dir", d, "--bind", "127.0.0.1"],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        time.sleep(0.5)
        sh("redis-cli --cluster create " + " ".join(f"127.0.0.1:{p}" for p in ports[:3]) +
           " --cluster-replicas 0 --cluster-yes")
        time.sleep(1)
        # Which node owns which slots.
        slots = {}
        for line in sh(f"redis-cli -p {ports[0]} cluster nodes").splitlines():
            parts = line.split()
            port = int(parts[1].split(":")[1].split("@")[0])
            for r in parts[8:]:
                if "-" in r:
                    a, b = r.split("-")
                    for s in range(int(a), int(b) + 1):
                        slots[s] = port
                elif r.isdigit():
                    slots[int(r)] = port
        t = time.time()
        pipes = {p: [] for p in ports[:3]}
        for i in range(records):
            k = f"key:{i}".encode()
            pipes[slots[crc16(k) % 16384]].append(f"*3\r\n$3\r\nSET\r\n${len(k)}\r\n{k.decode()}\r\n$100\r\n{value}\r\n")
        for p, cmds in pipes.items():
            subprocess.run(["redis-cli", "-p", str(p), "--pipe"], input="".join(cmds), text=True, capture_output=True,
                           check=True)
        print(f"# redis: loaded {records} keys in {time.time() - t:.1f} s", flush=True)
        sh(f"redis-cli --cluster add-node 127.0.0.1:{ports[3]} 127.0.0.1:{ports[0]}")
        for _ in range(100):  # every node must know the new one, and the cluster be ok
            ok = all(sh(f"redis-cli -p {p} cluster nodes").count("master") == 4 for p in ports) and \
                 all("cluster_state:ok" in sh(f"redis-cli -p {p} cluster info") for p in ports)
            if ok:
                break
            time.sleep(0.2)
        t0 = time.time()
        # redis-cli's default --cluster-pipeline is 10 keys per MIGRATE; BENCH_REDIS_PIPELINE
        # tries another.
        pipeline = os.environ.get("BENCH_REDIS_PIPELINE", "10")
        sh(f"redis-cli --cluster rebalance 127.0.0.1:{ports[0]} --cluster-use-empty-masters "
           f"--cluster-pipeline {pipeline}")
        secs = time.time() - t0
        moved = int(sh(f"redis-cli -p {ports[3]} dbsize").strip())
        redis_rate = moved / secs
        print(f"RESULT redis_rebalance pipeline={pipeline} keys={records} moved={moved} seconds={secs:.1f} "
              f"keys_per_s={redis_rate:.0f}",
              flush=True)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait()
    # --- shardd ------------------------------------------------------------------------------
    base = os.path.join(work, "shardd")
    os.makedirs(base)
    os.symlink(os.path.join(work, "certs"), os.path.join(base, "certs"))
    # The rebalancer by shard count, as Redis Cluster balances slots.
    cl = Cluster(base, 3, {"migration": migration_config(), "rebalance": {"strategy": "shards"}})
    try:
        cl.api(1, "PUT", "/v1/indexes/kv", {"shards": 32})
        t = time.time()
        bulk(cl, 1, "kv", records, 100, prefix="key:")
        print(f"# shardd: loaded {records} records in {time.time() - t:.1f} s", flush=True)
        moving_phases = ("queued", "copying", "catching_up", "verifying", "cutover")
        while any(m["phase"] in moving_phases for m in cl.api(1, "GET", "/v1/migrations")["migrations"]):
            time.sleep(0.1)  # the balance of 32 shards on 3 nodes, before the join
        earlier = {m["id"] for m in cl.api(1, "GET", "/v1/migrations")["migrations"]}
        before = {s["shard"]: s["node"] for s in cl.api(1, "GET", "/v1/shards?index=kv")["shards"]}
        t0 = time.time()
        cl.add()
        started, first_move = time.time() - t0, None  # the new node answers; the first move for it
        # Balanced when no move the rebalancer made for the join is queued or moving data: a
        # migration in "retiring" has committed the new owner and only waits out the source's
        # undo window (Redis counts a key as moved once it is on the new node, too).
        while True:
            conv = [m for m in cl.api(1, "GET", "/v1/migrations")["migrations"] if m["id"] not in earlier]
            moving = [m for m in conv if m["phase"] in moving_phases]
            if conv and first_move is None:
                first_move = time.time() - t0
            if conv and not moving:
                break
            if time.time() - t0 > 3600:
                raise RuntimeError("the join's rebalance did not finish")
            time.sleep(0.05)
        secs = time.time() - t0
        moved = sum(m["records_done"] for m in conv if m["phase"] in ("retiring", "done"))
        shards = cl.api(1, "GET", "/v1/shards?index=kv")["shards"]
        on4 = sum(1 for s in shards if s["node"] == "node-4")
        changed = sum(1 for s in shards if before[s["shard"]] != s["node"])
        rate = moved / secs
        print(f"RESULT shardd_join records={records} moved={moved} shards_moved={changed} shards_on_new_node={on4} "
              f"seconds={secs:.1f} keys_per_s={rate:.0f} vs_redis={rate / redis_rate:.1f}x "
              f"node_up_s={started:.2f} first_move_seen_s={first_move:.2f}", flush=True)
    finally:
        cl.stop()


def part_adaptive(work, quick):
    cfg = {"migration": {"undo_window_ms": 1000}, "monitor": {"interval_ms": 500}}
    cl = Cluster(work, 2, cfg)
    try:
        cl.api(1, "PUT", "/v1/rebalance/settings", {"mode": "off"})
        # A move of several seconds at full speed, so the throttle (one step per 500 ms
        # sample) has time to act.
        records = 600000 if not quick else 100000
        script, fg_env = foreground_index(cl)
        shards = []
        for n in range(2):
            index = f"ad{n}"
            cl.api(1, "PUT", f"/v1/indexes/{index}", {"shards": 2})
            routing, shard = routing_for(cl, index, "node-1")
            print("  " + bulk(cl, 1, index, records, 1024, routing, prefix="k"), flush=True)
            shards.append((index, shard))
        # The at-rest anchor once the load's compactions are done (they slow every read).
        for _ in range(120):
            if cl.api(1, "GET", "/v1/stats?window=1s")["totals"].get("pending_compaction_bytes", 0) == 0:
                break
            time.sleep(1)
        time.sleep(2)
        rest = wrk(cl.nodes[0]["url"], 5, 16, script, fg_env)
        rest_p99 = float(rest.get("p99_ms", "1"))
        bound = max(0.5, 2 * rest_p99)
        print(f"# foreground GET on node-1, 16 connections, no migration: {rest.get('req_per_s')} req/s, "
              f"p99 {rest_p99} ms; adaptive bound {bound:.2f} ms", flush=True)
        results = {}
        for (index, shard), adaptive in zip(shards, (False, True)):
            cl.api(1, "PUT", "/v1/migrations/settings", {"adaptive": adaptive, "adaptive_p99_ms": bound})
            fg = {}
            seconds = 40 if not quick else 15
            th = threading.Thread(target=lambda: fg.update(wrk(cl.nodes[0]["url"], seconds, 16, script, fg_env)))
            th.start()
            time.sleep(1)
            t0 = time.time()
            mid = cl.api(1, "POST", f"/v1/shards/{index}/{shard}/migrate", {"target": "node-2"})["id"]
            limited = set()
            while True:
                m = cl.api(1, "GET", f"/v1/migrations/{mid}")
                limited.add(m.get("rate_limited_by", "none"))
                if m["phase"] in ("retiring", "done", "failed", "cancelled", "rolled_back"):
                    break
                time.sleep(0.1)
            secs = time.time() - t0
            # The node's own read p99 over the move alone (the monitor's histograms), beside
            # wrk's over its whole run (which covers time before and after the move too).
            time.sleep(0.6)
            window = max(1, int(secs + 0.999))
            st = cl.api(1, "GET", f"/v1/stats?window={window}s")
            during = st["totals"].get("latency_us", {}).get("read", {}).get("p99", 0) / 1000.0
            th.join()
            results[adaptive] = (secs, float(fg.get("p99_ms", "0")), during)
            print(f"RESULT adaptive={'on' if adaptive else 'off'} move_seconds={secs:.1f} "
                  f"mib_per_s={m['bytes_done'] / secs / (1 << 20):.1f} foreground_req_per_s={fg.get('req_per_s')} "
                  f"foreground_p99_ms={fg.get('p99_ms')} p99_vs_rest={float(fg.get('p99_ms', '0')) / rest_p99:.2f} "
                  f"server_read_p99_during_move_ms={during:.2f} rate_limited_by={'/'.join(sorted(limited))}", flush=True)
        off, on = results[False], results[True]
        print(f"RESULT adaptive_vs_off move_time={on[0] / off[0]:.2f}x foreground_p99={on[1] / max(off[1], 1e-9):.2f}x "
              f"server_read_p99_during_move={on[2] / max(off[2], 1e-9):.2f}x (at-rest p99 {rest_p99} ms)", flush=True)
    finally:
        cl.stop()


def part_saturated(work, quick):
    """Two equal shards move from node-1 to node-2 while wrk saturates both nodes with GETs:
    one at priority normal (its work on the migration threads at nice +19), one at priority
    high (on the threads kept for high, at the node's own priority); alternating, twice."""
    cl = Cluster(work, 2, {"migration": {"undo_window_ms": 1000}})
    try:
        cl.api(1, "PUT", "/v1/rebalance/settings", {"mode": "off"})
        script, fg_env = foreground_index(cl)
        records = 200000 if not quick else 40000
        rounds = [("normal", 0), ("high", 1), ("normal", 2), ("high", 3)]
        shards = []
        for _, n in rounds:
            cl.api(1, "PUT", f"/v1/indexes/sat{n}", {"shards": 2})
            routing, shard = routing_for(cl, f"sat{n}", "node-1")
            bulk(cl, 1, f"sat{n}", records, 1024, routing, prefix="k")
            shards.append(shard)
        times = {"normal": [], "high": []}
        for (priority, n), shard in zip(rounds, shards):
            settle(cl.procs)
            res = [{}, {}]
            ths = [threading.Thread(target=lambda i=i: res[i].update(wrk(cl.nodes[i]["url"], 30, 64, script, fg_env)))
                   for i in (0, 1)]
            for t in ths:
                t.start()
            time.sleep(1)
            t0 = time.time()
            mid = cl.api(1, "POST", f"/v1/shards/sat{n}/{shard}/migrate", {"target": "node-2", "priority": priority})["id"]
            m, t1 = wait_migration(cl, mid)
            for t in ths:
                t.join()
            times[priority].append(t1 - t0)
            print(f"RESULT saturated priority={priority} mib={m['bytes_done'] / (1 << 20):.0f} seconds={t1 - t0:.1f} "
                  f"get_req_per_s={res[0].get('req_per_s')}+{res[1].get('req_per_s')} "
                  f"get_p99_ms={res[0].get('p99_ms')}/{res[1].get('p99_ms')}", flush=True)
        print(f"RESULT saturated_high_vs_normal move_time={sum(times['high']) / sum(times['normal']):.2f}x", flush=True)
    finally:
        cl.stop()


def main():
    quick = "--quick" in sys.argv
    parts = [a for i, a in enumerate(sys.argv[1:]) if sys.argv[i] == "--part"] or ["big", "fence", "redis", "adaptive", "saturated"]
    subprocess.run([os.path.join(REPO, "scripts/setup.sh"), "--bench"], check=True)
    if not os.environ.get("BENCH_PREBUILT"):  # set: BENCH_BUILD holds binaries built before (a copy to compare)
        if not os.path.exists(os.path.join(BUILD, "build.ninja")):
            sh(f"meson setup {BUILD} -Dbuildtype=release -Db_ndebug=true")
        sh(f"ninja -C {BUILD} src/node/shardd bench/bulk_bench bench/tls_floor")
    with tempfile.TemporaryDirectory(prefix="shardd-mbench.", dir=os.environ.get("BENCH_DIR", "/tmp")) as work:
        sh(f"{REPO}/scripts/dev-certs.sh {work}/certs node-1 node-2 node-3 node-4")
        for part in parts:
            d = os.path.join(work, part)
            os.makedirs(d)
            os.symlink(os.path.join(work, "certs"), os.path.join(d, "certs"))
            {"big": part_big, "fence": part_fence, "redis": part_redis, "adaptive": part_adaptive,
             "saturated": part_saturated}[part](d, quick)


if __name__ == "__main__":
    main()
