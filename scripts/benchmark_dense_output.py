"""Dense output against clamped outputs and torchdiffeq, on the spiral.

```none
y' = (y**3) @ [[-0.1, 2.0], [-2.0, -0.1]],   y(0) = [[2., 0.]],   t in [0, 25]
```

in float64 at `--rtol` / `--atol` (default 1e-6 / 1e-8), with 2, 200 and
1,000 evenly spaced output times. For each solver (`dopri5`, `tsit5`,
`bosh3`) it measures the number of function evaluations (NFE), the wall
time of one forward solve (median of `--repeats`, after a warm-up) and the
maximum absolute error over the outputs against a reference (SciPy's DOP853
at rtol = atol = 1e-12, cross-checked against tfnode's dopri5 at 1e-12)
for:

- tfnode, `interpolate=True` (the default: free steps, outputs on the
  method's dense output), in a `tf.function` traced once per solver;
- tfnode, `interpolate=False` (steps clamped onto every output time);
- torchdiffeq's `odeint` (`dopri5` and `bosh3`; it has no `tsit5`), run in
  a child process that imports PyTorch only.

Issue 10's targets: tfnode's NFE at 1,000 outputs at most 1.05x its NFE at
2, and its maximum error at 1,000 outputs at most twice torchdiffeq's.

```shell
python scripts/benchmark_dense_output.py          # full: ~4 min, 2 CPU cores
python scripts/benchmark_dense_output.py --quick    # seconds
```

Writes `dense_output.md` and `dense_output.json` to `--output_dir`.
"""

import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np
from absl import flags as absl_flags

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _reproduce  # noqa: E402

FLAGS = absl_flags.FlagValues()
define = _reproduce.flag_definer(FLAGS)
_reproduce.define_common_flags(FLAGS, output_dir="docs/benchmarks")
define("list", "outputs", ["2", "200", "1000"], "Numbers of output times.")
define("list", "solvers", ["dopri5", "tsit5", "bosh3"], "Solvers.")
define("float", "rtol", 1e-6, "Relative tolerance.")
define("float", "atol", 1e-8, "Absolute tolerance.")
define("float", "t_max", 25.0, "End of the span.")
define("integer", "repeats", 5, "Timed solves per measurement (median).")
define("integer", "threads", 2, "Intra-op threads of both frameworks.")
define("bool", "torch", True, "Also measure torchdiffeq (child process).")
define(
    "bool",
    "child_torch",
    False,
    "Internal: the torchdiffeq measurements, as JSON.",
)

MATRIX = np.array([[-0.1, 2.0], [-2.0, -0.1]])
Y0 = np.array([[2.0, 0.0]])
TORCH_SOLVERS = ("dopri5", "bosh3")


def output_times(count, t_max):
    return np.linspace(0.0, t_max, count)


def reference(times, rtol=1e-12, atol=1e-12):
    """SciPy DOP853 states at `times`, `(len(times), 1, 2)`."""
    from scipy.integrate import solve_ivp

    solution = solve_ivp(
        lambda t, y: (y**3) @ MATRIX,
        (float(times[0]), float(times[-1])),
        Y0.ravel(),
        method="DOP853",
        t_eval=times,
        rtol=rtol,
        atol=atol,
    )
    return solution.y.T[:, None, :]


def max_error(ys, times):
    return float(np.max(np.abs(np.asarray(ys) - reference(times))))


def _median_time(solve, repeats):
    solve()  # warm-up (traces the tf.function)
    walls = []
    for _ in range(repeats):
        start = time.perf_counter()
        solve()
        walls.append(time.perf_counter() - start)
    return statistics.median(walls)


# --------------------------------------------------------------- tfnode


