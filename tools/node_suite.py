"""Developer tool: run ONNX backend cases on the CPU provider and print one line per failure.

    python tools/node_suite.py -k conv            # cases whose name matches the regex "conv"
    python tools/node_suite.py -k '^test_add$' -v # also list passing cases

A thin front end over tessera_conformance (fallback mode on the CPU provider), kept for its terse
output while working on kernels. `tessera conformance` is the full tool.
"""

from __future__ import annotations

import argparse
import sys
import warnings

from tessera_conformance import load_cases, run_case


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("-k", default="", help="regex on the case name")
    parser.add_argument("-v", action="store_true", help="also list passing cases")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    counts = {"passed": 0, "failed": 0}
    for case in load_cases(pattern=args.k):
        result = run_case(case, "CPUExecutionProvider", strict=False)
        if result.status == "passed":
            counts["passed"] += 1
            if args.v:
                print(f"ok   {case.name}")
        else:
            counts["failed"] += 1
            print(f"FAIL {case.name}: {result.status}: {result.reason}")
    print(f"{counts['passed']} passed, {counts['failed']} failed")
    return 0 if counts["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
