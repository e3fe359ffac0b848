#!/usr/bin/env python3
"""The anchor's NanaSQLite workloads (../../../shared/bench/nanasqlite_anchor.py), through the
drop-in client ``nanad_client`` against a running nanad.

Usage:  nanad --socket /tmp/n.sock --data-dir /tmp/n-data --log-level warning &
        python bench.py --socket /tmp/n.sock [--n 20000] [--async-n 10000] [--procs 4] [--per-proc 3000]

The socket is ``--socket``, else ``$NANAD_SOCKET``, else nanad's default. Prints one line per
figure in the anchor's format, so the two outputs can be read side by side. Counts and timing
are the anchor's, with one exception: the AsyncNanaSQLite figures use ``--async-n`` calls
(10,000 by default, the gather issue #7 asks for) where the anchor uses ``--n // 4``.

Every run writes fresh files in the daemon's data folder (``bench-<pid>-<time>-*.db``), so runs
against one daemon do not see each other's keys. The daemon's cache is shared by all
connections and survives ``close()``, so there is no "cold" get to measure here: the anchor's
"get, cold" (a fresh NanaSQLite instance reading from disk) becomes "get, after reopen".
"""
import argparse, asyncio, collections, multiprocessing as mp, os, time

from nanad_client import AsyncNanaSQLite, NanaSQLite


def rate(label, n, seconds):
    print(f"{label}: {n / seconds:,.0f} ops/s ({seconds / n * 1e6:.1f} us/op)", flush=True)


def timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def single_process(path, n):
    db = NanaSQLite(path)
    rate("set (autocommit each)", n, timed(lambda: [db.__setitem__(f"k{i}", {"i": i, "s": "x" * 20}) for i in range(n)]))
    rate("get, cached", n, timed(lambda: [db[f"k{i}"] for i in range(n)]))
    db.close()
    db = NanaSQLite(path)
    rate("get, after reopen (the daemon's cache stays warm)", n, timed(lambda: [db[f"k{i}"] for i in range(n)]))
    rate("batch_update", n, timed(lambda: db.batch_update({f"b{i}": {"i": i} for i in range(n)})))
    db.close()


async def async_api(path, n):
    async with AsyncNanaSQLite(path) as db:
        t0 = time.perf_counter()
        for i in range(n):
            await db.aset(f"a{i}", {"i": i})
        rate("AsyncNanaSQLite aset, sequential", n, time.perf_counter() - t0)
        t0 = time.perf_counter()
        await asyncio.gather(*[db.aset(f"g{i}", {"i": i}) for i in range(n)])
        rate("AsyncNanaSQLite aset, gather", n, time.perf_counter() - t0)
        t0 = time.perf_counter()
        for i in range(n):
            await db.aget(f"a{i}")
        rate("AsyncNanaSQLite aget, sequential cached", n, time.perf_counter() - t0)


def writer(path, pid, n, q):
    errors = collections.Counter()
    try:
        db = NanaSQLite(path)
    except Exception as e:  # a refused connection counts against every write of this process
        q.put({type(e).__name__: n})
        return
    for i in range(n):
        try:
            db[f"p{pid}_{i}"] = {"i": i}
        except Exception as e:  # what a user of the library would see
            errors[type(e).__name__] += 1
    db.close()
    q.put(dict(errors))


def multi_process(path, procs, per_proc):
    NanaSQLite(path).close()
    q = mp.Queue()
    ps = [mp.Process(target=writer, args=(path, p, per_proc, q)) for p in range(procs)]
    t0 = time.perf_counter()
    for p in ps:
        p.start()
    for p in ps:
        p.join()
    seconds = time.perf_counter() - t0
    errors = collections.Counter()
    for _ in ps:
        errors.update(q.get())
    db = NanaSQLite(path)
    persisted = len(db)
    keys = set(db.keys())
    db.close()
    total = procs * per_proc
    missing = sum(f"p{p}_{i}" not in keys for p in range(procs) for i in range(per_proc))
    print(f"{procs} processes x {per_proc} sets: {persisted}/{total} persisted "
          f"({100 * (total - persisted) / total:.0f}% lost), errors {dict(errors)}, "
          f"{persisted / seconds:,.0f} persisted writes/s; {total - missing}/{total} keys read back", flush=True)
    a, b = NanaSQLite(path), NanaSQLite(path)
    a["shared"] = 1
    _ = b["shared"]
    a["shared"] = 2
    print(f"coherence: second instance B reads {b['shared']} after A wrote 2 "
          f"({'stale' if b['shared'] != 2 else 'fresh'})", flush=True)
    a.close()
    b.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--socket", help="nanad's socket (default: $NANAD_SOCKET, else nanad's default)")
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--async-n", type=int, default=10000)
    ap.add_argument("--procs", type=int, default=4)
    ap.add_argument("--per-proc", type=int, default=3000)
    args = ap.parse_args()
    if args.socket:
        os.environ["NANAD_SOCKET"] = args.socket  # read by every instance, the workers' too
    prefix = f"bench-{os.getpid()}-{time.strftime('%H%M%S')}"
    single_process(f"{prefix}-s.db", args.n)
    asyncio.run(async_api(f"{prefix}-a.db", args.async_n))
    multi_process(f"{prefix}-m.db", args.procs, args.per_proc)


if __name__ == "__main__":
    main()
