"""dlspec benchmarks: prints figures measured on this machine (not a test: nothing passes or fails,
but a command that fails stops the script with a non-zero exit).

1. `dls check` / `dls compile` wall time on specs/demo.dls, as a user sees it (a subprocess,
   Python start-up included), next to the import floor of dlspec's own dependencies.
2. The same on generated specs of 125 to 1,000 layers, to show how the time grows with size.
3. `dls run` training throughput against a hand-written PyTorch loop for the same model.
4. A markdown summary for the README.

Run: `.venv/bin/python bench/bench.py` (or `make bench`); 1.5 to 2.5 minutes on 2 cores.
"""

from __future__ import annotations

import collections
import io
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
DLS = str(Path(sys.executable).parent / "dls")  # the entry point installed beside this interpreter
DEMO = str(ROOT / "specs" / "demo.dls")
RUNS, RUNS_BIG = 7, 3  # medians of odd counts; fewer for the big specs, which take longer
SIZES = (125, 250, 500, 1000)
THREADS = 2  # torch's default in `dls run` (the cores); set for both loops alike. On a busy machine
# (load at start ≥ 0.5) one thread instead: two OpenMP threads on two shared cores stall at every
# barrier, and throughput swings 20x from run to run, while one thread stays steady.
EPOCHS = 5  # per training run: throughput does not depend on it, and short runs allow more rounds
ROUNDS = 5  # training runs per contender, interleaved so that load from elsewhere hits both alike
TRAIN_BUDGET = 60  # seconds: on a busy machine, stop after the round that passes it (at least 2 rounds)


# --- 1 and 2: command-line wall time ---------------------------------------------------------

def run(cmd: list[str], env: dict | None = None) -> str:
    """Runs `cmd` in the project folder; returns its stderr, or exits with it if the command fails."""
    done = subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False)
    if done.returncode:
        sys.exit(f"failed (exit {done.returncode}): {' '.join(cmd)}\n{done.stderr}")
    return done.stderr


def wall(cmd: list[str], runs: int = RUNS, env: dict | None = None) -> float:
    """Median wall time of `cmd` in seconds, after one untimed run (file cache, bytecode cache)."""
    times = []
    for i in range(runs + 1):
        start = time.perf_counter()
        run(cmd, env)
        if i:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def cli_times(spec: str, runs: int = RUNS) -> dict[str, float]:
    return {"check": wall([DLS, "check", spec], runs),
            "torch": wall([DLS, "compile", spec, "--target", "torch"], runs),
            "keras": wall([DLS, "compile", spec, "--target", "keras"], runs)}


def spec_text(layers: int) -> str:
    """A valid spec of exactly `layers` layers: a residual MLP on the digits' 64 pixels. Each unit is
    a block instance (layernorm, dense, relu, dense, add: 5 layers) and a plain line (3 layers);
    extra relu() lines make up the count."""
    lines, n = [], 2  # the stem dense(64) and the head dense(10)
    while n + 8 <= layers:
        lines += ["res(64)", "dense(64) -> relu() -> layernorm()"]
        n += 8
    lines += ["relu()"] * (layers - n)
    body = "\n".join("  " + line for line in lines)
    return (f"block res(d) {{\n  input x\n  x -> layernorm() -> dense(d) -> relu() -> dense(d) -> h\n  (x, h) -> add()\n}}\n\n"
            f"model Big{layers} {{\n  input x: [64]\n  x -> dense(64)\n{body}\n  dense(10) -> logits\n  output logits\n}}\n\n"
            "train {\n  data: digits()\n  loss: cross_entropy()\n  optimizer: adam(lr=1e-3)\n  epochs: 1\n}\n")


def stages(text: str, repeat: int = 3) -> dict[str, float]:
    """In-process seconds of each stage of `dls check` / `dls compile` (best of `repeat`): free of
    start-up and scheduling noise, so how each stage grows with the spec's size shows clearly."""
    from rich.console import Console

    from dlspec.backends.codegen import generate
    from dlspec.check import check_text
    from dlspec.parser import parse
    from dlspec.summary import summary_table

    checked = check_text(text)
    work = {"parse": lambda: parse(text), "check": lambda: check_text(text),
            "summary table": lambda: Console(file=io.StringIO(), width=100).print(summary_table(checked.graph)),
            "torch codegen": lambda: generate(checked, "torch"), "keras codegen": lambda: generate(checked, "keras")}
    best = {}
    for name, stage in work.items():
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            stage()
            times.append(time.perf_counter() - start)
        best[name] = min(times)
    return best


