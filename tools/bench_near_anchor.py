#!/usr/bin/env python3
"""The near-cache's figures (issue #20), one script for both sides so that they are measured
alike, keys built before the timed loop so that each figure is the cost of the read itself:

- a plain Python dict read, the cached ``db[key]`` and the cached ``await db.aget(key)``;
- the read-mostly mix from 4 processes (95 % gets on a hot set of 10,000 keys, 5 % sets),
  total ops/s, with the writes that were lost (NanaSQLite: to ``database is locked``).

Usage:  python bench_near_anchor.py [--n 1000000] [--seconds 10]      NanaSQLite 1.6.2 in-process
        python bench_near_anchor.py --socket S [--near-cache off]     the drop-in through nanad
Prints one JSON object.
"""
import argparse, asyncio, json, multiprocessing as mp, os, random, tempfile, time, warnings

warnings.filterwarnings("ignore")

SOCKET = None      # set by --socket: measure nanad_client instead of NanaSQLite
NEAR_CACHE = True


def classes():
    if SOCKET is None:
        from nanasqlite import AsyncNanaSQLite, NanaSQLite
        return NanaSQLite, AsyncNanaSQLite, {}, lambda path: path
    from nanad_client import AsyncNanaSQLite, NanaSQLite
    # A file of the daemon's data folder named like the private one.
    return NanaSQLite, AsyncNanaSQLite, {"socket": SOCKET, "near_cache": NEAR_CACHE}, lambda path: path.replace("/", "-")


def NanaSQLite(path):
    cls, _, extra, name = classes()
    return cls(name(path), **extra)


def AsyncNanaSQLite(path):
    _, cls, extra, name = classes()
    return cls(name(path), **extra)


def per_second(n, seconds):
    return n / seconds if seconds > 0 else 0.0


def cached_reads(path, n):
    db = NanaSQLite(path)
    keys = [f"k{i}" for i in range(10_000)]
    db.batch_update({k: {"i": i, "s": "x" * 20} for i, k in enumerate(keys)})
    for k in keys:
        db[k]
    loop = [keys[i % len(keys)] for i in range(n)]
    plain = {k: {"i": i} for i, k in enumerate(keys)}
    t0 = time.perf_counter()
    for k in loop:
        plain[k]
    dict_rate = per_second(n, time.perf_counter() - t0)
    t0 = time.perf_counter()
    for k in loop:
        db[k]
    get_rate = per_second(n, time.perf_counter() - t0)
    db.close()
    return dict_rate, get_rate, keys


async def async_reads(path, keys, n):
    async with AsyncNanaSQLite(path) as db:
        for k in keys:
            await db.aget(k)
        loop = [keys[i % len(keys)] for i in range(n)]
        t0 = time.perf_counter()
        for k in loop:
            await db.aget(k)
        return per_second(n, time.perf_counter() - t0)


def mix_worker(path, worker, seconds, keys, q, socket, near_cache):
    # Always answers, so that a worker that died on "database is locked" cannot hang the run.
    try:
        q.put(_mix(path, worker, seconds, keys, socket, near_cache))
    except Exception as exc:  # noqa: BLE001
        print(f"worker {worker} failed: {type(exc).__name__}: {exc}", flush=True)
        q.put((0, 0))


def _mix(path, worker, seconds, keys, socket, near_cache):
    global SOCKET, NEAR_CACHE
    SOCKET, NEAR_CACHE = socket, near_cache
    for attempt in range(50):  # NanaSQLite's open itself can fail with "database is locked"
        try:
            db = NanaSQLite(path)
            break
        except Exception:
            time.sleep(0.05)
    else:
        raise RuntimeError("could not open the database")
    rng = random.Random(worker)
    ops = lost = 0
    names = [f"k{i}" for i in range(keys)]
    for k in names:
        db.get(k)
    stop = time.perf_counter() + seconds
    seq = 0
    while time.perf_counter() < stop:
        k = names[rng.randrange(keys)]
        if rng.randrange(100) < 5:
            seq += 1
            try:
                db[k] = {"w": worker, "s": seq}
            except Exception:  # what a user of the library sees: BusyError, database is locked
                lost += 1
        else:
            db.get(k)
        ops += 1
    db.close()
    return ops, lost


def read_mostly_mix(path, processes, seconds, keys):
    db = NanaSQLite(path)
    db.batch_update({f"k{i}": {"i": i} for i in range(keys)})
    db.close()
    q = mp.Queue()
    ps = [mp.Process(target=mix_worker, args=(path, w, seconds, keys, q, SOCKET, NEAR_CACHE)) for w in range(processes)]
    for p in ps:
        p.start()
    results = [q.get() for _ in ps]
    for p in ps:
        p.join()
    ops = sum(r[0] for r in results)
    lost = sum(r[1] for r in results)
    return per_second(ops, seconds), lost


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--socket", help="measure the drop-in (nanad_client) through this nanad")
    parser.add_argument("--near-cache", choices=["on", "off"], default="on")
    args = parser.parse_args()
    global SOCKET, NEAR_CACHE
    SOCKET, NEAR_CACHE = args.socket, args.near_cache == "on"
    folder = tempfile.mkdtemp(prefix="near-anchor-")
    if SOCKET is not None:
        folder = f"near-{os.getpid()}-{int(time.time())}"  # file names in the daemon's data folder
    dict_rate, get_rate, keys = cached_reads(os.path.join(folder, "reads.db"), args.n)
    aget_rate = asyncio.run(async_reads(os.path.join(folder, "reads.db"), keys, args.n // 4))
    mix_rate, lost = read_mostly_mix(os.path.join(folder, "mix.db"), args.processes, args.seconds, args.keys)
    print(json.dumps({
        "impl": "nanasqlite" if SOCKET is None else f"nanad near_cache={args.near_cache}",
        "python_dict_read_per_s": dict_rate, "nanasqlite_cached_get_per_s": get_rate,
        "async_nanasqlite_cached_aget_per_s": aget_rate,
        "read_mostly_mix_ops_per_s": mix_rate, "read_mostly_mix_lost_writes": lost,
        "processes": args.processes, "seconds": args.seconds, "keys": args.keys,
    }))


if __name__ == "__main__":
    main()
