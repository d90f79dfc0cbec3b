"""What every gradient method shares: the problem it solves and the
`tf.custom_gradient` plumbing of the memory-saving methods."""

import abc
import contextlib
import dataclasses

import keras
import tensorflow as tf
from tensorflow.python.eager import record

__all__ = ["CustomGradientMethod", "GradientMethod", "Problem"]


@dataclasses.dataclass(frozen=True)
class Problem:
    """A validated solve, as `odeint` hands it to a gradient method.

    Attributes:
        func: `func(t, y, args) -> dy/dt` on flat lists of tensors.
        y0: The flattened initial state.
        t: 1-D tensor of output times.
        args: Flattened extra tensors passed to `func` (differentiable).
        settings: The validated `SolveSettings`.
        nfe_counter: Object with `update_forward(n)` / `update_backward(n)`,
            or `None`.
    """

    func: object
    y0: list
    t: tf.Tensor
    args: list
    settings: object
    nfe_counter: object = None

    @property
    def solver(self):
        return self.settings.solver

    def field(self, args):
        """`func` with `args` bound: `field(t, y) -> dy/dt`."""
        return lambda t, y: self.func(t, y, args)

    def record_backward_nfe(self, nfe):
        if self.nfe_counter is not None:
            self.nfe_counter.update_backward(nfe)


class GradientMethod(abc.ABC):
    """A way of differentiating through `odeint`, chosen by `adjoint=`.

    Subclasses are frozen dataclasses whose fields are the method's options
    (so a configured method is a value: comparable, hashable, serialisable),
    and define `name`, `solve` and, where some solvers or settings are
    unsupported, `validate`. `shorthand` maps `odeint`'s flat keyword
    options (e.g. `adjoint_rtol`) to the fields (e.g. `rtol`).
    """

    name = None
    shorthand = {}

    def validate(self, settings):
        """Raises `ValueError` for settings this method cannot serve."""
        del settings

    def grids_under_xla(self, settings):
        """The solve settings whose grids the backward pass of a solve
        under `settings` steps through, taking the field's VJP each step.

        Under XLA a short static fixed grid runs unrolled (see
        `tfnode.stepping.unrolled_step_count`), and XLA:CPU compiles a
        convolution's VJP well only there. `None` when the backward pass
        runs `tf.while_loop`s whatever the grid.
        """
        del settings

    def configure(self, **options):
        """A copy configured by `odeint`'s flat keyword options.

        `None` and `False` values of options this method does not take are
        ignored (they are every option's default).
        """
        changes = {}
        for key, value in options.items():
            if key in self.shorthand:
                changes[self.shorthand[key]] = value
            elif value is not None and value is not False:
                raise ValueError(
                    f"{key}= is an option of another gradient method; "
                    f"adjoint={self.name!r} takes "
                    f"{', '.join(self.shorthand) or 'no options'}."
                )
        return dataclasses.replace(self, **changes) if changes else self

    def get_config(self):
        """`{"name": ..., <option>: <value>, ...}`, JSON-serialisable."""
        config = {"name": self.name}
        for field in dataclasses.fields(self):
            config[field.name] = self._serialize_option(
                getattr(self, field.name)
            )
        return config

    def _serialize_option(self, value):
        return value

    @abc.abstractmethod
    def solve(self, problem):
        """Returns `(ys, stats)`: flat stacked states at `t` and forward
        `SolveStats`, differentiable by this method."""


@contextlib.contextmanager
def _without_state_updates():
    """Runs `func` again without committing its state updates.

    Recomputations in a backward pass call `func` (with `training=True` where
    the layer was), so BatchNormalization would update its moving statistics
    a second time. Inside a `keras.StatelessScope` those assignments are
    collected and dropped: moving statistics are updated by the forward pass
    only.
    """
    with keras.StatelessScope():
        yield


