"""Differential fuzzing campaign: random loop nests, plain Python against polypipe.

    python benchmarks/fuzz.py --count 300 --seed 1 [--workers 2] [--backends c,emulate]
                              [--timeout 60] [--save DIR] [--verbose]

Nests ``seed .. seed + count - 1`` come from ``tests/fuzzgen.py`` (``generate(seed)``) and are
judged by its oracle (``check_nest``) in worker subprocesses, so a nest that kills its process
(segfault, SIGFPE) or hangs past ``--timeout`` is recorded as a crash of that seed and the
worker is replaced. Each worker gets a private kernel cache (``POLYPIPE_CACHE_DIR``), removed at
the end.

Output: a progress line every 10% or so, one line per class, a line of the other counts and,
last, ``nests N mismatches M crashes C`` (a nest counts under the worst class of its backends).
With ``--save DIR``, every mismatch, crash and refusal is written to ``DIR/seed_<n>.txt``
(source, arguments, verdicts) and all verdicts to ``DIR/outcomes.jsonl``. Reproduce one seed
with ``python tests/fuzzgen.py SEED`` (the source) or ``--count 1 --seed SEED --verbose``.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.fuzzgen import CLASSES, Outcome, run_campaign  # noqa: E402

SAVED = ("mismatch", "crash", "refusal")


def summarise(outcomes: list[Outcome]) -> list[str]:
    """The summary lines; the last one is ``nests N mismatches M crashes C``."""
    worst = collections.Counter(o.worst for o in outcomes)
    per_backend: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    agree = collections.Counter()
    for o in outcomes:
        for backend, result in o.backends.items():
            per_backend[backend][result["class"]] += 1
            if result["class"] == "both_raise":
                agree["agree" if result.get("agree") else "disagree"] += 1
    lines = []
    for cls in CLASSES:
        seeds = sorted(o.seed for o in outcomes if o.worst == cls)
        by_backend = ", ".join(f"{b} {c[cls]}" for b, c in sorted(per_backend.items()))
        shown = "" if cls in ("match", "both_raise") or not seeds else \
            "  seeds " + " ".join(map(str, seeds[:40])) + (" ..." if len(seeds) > 40 else "")
        lines.append(f"{cls:<11} {worst[cls]:>5} nests ({by_backend}){shown}")
    unmapped = sum(1 for o in outcomes if o.backends.get("emulate", {}).get("class") == "unmapped")
    mapped = sum(1 for o in outcomes if "emulate" in o.backends) - unmapped
    lines.append(
        f"refusals {worst['refusal']} both_raise {worst['both_raise']} "
        f"(backend verdicts: classes agree {agree['agree']}, disagree {agree['disagree']}) "
        f"frontend_refusals {worst['frontend_refusal']} generator_errors "
        f"{worst['generator_error']} python_timeouts {worst['python_timeout']} "
        f"emulate_mapped {mapped} emulate_unmapped {unmapped}")
    lines.append(f"nests {len(outcomes)} mismatches {worst['mismatch']} crashes {worst['crash']}")
    return lines


def save(outcomes: list[Outcome], directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / "outcomes.jsonl", "w") as handle:
        for o in outcomes:
            handle.write(json.dumps(o.to_json(), default=str) + "\n")
    for o in outcomes:
        if o.worst in SAVED or o.status in ("frontend_refusal", "generator_error"):
            text = o.report() + "\n\narguments:\n" + o.args + "\n"
            (directory / f"seed_{o.seed}.txt").write_text(text)
            (directory / f"seed_{o.seed}.py").write_text(o.source)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--backends", default="c,emulate")
    parser.add_argument("--timeout", type=float, default=60.0,
                        help="seconds one nest may take before it counts as hung")
    parser.add_argument("--save", type=Path, default=None)
    parser.add_argument("--verbose", action="store_true",
                        help="print the report of every non-matching nest as it arrives")
    args = parser.parse_args(argv)
    backends = tuple(b.strip() for b in args.backends.split(",") if b.strip())
    unknown = set(backends) - {"c", "emulate"}
    if unknown:
        parser.error(f"unknown backends {sorted(unknown)} (known: c, emulate)")
    seeds = range(args.seed, args.seed + args.count)
    started = time.monotonic()
    done = [0]
    step = max(1, args.count // 10)
    bad = collections.Counter()

    def on_result(outcome: Outcome) -> None:
        done[0] += 1
        bad[outcome.worst] += 1
        if args.verbose and outcome.worst not in ("match", "both_raise"):
            print(outcome.report(), flush=True)
        if done[0] % step == 0 or done[0] == args.count:
            print(f"[{done[0]}/{args.count}] {time.monotonic() - started:.0f} s: "
                  f"mismatches {bad['mismatch']} crashes {bad['crash']} "
                  f"refusals {bad['refusal']}", flush=True)

    outcomes = run_campaign(seeds, backends, workers=args.workers, timeout=args.timeout,
                            on_result=on_result)
    if args.save is not None:
        save(outcomes, args.save)
    print(f"{len(outcomes)} nests in {time.monotonic() - started:.0f} s "
          f"(backends {','.join(backends)}, seeds {args.seed}..{args.seed + args.count - 1})")
    for line in summarise(outcomes):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
