"""CLI start-up as a user times it: `avslkit --help` and each command's --help as whole processes,
this checkout against another one (`--baseline DIR`, e.g. an older commit unpacked with
`git archive COMMIT | tar -x -C DIR`), interleaved, median of `--rounds`.

    python benchmarks/bench_startup.py --baseline /tmp/avslkit-before --rounds 7
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from whole_process import interleaved, load_note, ratio_lines

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", type=Path, default=None, help="another checkout to compare with")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--commands", default=",synth,preprocess,eval,train,weights",
                    help="comma-separated commands whose --help is timed ('' = the top level)")
    args = ap.parse_args()
    checkouts = {"this checkout": REPO}
    if args.baseline:
        checkouts["baseline"] = args.baseline.resolve()
    env = {name: {**os.environ, "PYTHONPATH": str(path)} for name, path in checkouts.items()}
    print(f"{sys.executable}; {load_note()} (before)")
    for command in args.commands.split(","):
        argv = [sys.executable, "-m", "avslkit", *([command] if command else []), "--help"]
        series = interleaved({name: argv for name in checkouts}, args.rounds, env=env,
                             cwd={name: str(path) for name, path in checkouts.items()})  # -m puts the cwd first on sys.path
        print(f"avslkit {command + ' ' if command else ''}--help")
        if args.baseline:
            print("\n".join(ratio_lines(series, "this checkout", "baseline")))
        else:
            s = series["this checkout"]
            print(f"  wall {s.wall:.3f} s, CPU {s.cpu:.3f} s (median of {args.rounds})")
    print(f"{load_note()} (after)")


if __name__ == "__main__":
    main()