def import_profile(top: int = 6) -> list[tuple[str, float]]:
    """`python -X importtime` of `dls check`: self time summed per top-level package, largest first."""
    code = f"import sys; from dlspec.cli import main; sys.argv = ['dls', 'check', {DEMO!r}]; main()"
    stderr = run([PYTHON, "-X", "importtime", "-c", code])
    per_package: collections.Counter = collections.Counter()
    for line in stderr.splitlines():
        if line.startswith("import time:") and "self [us]" not in line:
            self_us, _, name = line.removeprefix("import time:").split("|")
            per_package[name.strip().split(".")[0]] += int(self_us) / 1e6
    total = sum(per_package.values())
    return [("all imports", total)] + per_package.most_common(top)


# --- 3: training throughput ------------------------------------------------------------------

def load_digits_split():
    """The demo's data exactly as the generated load_data() makes it: pixels / 16, a seeded 80/20 split."""
    import numpy as np
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(0).permutation(len(x))
    n_val = round(len(x) * 0.2)
    return x[order[n_val:]], y[order[n_val:]]


def hand_model():
    """demo.dls written by hand: conv-bn-relu ×2, maxpool, conv-bn-relu, global average pool,
    dropout, linear; Xavier-uniform weights and zero bias as the spec's default initializer."""
    from torch import nn

    def conv_bn(cin, cout):
        return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

    model = nn.Sequential(*conv_bn(1, 32), *conv_bn(32, 32), nn.MaxPool2d(2), *conv_bn(32, 64),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(64, 10))
    for m in model:
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
    nn.init.zeros_(model[-1].bias)
    return model


def hand_rate(data, epochs: int, batch: int = 32) -> float:
    """Training samples/s of a plain PyTorch loop: adam 3e-3, cosine per step, batch 32, reshuffled
    each epoch. It reads the loss every step, as any loop that logs it does (and as dlspec's does)."""
    import numpy as np
    import torch

    x, y = data
    torch.manual_seed(0)
    model, loss_fn = hand_model(), torch.nn.CrossEntropyLoss()
    steps = math.ceil(len(x) / batch)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 0.5 * (1 + math.cos(math.pi * s / (epochs * steps))))
    rng, elapsed = np.random.default_rng(0), 0.0
    for _ in range(epochs):
        model.train()
        order, running, start = rng.permutation(len(x)), 0.0, time.perf_counter()
        for step in range(steps):
            idx = order[step * batch:(step + 1) * batch]
            optimizer.zero_grad()
            loss = loss_fn(model(torch.from_numpy(x[idx])), torch.from_numpy(y[idx]))
            loss.backward()
            optimizer.step()
            schedule.step()
            running += loss.item() * len(idx)
        elapsed += time.perf_counter() - start
    return len(x) * epochs / elapsed


def dlspec_rate(checked, epochs: int, n_train: int, out: Path) -> tuple[float, float]:
    """`dls run`'s own code (train_run.train: generated module, rich progress) run in-process so
    threads are set as for the hand loop. Returns (training samples/s, metrics.json's figure).

    The per-epoch times in metrics.json include the validation pass; the time spent in the generated
    evaluate() is measured here and taken out, so both contenders are timed on training steps only.
    The console is a terminal writing to /dev/null: the progress bar is drawn as in a shell."""
    from rich.console import Console

    from dlspec import train_run

    in_fit, in_eval = [False], [0.0]
    real_load = train_run.load_generated

    def load_timed(*args, **kwargs):
        module = real_load(*args, **kwargs)
        evaluate, fit = module.evaluate, module.fit

        def timed_evaluate(*a, **k):
            start = time.perf_counter()
            try:
                return evaluate(*a, **k)
            finally:
                if in_fit[0]:  # the validation pass of an epoch, not the final report after training
                    in_eval[0] += time.perf_counter() - start

        def flagged_fit(*a, **k):
            in_fit[0] = True
            try:
                return fit(*a, **k)
            finally:
                in_fit[0] = False

        module.evaluate, module.fit = timed_evaluate, flagged_fit  # fit() finds evaluate in its module
        return module

    train_run.load_generated = load_timed
    try:
        with open(os.devnull, "w") as sink:
            metrics = train_run.train(checked, "torch", epochs, out, Console(file=sink, force_terminal=True, width=100))
    finally:
        train_run.load_generated = real_load
    train_time = sum(h["time"] for h in metrics["history"][-epochs:]) - in_eval[0]
    return n_train * epochs / train_time, metrics["samples_per_second"]


