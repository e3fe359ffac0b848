"""Per-file counts of NanaSQLite's suite through the drop-in, against real NanaSQLite.

    summary.py RESULTS.xml [--baseline BASELINE.txt] [--excluded EXCLUDED.txt] [--write-baseline OUT]

RESULTS.xml is pytest's --junitxml. BASELINE.txt lists the test ids that pass on real
NanaSQLite 1.6.2 (upstream.sh --real writes it). EXCLUDED.txt lists test ids with a reason
(``<id>  # <reason>``, or a file's path for all of its tests): tests of private internals and
documented differences. Exits 1 if a
test that passes on real NanaSQLite neither passes through the drop-in nor is listed.
"""

from __future__ import annotations

import argparse
import collections
import sys
import xml.etree.ElementTree as ET


def outcomes(path):
    """{test id: passed | failed | error | skipped}, ids as pytest prints them (file::Class::name)."""
    results = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        classname = case.get("classname", "")
        name = case.get("name", "")
        parts = classname.split(".")
        # classname is "tests.test_x.TestClass" or "tests.test_x"; rebuild "tests/test_x.py::TestClass::name"
        module_end = next((i for i, p in enumerate(parts) if p.startswith("test_")), len(parts) - 1)
        file = "/".join(parts[: module_end + 1]) + ".py"
        test_id = "::".join([file] + parts[module_end + 1 :] + [name])
        if case.find("failure") is not None:
            results[test_id] = "failed"
        elif case.find("error") is not None:
            results[test_id] = "error"
        elif case.find("skipped") is not None:
            results[test_id] = "skipped"
        else:
            results[test_id] = "passed"
    return results


def read_list(path):
    entries = {}
    if not path:
        return entries
    for line in open(path, encoding="utf-8"):
        line = line.rstrip("\n")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        test_id, _, reason = line.partition("#")
        entries[test_id.strip()] = reason.strip()
    return entries


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("results")
    parser.add_argument("--baseline")
    parser.add_argument("--excluded")
    parser.add_argument("--write-baseline")
    args = parser.parse_args()
    results = outcomes(args.results)
    if args.write_baseline:
        passed = sorted(t for t, o in results.items() if o == "passed")
        with open(args.write_baseline, "w", encoding="utf-8") as out:
            out.write("# Tests of NanaSQLite 1.6.2's suite that pass on NanaSQLite 1.6.2 itself (upstream.sh --real).\n")
            out.writelines(t + "\n" for t in passed)
        print(f"{len(passed)} of {len(results)} pass on real NanaSQLite; written to {args.write_baseline}")
        return 0
    baseline = set(read_list(args.baseline)) if args.baseline else {t for t, o in results.items()}
    excluded = read_list(args.excluded)
    per_file = collections.defaultdict(lambda: collections.Counter())
    regressions = []
    for test_id in sorted(baseline):
        file = test_id.split("::", 1)[0]
        outcome = results.get(test_id, "not run")
        counts = per_file[file]
        counts["real"] += 1
        if outcome == "passed":
            counts["pass"] += 1
        elif test_id in excluded or test_id.split("[", 1)[0] in excluded or file in excluded:
            # listed by id, by the id of every parametrisation (pytest's --deselect takes it as
            # a prefix), or its whole file
            counts["listed"] += 1
        else:
            counts["regressed"] += 1
            regressions.append((test_id, outcome))
    width = max((len(f) for f in per_file), default=10)
    print(f"{'file':<{width}}  real  pass  listed  regressed")
    for file in sorted(per_file):
        c = per_file[file]
        print(f"{file:<{width}}  {c['real']:>4}  {c['pass']:>4}  {c['listed']:>6}  {c['regressed']:>9}")
    total = collections.Counter()
    for c in per_file.values():
        total.update(c)
    print(f"\n{total['pass']:,} of {total['real']:,} tests that pass on NanaSQLite 1.6.2 pass through the drop-in "
          f"({total['pass'] / max(total['real'], 1):.0%}); {total['listed']} listed with a reason; {total['regressed']} regressions")
    for test_id, outcome in regressions:
        print(f"  regressed ({outcome}): {test_id}")
    stale = [t for t in excluded if results.get(t) == "passed"]  # (a listed file is not run)
    if stale:
        print(f"{len(stale)} listed tests now pass; take them off the list:")
        for t in stale:
            print(f"  {t}")
    return 1 if regressions else 0


if __name__ == "__main__":
    sys.exit(main())