def measure_tfnode(solvers, counts, t_max, rtol, atol, repeats, threads):
    import tfnode  # first: TensorFlow then loads with oneDNN

    # isort: split
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
    except RuntimeError:
        pass  # TF already started in this process (tests): keep its threads
    matrix = tf.constant(MATRIX, tf.float64)
    y0 = tf.constant(Y0, tf.float64)

    def field(t, y):
        del t
        return tf.matmul(y**3, matrix)

    rows = []
    for solver in solvers:
        for interpolate, count in itertools.product((True, False), counts):
            # One trace per number of outputs: with `interpolate=False`,
            # `odeint` needs the length of `t` statically (see the report).
            @tf.function
            def solve(t, solver=solver, interpolate=interpolate):
                ys, stats = tfnode.odeint(
                    field,
                    y0,
                    t,
                    solver=solver,
                    rtol=rtol,
                    atol=atol,
                    interpolate=interpolate,
                    return_stats=True,
                )
                return ys, stats.num_fn_evals, stats.num_steps

            times = output_times(count, t_max)
            t = tf.constant(times)
            ys, nfe, steps = solve(t)
            wall = _median_time(lambda t=t, s=solve: s(t), repeats)
            rows.append(
                dict(
                    framework="tfnode",
                    solver=solver,
                    interpolate=interpolate,
                    outputs=count,
                    nfe=int(nfe),
                    steps=int(steps),
                    seconds=wall,
                    max_error=max_error(ys.numpy(), times),
                )
            )
            print(_row_line(rows[-1]), flush=True)
    return rows


def tfnode_reference_gap(t_max, count):
    """Max |tfnode dopri5 at rtol = atol = 1e-12 (clamped) - SciPy DOP853|,
    how far apart the two candidate references are."""
    import tfnode  # first: TensorFlow then loads with oneDNN

    # isort: split
    import tensorflow as tf

    times = output_times(count, t_max)
    matrix = tf.constant(MATRIX, tf.float64)
    ys = tf.function(
        lambda: tfnode.odeint(
            lambda t, y: tf.matmul(y**3, matrix),
            tf.constant(Y0, tf.float64),
            tf.constant(times),
            solver="dopri5",
            rtol=1e-12,
            atol=1e-12,
            interpolate=False,
            max_num_steps=200_000,
        )
    )()
    return max_error(ys.numpy(), times)


# ---------------------------------------------------------- torchdiffeq