def keras_rate(epochs: int, n_train: int, out: Path) -> float:
    """`dls run --backend keras` as a subprocess (TensorFlow picks its own threads); samples/s from
    metrics.json's epochs without the first (graph tracing). Keras's epoch times include validation."""
    run([DLS, "run", DEMO, "--backend", "keras", "--epochs", str(epochs), "--out", str(out)])
    history = json.loads((out / "metrics.json").read_text())["history"]
    return n_train * (epochs - 1) / sum(h["time"] for h in history[1:])


def training(tmp: Path, threads: int) -> dict:
    import torch

    from dlspec.check import check_file

    torch.set_num_threads(threads)
    checked = check_file(DEMO)
    data = load_digits_split()
    n_train = len(data[0])
    hand_rate(data, 1)  # warm-up: first-call costs (oneDNN kernels, allocator) for neither contender
    dlspec_rate(checked, 1, n_train, tmp / "warm")
    hand, ours, reported = [], [], []
    started = time.perf_counter()
    for r in range(ROUNDS):
        if r >= 2 and time.perf_counter() - started > TRAIN_BUDGET:
            print(f"  (stopped after {r} rounds: over the {TRAIN_BUDGET} s budget, the machine is busy)")
            break
        # Alternate who goes first, so that neither always runs right after the other.
        for who in ("hand", "dls") if r % 2 == 0 else ("dls", "hand"):
            if who == "hand":
                hand.append(hand_rate(data, EPOCHS))
            else:
                rate, own = dlspec_rate(checked, EPOCHS, n_train, tmp / f"run{r}")
                ours.append(rate)
                reported.append(own)
        print(f"  round {r + 1}: hand-written {hand[-1]:8,.0f}/s   dls run {ours[-1]:8,.0f}/s")
    keras = max(keras_rate(4, n_train, tmp / f"keras{i}") for i in range(2))
    return {"hand": hand, "dlspec": ours, "reported": max(reported), "keras": keras}


# --- output ----------------------------------------------------------------------------------

