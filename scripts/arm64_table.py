"""Print scripts/arm64-check.sh's table from its per-release results (standard library only).

stdin: one line per release, "RELEASE<TAB>WALL_SECONDS<TAB>RESULT_JSON" ({} when the check stopped
before its end). Exits 1 when a release failed anywhere: install, check, run, frames or a golden replay.
"""
from __future__ import annotations

import json
import sys


def recognized(res: dict) -> bool:
    """Return True when enrollment and recognition on the demo frames ran and named the one face."""
    rec = res.get("recognize") or {}
    return rec.get("exit") == 0 and rec.get("names") == ["astronaut"]


def recognize_cell(res: dict) -> str:
    """Return the table cell of the enroll + recognize step."""
    rec = res.get("recognize") or {}
    if not rec:
        return "not run"
    said = ", ".join(f"{n or 'unknown'} {d:.3f}" if d is not None else f"{n or 'unknown'}"
                     for n, d in zip(rec.get("names", []), rec.get("distances", []))) or "no face"
    return f"{'ok' if recognized(res) else 'FAIL'} ({said}; exit {rec.get('exit')})"


def counts(lines: list[str]) -> tuple[int, int]:
    """Return (passed, failed) over the checks: per release install, check and run; per release,
    CPU and bundle the golden replay."""
    passed = failed = 0
    for line in lines:
        res = json.loads(line.rstrip("\n").split("\t", 2)[2] or "{}")
        if not res:
            failed += 1
            continue
        steps = [res["check"] == 0, res["run"] == 0, recognized(res)]
        for g in res["golden"].values():
            steps += [bool(g.get("frames"))] if "error" not in g else [False]
            steps += [b["ok"] for b in g.get("bundles", {}).values()]
        passed += sum(steps) + 1  # + the install, which got this far
        failed += len(steps) - sum(steps)
    return passed, failed


def rows(lines: list[str]) -> tuple[list[str], bool]:
    """Return the table's rows (one per release and emulated CPU) and whether anything failed."""
    out, failed = [], False
    for line in lines:
        rel, wall, raw = line.rstrip("\n").split("\t", 2)
        res = json.loads(raw or "{}")
        if not res:
            out.append(f"| {rel} | - | - | - | - | did not finish (see its check.log) | - | - | - | {wall} s |")
            failed = True
            continue
        failed |= res["check"] != 0 or res["run"] != 0 or not recognized(res)
        for cpu, g in res["golden"].items():
            if "error" in g:
                out.append(f"| {rel} | - | - | {cpu} | {'ok' if res['check'] == 0 else 'FAIL'} | {g['error']} | - | - | "
                           f"{recognize_cell(res)} | {wall} s |")
                failed = True
                continue
            bundles = g.get("bundles", {})
            verdicts = "; ".join(f"{name} {b.get('version', '')}: {'ok' if b['ok'] else 'FAIL'} ({b['detail']})"
                                 for name, b in bundles.items())
            failed |= not bundles or not all(b["ok"] for b in bundles.values()) or not g.get("frames")
            out.append(f"| {rel} | {g['python']} | {g['runtime']} | {cpu} ({g.get('cpu_model', '')}): {g['kernels']}, "
                       f"{'XNNPACK' if g['xnnpack'] else 'no XNNPACK'} | {'ok' if res['check'] == 0 else 'FAIL'} | "
                       f"{verdicts} | {g.get('frames', 0)} | {res['run_s']:.0f} s | {recognize_cell(res)} | "
                       f"{wall} s (install {res['install_s']:.0f} s) |")
    return out, failed


def main() -> int:
    """Print the table; return 1 when anything failed."""
    lines = [ln for ln in sys.stdin if ln.strip()]
    table, failed = rows(lines)
    print("| release | Python | runtime | emulated CPU: int8 kernels | face-edge check | golden faces per bundle "
          "| frames recorded | face-edge run (30 frames) | enroll + recognize | wall time |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(table))
    passed, failures = counts(lines)
    print(f"arm64: {passed} passed, {failures} failed")
    return 1 if failed or failures else 0


if __name__ == "__main__":
    sys.exit(main())
