"""Print scripts/arm64-check.sh's table from its per-release results (standard library only).

stdin: one line per release, "RELEASE<TAB>WALL_SECONDS<TAB>RESULT_JSON" ({} when the check stopped
before its end). Exits 1 when a release failed anywhere: install, check, run, frames or a golden replay.
"""
from __future__ import annotations

import json
import sys


def rows(lines: list[str]) -> tuple[list[str], bool]:
    """Return the table's rows (one per release and emulated CPU) and whether anything failed."""
    out, failed = [], False
    for line in lines:
        rel, wall, raw = line.rstrip("\n").split("\t", 2)
        res = json.loads(raw or "{}")
        if not res:
            out.append(f"| {rel} | - | - | - | - | did not finish (see its check.log) | - | - | {wall} s |")
            failed = True
            continue
        failed |= res["check"] != 0 or res["run"] != 0
        for cpu, g in res["golden"].items():
            if "error" in g:
                out.append(f"| {rel} | - | - | {cpu} | {'ok' if res['check'] == 0 else 'FAIL'} | {g['error']} | - | - | {wall} s |")
                failed = True
                continue
            bundles = g.get("bundles", {})
            verdicts = "; ".join(f"{name} {b.get('version', '')}: {'ok' if b['ok'] else 'FAIL'} ({b['detail']})"
                                 for name, b in bundles.items())
            failed |= not bundles or not all(b["ok"] for b in bundles.values()) or not g.get("frames")
            out.append(f"| {rel} | {g['python']} | {g['runtime']} | {cpu} ({g.get('cpu_model', '')}): {g['kernels']}, "
                       f"{'XNNPACK' if g['xnnpack'] else 'no XNNPACK'} | {'ok' if res['check'] == 0 else 'FAIL'} | "
                       f"{verdicts} | {g.get('frames', 0)} | {res['run_s']:.0f} s | "
                       f"{wall} s (install {res['install_s']:.0f} s) |")
    return out, failed


def main() -> int:
    """Print the table; return 1 when anything failed."""
    table, failed = rows([ln for ln in sys.stdin if ln.strip()])
    print("| release | Python | runtime | emulated CPU: int8 kernels | face-edge check | golden faces per bundle "
          "| frames recorded | face-edge run (30 frames) | wall time |")
    print("|---|---|---|---|---|---|---|---|---|")
    print("\n".join(table))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