def main() -> None:
    started = time.perf_counter()
    load = os.getloadavg()[0]
    print(f"dlspec bench: {os.cpu_count()} CPUs, load average {load:.2f} at start"
          + ("  (other work is running: figures will be noisy)" if load > 0.5 else ""))

    print("\n1. command-line wall time, specs/demo.dls (median of", RUNS, "runs, Python start-up included)")
    floor = {"python": wall([PYTHON, "-c", "pass"]),
             "imports": wall([PYTHON, "-c", "import lark, pydantic, jinja2"])}
    demo = cli_times(DEMO)
    rows = [("python -c pass", floor["python"], ""),
            ("python -c 'import lark, pydantic, jinja2'", floor["imports"], "the import floor"),
            ("dls check", demo["check"], ""), ("dls compile --target torch", demo["torch"], ""),
            ("dls compile --target keras", demo["keras"], "")]
    cached = None
    if os.environ.get("PYTHONDONTWRITEBYTECODE"):  # then dlspec's own modules are compiled at every start
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        with tempfile.TemporaryDirectory() as pyc:
            cached = wall([DLS, "check", DEMO], env=env | {"PYTHONPYCACHEPREFIX": pyc})
        rows.append(("dls check, bytecode cached", cached, "PYTHONDONTWRITEBYTECODE is set here"))
    for label, seconds, note in rows:
        print(f"  {label:<44}{seconds:.3f} s" + (f"  ({note})" if note else ""))
    print("  where `dls check`'s imports go (self time per top-level package, -X importtime):")
    for name, seconds in import_profile():
        print(f"    {name:<20}{seconds * 1000:6.0f} ms")

    print(f"\n2. generated specs (residual MLP of blocks and plain layers): wall time, median of {RUNS_BIG} runs;"
          " in-process stages, best of 3")
    from dlspec.check import check_file, check_text

    sizes: dict[int, dict[str, float]] = {}
    inside: dict[int, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in SIZES:
            text = spec_text(n)
            layers = len(check_text(text).graph.nodes)
            assert layers == n, (n, layers)  # the generator's count is what dlspec counts
            path = Path(tmp) / f"big{n}.dls"
            path.write_text(text, encoding="utf-8")
            sizes[n], inside[n] = cli_times(str(path), RUNS_BIG), stages(text)
            t = sizes[n]
            print(f"  {n:>5} layers: check {t['check']:.3f} s, compile torch {t['torch']:.3f} s, keras {t['keras']:.3f} s;"
                  " in-process " + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in inside[n].items()))
    # Time per layer, in-process (start-up noise would swamp it): steady if growth is linear.
    small, big = SIZES[0], SIZES[-1]
    print(f"  in-process µs per layer at {small} → {big} layers:")
    for name in inside[big]:
        per_layer = [inside[n][name] / n * 1e6 for n in SIZES]
        growth = per_layer[-1] / per_layer[0]
        verdict = f"NON-LINEAR ({growth:.1f}x per layer)" if growth > 1.5 else "linear"
        print(f"    {name:<16}" + " ".join(f"{x:7.1f}" for x in per_layer) + f"   {verdict}")
    whole = {n: sizes[n]["check"] / n * 1000 for n in SIZES}
    print("  dls check wall time per layer (start-up included): " + ", ".join(f"{n}: {v:.2f} ms" for n, v in whole.items()))

    threads = THREADS if load < 0.5 else 1
    print(f"\n3. training throughput, demo spec, torch threads {threads}, training steps only "
          f"(no data loading, start-up or validation)" + ("  (1 thread: the machine is busy)" if threads != THREADS else ""))
    with tempfile.TemporaryDirectory() as tmp:
        train = training(Path(tmp), threads)
    best_hand, best_ours = max(train["hand"]), max(train["dlspec"])
    ratio = best_ours / best_hand
    print(f"  best of {len(train['hand'])}: hand-written {best_hand:,.0f}/s, dls run {best_ours:,.0f}/s, ratio {ratio:.2f} (goal ≥ 0.95)"
          f"; medians {statistics.median(train['hand']):,.0f} and {statistics.median(train['dlspec']):,.0f}")
    print(f"  dls run's own metrics.json samples_per_second (validation included): {train['reported']:,.0f}/s")
    print(f"  keras backend (dls run --backend keras, epochs 2-4, validation included): {train['keras']:,.0f}/s")

    print(f"\n## Summary (measured on {os.cpu_count()} CPUs; load average {load:.2f} at start)\n")
    print("| spec | layers | `dls check` | `dls compile -t torch` | `dls compile -t keras` |")
    print("|---|---:|---:|---:|---:|")
    print(f"| specs/demo.dls | {len(check_file(DEMO).graph.nodes)} | {demo['check']:.2f} s | {demo['torch']:.2f} s | {demo['keras']:.2f} s |")
    for n, t in sizes.items():
        print(f"| generated | {n:,} | {t['check']:.2f} s | {t['torch']:.2f} s | {t['keras']:.2f} s |")
    print(f"\nWall time including Python start-up; import floor (`import lark, pydantic, jinja2`) {floor['imports']:.2f} s"
          + (f"; `dls check` with a bytecode cache {cached:.2f} s" if cached is not None else "") + ".\n")
    print(f"| demo training, torch, {threads} thread(s), {EPOCHS} epochs | samples/s |")
    print("|---|---:|")
    print(f"| hand-written PyTorch loop | {best_hand:,.0f} |")
    print(f"| `dls run` | {best_ours:,.0f} |")
    print(f"| ratio | {ratio:.2f} |")
    print(f"| `dls run --backend keras` (for information) | {train['keras']:,.0f} |")
    print(f"\n(bench took {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
