#!/usr/bin/env python3
"""Connection churn against a running nanad: what the soak (`nanabench soak`, whose 1,000
connections stay open) cannot show, a leak per connection, per open handle or per abandoned
transaction.

Each of PROCESSES worker processes loops for SECONDS: connect, open one of 20 tables (the next
every 100 rounds), set and get one of its 500 keys, then one of
three endings in turn: close cleanly; begin a transaction, write, commit and close; or begin a
transaction, write and drop the socket without a word (the daemon must roll it back). The parent
samples nanad's RSS from /proc every 5 s and, at the end, checks that every committed write is
there and no abandoned one is.

    tools/churn.py --socket S --pid NANAD_PID [--processes 4] [--seconds 300]

Needs the Python client (tools/nanad-client) importable, e.g. the venv run_tests.sh makes.
"""
import argparse
import multiprocessing
import os
import queue
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "nanad-client"))
from nanad_client import NanaSQLite  # noqa: E402


def worker(index, socket, seconds, results):
    deadline = time.monotonic() + seconds
    rounds = errors = 0
    committed, abandoned = set(), set()
    while time.monotonic() < deadline:
        # Keys and tables are reused, so the cache stops growing and RSS growth would be a leak.
        table = "t%d" % (rounds // 100 % 20)
        key = "w%d-%d" % (index, rounds % 500)
        try:
            db = NanaSQLite("churn.db", table=table, socket=socket)
            db[key] = rounds
            if db[key] != rounds:
                errors += 1
            ending = rounds % 3
            if ending == 0:
                db.close()
            elif ending == 1:
                db.begin_transaction()
                db["c-" + key] = rounds
                db.commit()
                committed.add((table, "c-" + key))
                db.close()
            else:
                db.begin_transaction()
                db["a-" + key] = rounds  # never committed under any name: must never be there
                db._conn.close()  # the client vanishes mid-transaction
                abandoned.add((table, "a-" + key))
        except Exception as error:  # counted, and the loop goes on: a churn run reports, not stops
            errors += 1
            print("worker %d round %d: %r" % (index, rounds, error), file=sys.stderr)
            time.sleep(0.1)  # not a busy loop of errors when the daemon is down
        rounds += 1
    results.put((rounds, errors, committed, abandoned))


def rss_kib(pid):
    try:
        with open("/proc/%d/status" % pid) as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except FileNotFoundError:  # nanad is gone; the workers' errors will say so
        pass
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--socket", required=True)
    parser.add_argument("--pid", type=int, required=True, help="nanad's process id, for its RSS")
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=300)
    args = parser.parse_args()

    results = multiprocessing.Queue()
    workers = [multiprocessing.Process(target=worker, args=(i, args.socket, args.seconds, results)) for i in range(args.processes)]
    start = time.monotonic()
    for process in workers:
        process.start()
    while any(process.is_alive() for process in workers):
        print("t=%4.0fs nanad RSS %6.1f MiB" % (time.monotonic() - start, rss_kib(args.pid) / 1024), flush=True)
        time.sleep(5)
        if results.qsize() == len(workers):
            break
    try:
        outcomes = [results.get(timeout=60) for _ in workers]
    except queue.Empty:
        outcomes = None
    for process in workers:
        process.join(timeout=10)
    died = [process.exitcode for process in workers if process.exitcode != 0]
    if outcomes is None or died:
        print("a worker died without reporting (exit codes %s)" % died, file=sys.stderr)
        sys.exit(1)

    rounds = sum(o[0] for o in outcomes)
    errors = sum(o[1] for o in outcomes)
    committed = set().union(*(o[2] for o in outcomes))
    abandoned = set().union(*(o[3] for o in outcomes))
    missing = present = 0
    for table in sorted({t for t, _ in committed | abandoned}):
        db = NanaSQLite("churn.db", table=table, socket=args.socket)
        keys = set(db.keys())
        missing += sum(1 for t, k in committed if t == table and k not in keys)
        present += sum(1 for t, k in abandoned if t == table and k in keys)
        db.close()
    print("rounds %d (connections), errors %d, keys committed %d (missing %d), keys written in abandoned transactions %d (present %d), nanad RSS at the end %.1f MiB"
          % (rounds, errors, len(committed), missing, len(abandoned), present, rss_kib(args.pid) / 1024))
    sys.exit(0 if errors == missing == present == 0 else 1)


if __name__ == "__main__":
    main()