def measure_torch(solvers, counts, t_max, rtol, atol, repeats, threads):
    import torch
    import torchdiffeq

    torch.set_num_threads(threads)
    matrix = torch.tensor(MATRIX, dtype=torch.float64)
    y0 = torch.tensor(Y0, dtype=torch.float64)

    class Field(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.nfe = 0

        def forward(self, t, y):
            self.nfe += 1
            return (y**3) @ matrix

    field = Field()
    rows = []
    for solver in solvers:
        if solver not in TORCH_SOLVERS:
            continue
        for count in counts:
            times = output_times(count, t_max)
            t = torch.tensor(times, dtype=torch.float64)

            def solve(t=t, solver=solver):
                with torch.no_grad():
                    return torchdiffeq.odeint(
                        field, y0, t, method=solver, rtol=rtol, atol=atol
                    )

            field.nfe = 0
            ys = solve()
            nfe = field.nfe
            wall = _median_time(solve, repeats)
            rows.append(
                dict(
                    framework="torchdiffeq",
                    solver=solver,
                    interpolate=True,
                    outputs=count,
                    nfe=nfe,
                    steps=None,
                    seconds=wall,
                    max_error=max_error(ys.numpy(), times),
                )
            )
            print(_row_line(rows[-1]), file=sys.stderr, flush=True)
    versions = dict(
        torch=torch.__version__, torchdiffeq=torchdiffeq.__version__
    )
    return rows, versions


def run_torch_child():
    """The torchdiffeq rows from a child process (PyTorch only there)."""
    flags = [
        f"--solvers={','.join(FLAGS.solvers)}",
        f"--outputs={','.join(FLAGS.outputs)}",
        f"--rtol={FLAGS.rtol}",
        f"--atol={FLAGS.atol}",
        f"--t_max={FLAGS.t_max}",  # the child applies --quick itself
        f"--repeats={FLAGS.repeats}",
        f"--threads={FLAGS.threads}",
    ]
    if FLAGS.quick:
        flags.append("--quick")
    done = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--child_torch", *flags],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-3:]
        print("torchdiffeq child failed: " + " | ".join(tail), flush=True)
        return None
    for line in done.stderr.splitlines():
        print(line, flush=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


# -------------------------------------------------------------- report


def _row_line(row):
    mode = (
        ("interpolated" if row["interpolate"] else "clamped")
        if row["framework"] == "tfnode"
        else "torchdiffeq"
    )
    return (
        f"{row['solver']:7s} {mode:13s} outputs {row['outputs']:5d}  NFE "
        f"{row['nfe']:6d}  {row['seconds'] * 1e3:8.1f} ms  max error "
        f"{row['max_error']:.2e}"
    )


def find_row(rows, framework, solver, interpolate, count):
    """The row of one measurement, or `None`."""
    for row in rows:
        key = (row["framework"], row["solver"], row["interpolate"])
        if key + (row["outputs"],) == (framework, solver, interpolate, count):
            return row
    return None


def summarise(rows, solvers, counts):
    """Per solver: NFE ratio (most / fewest outputs) and error ratio at the
    most outputs, tfnode (interpolated) over torchdiffeq."""

    def find(framework, solver, interpolate, count):
        return find_row(rows, framework, solver, interpolate, count)

    lo, hi = min(counts), max(counts)
    summary = {}
    for solver in solvers:
        few = find("tfnode", solver, True, lo)
        many = find("tfnode", solver, True, hi)
        torch_many = find("torchdiffeq", solver, True, hi)
        entry = dict(
            nfe_ratio=many["nfe"] / few["nfe"],
            tfnode_max_error=many["max_error"],
            clamped_max_error=find("tfnode", solver, False, hi)["max_error"],
        )
        if torch_many is not None:
            entry.update(
                torch_max_error=torch_many["max_error"],
                error_ratio=many["max_error"] / torch_many["max_error"],
                torch_nfe_ratio=torch_many["nfe"]
                / find("torchdiffeq", solver, True, lo)["nfe"],
            )
        summary[solver] = entry
    return summary


def report(results):
    rows, counts = results["rows"], results["outputs"]

    def cell(framework, solver, interpolate, count, key):
        row = find_row(rows, framework, solver, interpolate, count)
        if row is None:
            return "-"
        value = row[key]
        if key == "seconds":
            return f"{value * 1e3:.0f}"
        if key == "max_error":
            return f"{value:.2e}"
        return f"{value:,}"

    lines = [
        "# Dense output: NFE, time and error against the number of outputs",
        "",
        "The spiral `y' = (y**3) @ [[-0.1, 2], [-2, -0.1]]`, `y0 = [[2, 0]]`,"
        f" t in [0, {results['t_max']:g}], float64, rtol {results['rtol']:g}, "
        f"atol {results['atol']:g}, evenly spaced output times. tfnode "
        "`interpolate=True` (default) steps freely and evaluates the outputs "
        "on the method's dense output; `interpolate=False` clamps the steps "
        "onto every output time. Times: one forward solve, median of "
        f"{results['repeats']} after a warm-up, tfnode in a `tf.function` "
        "(traced once per solver, mode and number of outputs), torchdiffeq "
        "under `no_grad`; "
        f"{results['threads']} intra-op threads each. Max error: max |y - "
        "reference| over all outputs, reference SciPy DOP853 at rtol = atol "
        f"= 1e-12 (it differs from tfnode dopri5 at 1e-12 by "
        f"{results['reference_gap']:.1e}).",
        "",
        "```shell",
        results["command"],
        "```",
        "",
        f"Machine: {results['machine']}. Versions: "
        + ", ".join(f"{k} {v}" for k, v in results["versions"].items())
        + ".",
        "",
    ]
    header = [
        "solver",
        "outputs",
        "tfnode NFE",
        "tfnode ms",
        "tfnode max error",
        "clamped NFE",
        "clamped ms",
        "clamped max error",
        "torchdiffeq NFE",
        "torchdiffeq ms",
        "torchdiffeq max error",
    ]
    table = []
    for solver in results["solvers"]:
        for count in counts:
            table.append(
                [solver, f"{count:,}"]
                + [
                    cell("tfnode", solver, True, count, k)
                    for k in ("nfe", "seconds", "max_error")
                ]
                + [
                    cell("tfnode", solver, False, count, k)
                    for k in ("nfe", "seconds", "max_error")
                ]
                + [
                    cell("torchdiffeq", solver, True, count, k)
                    for k in ("nfe", "seconds", "max_error")
                ]
            )
    lines.append(_reproduce.markdown_table(header, table))
    lines += [
        "",
        "The machine is shared with other jobs: identical work has taken up "
        "to 2x longer from one run to the next, so read NFE first and the "
        "times as rough. With 2 outputs, interpolated and clamped solves "
        "take the same steps. Interpolated outputs cost no evaluations but "
        "some time per output (evaluating the interpolant in the output "
        "loop).",
    ]
    lines += [
        "",
        "Targets of issue 10 (at the most outputs, "
        f"{max(counts):,}; tfnode interpolated):",
        "",
    ]
    summary_rows = []
    for solver, entry in results["summary"].items():
        ratio = entry.get("error_ratio")
        summary_rows.append(
            [
                solver,
                f"{entry['nfe_ratio']:.3f}",
                "yes" if entry["nfe_ratio"] <= 1.05 else "no",
                f"{entry['tfnode_max_error']:.2e}",
                f"{entry['torch_max_error']:.2e}" if ratio is not None else "-",
                f"{ratio:.2f}" if ratio is not None else "-",
                ("yes" if ratio <= 2.0 else "no") if ratio is not None else "-",
            ]
        )
    lines.append(
        _reproduce.markdown_table(
            [
                "solver",
                f"NFE({max(counts):,}) / NFE({min(counts):,})",
                "<= 1.05",
                "tfnode max error",
                "torchdiffeq max error",
                "error ratio",
                "<= 2",
            ],
            summary_rows,
        )
    )
    return "\n".join(lines)


def _machine(threads):
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"{cpu}, {os.cpu_count()} cores, no GPU; shared with other jobs "
        f"(1-minute load average {load:.1f} at the end of the run); "
        f"Python {platform.python_version()}"
    )


def main(argv):
    _reproduce.parse_flags(FLAGS, argv)
    counts = sorted(int(c) for c in FLAGS.outputs)
    solvers, repeats, t_max = list(FLAGS.solvers), FLAGS.repeats, FLAGS.t_max
    if FLAGS.quick:
        counts, solvers, repeats, t_max = [2, 50], ["dopri5"], 1, 5.0
    # The arguments of measure_tfnode and measure_torch.
    setup = (
        solvers,
        counts,
        t_max,
        FLAGS.rtol,
        FLAGS.atol,
        repeats,
        FLAGS.threads,
    )
    if FLAGS.child_torch:
        rows, versions = measure_torch(*setup)
        print(json.dumps(dict(rows=rows, versions=versions)))
        return 0
    start = time.time()
    rows = measure_tfnode(*setup)
    import tfnode  # first: TensorFlow then loads with oneDNN

    # isort: split
    import tensorflow as tf

    versions = dict(tensorflow=tf.__version__, tfnode=tfnode.__version__)
    if FLAGS.torch:
        child = run_torch_child()
        if child is not None:
            rows += child["rows"]
            versions.update(child["versions"])
    results = dict(
        quick=FLAGS.quick,
        solvers=solvers,
        outputs=counts,
        rtol=FLAGS.rtol,
        atol=FLAGS.atol,
        t_max=t_max,
        repeats=repeats,
        threads=FLAGS.threads,
        rows=rows,
        summary=summarise(rows, solvers, counts),
        reference_gap=tfnode_reference_gap(t_max, max(counts)),
        versions=versions,
        command="python scripts/benchmark_dense_output.py"
        + (" --quick" if FLAGS.quick else ""),
        machine=_machine(FLAGS.threads),
    )
    results["seconds"] = time.time() - start
    markdown = report(results)
    _reproduce.write_results(
        FLAGS.output_dir, "dense_output", results, markdown
    )
    print(markdown)
    print(f"\nTotal {results['seconds']:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
