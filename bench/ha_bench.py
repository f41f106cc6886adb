#!/usr/bin/env python3
"""Control-plane benchmarks for shardd: the embedded plane beside the plane on etcd. Prints
figures; asserts nothing.

  bench/ha_bench.py [--quick] [--part change|failover]...

change:   map change latency: an index created (and dropped) through a node that is not the
          controller, N times, on three nodes with the embedded plane and on three nodes on a
          three-member etcd, in the same run: p50 and p99 of each, and etcd's as a ratio of the
          embedded plane's (the anchor).
failover: five nodes on a three-member etcd, the controller killed with SIGKILL K times (20;
          --quick: 5), each time started again once another node is controller: the time from
          the kill until another node's /v1/health says it is the controller, p50, p99 and max,
          beside the election lease (etcd.election_ttl_s, the floor) as a ratio.
"""
import os
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import migration_bench as mb  # noqa: E402  (the cluster helper)

TTL_S = 2
CONFIG = {"cluster": {"heartbeat_interval_ms": 200, "heartbeat_miss_limit": 3},
          "etcd": {"election_ttl_s": TTL_S, "timeout_ms": 1000}}


class Etcd:
    """A three-member etcd on loopback: free ports, data in `work`."""

    def __init__(self, work, n=3):
        self.members = [(f"e{i}", mb.free_port(), mb.free_port()) for i in range(1, n + 1)]
        initial = ",".join(f"{name}=http://127.0.0.1:{peer}" for name, _, peer in self.members)
        self.procs = []
        for name, client, peer in self.members:
            d = os.path.join(work, name)
            os.makedirs(d, exist_ok=True)
            log = open(os.path.join(d, "etcd.log"), "a")
            self.procs.append(subprocess.Popen(
                ["etcd", "--name", name, "--data-dir", os.path.join(d, "data"),
                 "--listen-client-urls", f"http://127.0.0.1:{client}", "--advertise-client-urls", f"http://127.0.0.1:{client}",
                 "--listen-peer-urls", f"http://127.0.0.1:{peer}", "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
                 "--initial-cluster", initial, "--initial-cluster-state", "new"], stdout=log, stderr=log))
        for _ in range(300):
            if all(self.healthy(c) for _, c, _ in self.members):
                return
            time.sleep(0.1)
        raise RuntimeError("etcd did not become healthy")

    @staticmethod
    def healthy(client):
        try:
            out = subprocess.run(["curl", "-fsS", f"http://127.0.0.1:{client}/health"], capture_output=True, text=True, timeout=2)
            return '"health":"true"' in out.stdout
        except Exception:
            return False

    def url(self):
        return "etcd://" + ",".join(f"127.0.0.1:{c}" for _, c, _ in self.members)

    def stop(self):
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            p.wait()


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(p * (len(v) - 1) + 0.5))]


def change_latency(cl, n, via):
    times = []
    for i in range(n):
        t = time.perf_counter()
        cl.api(via, "PUT", f"/v1/indexes/bench-{i}", {"shards": 2})
        times.append((time.perf_counter() - t) * 1000)
        cl.api(via, "DELETE", f"/v1/indexes/bench-{i}")
    return times


def controller_of(cl, skip=None):
    for i in range(1, len(cl.nodes) + 1):
        if i == skip or cl.procs[i - 1].poll() is not None:
            continue
        try:
            if cl.api(i, "GET", "/v1/health").get("role") == "controller":
                return i
        except Exception:
            pass
    return None


def part_change(work, quick):
    n = 30 if quick else 200
    emb = mb.Cluster(os.path.join(work, "embedded"), 3, CONFIG)
    try:
        embedded = change_latency(emb, n, 2)
    finally:
        emb.stop()
    etcd = Etcd(os.path.join(work, "etcd-change"))
    try:
        cl = mb.Cluster(os.path.join(work, "on-etcd"), 3, CONFIG, meta=etcd.url())
        try:
            while controller_of(cl) is None:
                time.sleep(0.05)
            via = 2 if controller_of(cl) != 2 else 3
            on_etcd = change_latency(cl, n, via)
        finally:
            cl.stop()
    finally:
        etcd.stop()
    e50, e99 = pct(embedded, 0.5), pct(embedded, 0.99)
    t50, t99 = pct(on_etcd, 0.5), pct(on_etcd, 0.99)
    print(f"map change (index create through a member), {n} each, same run:")
    print(f"  embedded (anchor): p50 {e50:.2f} ms  p99 {e99:.2f} ms")
    print(f"  etcd (3 members):  p50 {t50:.2f} ms  p99 {t99:.2f} ms   ratio p50 {t50 / e50:.2f}  p99 {t99 / e99:.2f}")


def part_failover(work, quick):
    kills = 5 if quick else 20
    etcd = Etcd(os.path.join(work, "etcd-failover"))
    try:
        cl = mb.Cluster(os.path.join(work, "failover"), 5, CONFIG, meta=etcd.url())
        try:
            times = []
            for _ in range(kills):
                old = None
                while old is None:
                    old = controller_of(cl)
                    time.sleep(0.02)
                cl.procs[old - 1].send_signal(signal.SIGKILL)
                killed = time.perf_counter()
                cl.procs[old - 1].wait()
                while controller_of(cl, skip=old) is None:
                    time.sleep(0.01)
                times.append((time.perf_counter() - killed) * 1000)
                cl.start(old)
                time.sleep(1)  # the restarted node heartbeats the new controller
        finally:
            cl.stop()
    finally:
        etcd.stop()
    floor = TTL_S * 1000
    print(f"failover over {kills} SIGKILLs of the controller (5 nodes, 3 etcd members, lease {TTL_S} s = anchor):")
    print(f"  p50 {pct(times, 0.5):.0f} ms ({pct(times, 0.5) / floor:.2f}x)  p99 {pct(times, 0.99):.0f} ms "
          f"({pct(times, 0.99) / floor:.2f}x)  max {max(times):.0f} ms ({max(times) / floor:.2f}x)")


def main():
    quick = "--quick" in sys.argv
    parts = [a for i, a in enumerate(sys.argv[1:]) if sys.argv[i] == "--part"] or ["change", "failover"]
    subprocess.run([os.path.join(mb.REPO, "scripts/setup.sh"), "--bench"], check=True)
    if not os.environ.get("BENCH_PREBUILT"):
        if not os.path.exists(os.path.join(mb.BUILD, "build.ninja")):
            mb.sh(f"meson setup {mb.BUILD} -Dbuildtype=release -Db_ndebug=true")
        mb.sh(f"ninja -C {mb.BUILD} src/node/shardd")
    with tempfile.TemporaryDirectory(prefix="shardd-habench.", dir=os.environ.get("BENCH_DIR", "/tmp")) as work:
        mb.sh(f"{mb.REPO}/scripts/dev-certs.sh {work}/certs node-1 node-2 node-3 node-4 node-5")
        for part in parts:
            d = os.path.join(work, part)
            os.makedirs(d)
            for sub in ("embedded", "on-etcd", "failover"):
                os.makedirs(os.path.join(d, sub))
                os.symlink(os.path.join(work, "certs"), os.path.join(d, sub, "certs"))
            {"change": part_change, "failover": part_failover}[part](d, quick)


if __name__ == "__main__":
    main()