class CustomGradientMethod(GradientMethod):
    """A gradient method implemented as a `tf.custom_gradient`.

    Subclasses implement `forward(problem, y0, args)` returning
    `(ys, stats, saved)` and `backward(problem, saved, ys, grad_ys, y0, args,
    variables)` returning `(grad_y0, grad_args, grad_variables, nfe)`.
    The forward runs with gradient recording stopped, so outer tapes keep
    nothing of it; the variables read by `func` are found by
    `tf.custom_gradient` and differentiated in `backward`.
    """

    def solve(self, problem):
        n_y = len(problem.y0)
        stats_box = []

        @tf.custom_gradient
        def solve_with_custom_gradient(*inputs):
            y0, args = list(inputs[:n_y]), list(inputs[n_y:])
            with record.stop_recording():
                ys, stats, saved = self.forward(problem, y0, args)
            stats_box.append(stats)

            def grad(*grad_ys, variables=None):
                grad_ys = [
                    tf.zeros_like(y) if g is None else g
                    for y, g in zip(ys, grad_ys, strict=True)
                ]
                variables = list(variables or [])
                with _without_state_updates():
                    grad_y0, grad_args, grad_vars, nfe = self.backward(
                        problem, saved, ys, grad_ys, y0, args, variables
                    )
                problem.record_backward_nfe(nfe)
                grad_vars = [
                    tf.zeros_like(v) if g is None else g
                    for v, g in zip(variables, grad_vars, strict=True)
                ]
                grad_inputs = [
                    tf.zeros_like(x) if g is None else g
                    for x, g in zip(inputs, grad_y0 + grad_args, strict=True)
                ]
                return grad_inputs, grad_vars

            return ys, grad

        ys = solve_with_custom_gradient(*problem.y0, *problem.args)
        return list(ys), stats_box[0]

    def forward(self, problem, y0, args):
        """Returns `(ys, stats, saved)`; by default a plain solve that saves
        nothing beyond the outputs."""
        ys, stats, _ = problem.solver.integrate(
            problem.field(args), y0, problem.t, problem.settings
        )
        return ys, stats, None

    @abc.abstractmethod
    def backward(self, problem, saved, ys, grad_ys, y0, args, variables):
        """Returns `(grad_y0, grad_args, grad_variables, nfe)`."""


def vjp(fn, primals, variables, cotangents):
    """Vector-Jacobian product of `fn(*primals)` (a list of tensors).

    Args:
        fn: Callable of the primals returning a list of tensors.
        primals: List of lists of tensors to differentiate with respect to.
        variables: List of variables to differentiate with respect to.
        cotangents: List of tensors, one per output of `fn`.

    Returns:
        outputs: `fn(*primals)`.
        grads: One list of gradients per entry of `primals` (zeros, never
            `None`), then the list of variable gradients.
    """
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        for group in primals:
            tape.watch(group)
        tape.watch(variables)
        outputs = fn(*primals)
    flat = [x for group in primals for x in group] + list(variables)
    grads = tape.gradient(
        outputs,
        flat,
        output_gradients=cotangents,
        unconnected_gradients=tf.UnconnectedGradients.ZERO,
    )
    out, start = [], 0
    for group in primals:
        out.append(grads[start : start + len(group)])
        start += len(group)
    out.append(grads[start:])
    return outputs, out


def step_vjp(
    problem, t_n, h_n, y_n, args, variables, cotangent, stage_cotangents=None
):
    """VJP of one solver step `y_n -> y_{n+1}` with respect to `y_n`, the
    `args` and the `variables`.

    Args:
        stage_cotangents: Optional cotangents of the step's stages (one list
            of tensors per stage), where outputs interpolated inside the
            step depend on them.

    Returns:
        grad_y: Cotangent of `y_n`.
        grad_args: Gradients of `args` (list).
        grad_variables: Gradients of `variables` (list).
        num_evals: Calls of `func` made (the step is recomputed).
    """
    evals = []

    def step(y, a):
        y1, _, _, n, stages = problem.solver.step_with_stages(
            problem.field(a), t_n, y, h_n
        )
        evals.append(n)
        if stage_cotangents is None:
            return y1
        return list(y1) + [k for stage in stages for k in stage]

    if stage_cotangents is not None:
        cotangent = list(cotangent) + [
            c for stage in stage_cotangents for c in stage
        ]
    _, (grad_y, grad_args, grad_vars) = vjp(
        step, [y_n, args], variables, cotangent
    )
    return grad_y, grad_args, grad_vars, evals[0]


def add(xs, ys):
    """Leafwise sum of two lists of tensors."""
    return [x + y for x, y in zip(xs, ys, strict=True)]


def dot(xs, ys):
    """`sum_leaf sum(x * y)` of two lists of tensors, a scalar in the dtype
    of `xs`."""
    return tf.add_n(
        [
            tf.reduce_sum(x * tf.cast(y, x.dtype))
            for x, y in zip(xs, ys, strict=True)
        ]
    )


def at(stacked, index):
    """Entry `index` of every tensor of a list of stacked tensors."""
    return [tf.gather(s, index) for s in stacked]
