"""NanaSQLite 1.6.2 in-process figures for the SQL workloads nanabench measures (h, i):
query returning 1,000 rows, and execute_many of 10,000 rows. Run in the same sitting as
`nanabench run --only h,i`; needs `pip install nanasqlite==1.6.2` (tools/bench.sh makes a venv).

    python3 tools/bench_sql_anchor.py
"""
import os
import statistics
import tempfile
import time

import nanasqlite


def main():
    with tempfile.TemporaryDirectory() as folder:
        db = nanasqlite.NanaSQLite(os.path.join(folder, "anchor.db"))
        db.create_table("bench_rows", {"id": "INTEGER PRIMARY KEY", "name": "TEXT", "score": "REAL"})
        db.execute_many("INSERT INTO bench_rows (name, score) VALUES (?, ?)", [(f"row {i}", float(i)) for i in range(1000)])
        db.query(table_name="bench_rows", order_by="id")  # warm-up
        rates = []
        for _ in range(50):
            start = time.perf_counter()
            rows = db.query(table_name="bench_rows", order_by="id")
            rates.append(len(rows) / (time.perf_counter() - start))
        print(f"h query_1000_rows: {statistics.median(rates):,.0f} rows/s (median of 50)")
        db.execute("CREATE TABLE many_rows (id INTEGER PRIMARY KEY, name TEXT, score REAL)")
        rates = []
        for rep in range(5):
            rows = [(f"r{rep}-{i}", float(i)) for i in range(10_000)]
            start = time.perf_counter()
            db.execute_many("INSERT INTO many_rows (name, score) VALUES (?, ?)", rows)
            rates.append(10_000 / (time.perf_counter() - start))
        print(f"i execute_many_10000_rows: {statistics.median(rates):,.0f} rows/s (median of 5)")
        db.close()


if __name__ == "__main__":
    main()
