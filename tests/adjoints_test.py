"""The four gradient methods against independent truths."""

import keras
import numpy as np
import tensorflow as tf

import tfnode
from tests import problems
from tests import test_util
from tfnode.solvers.tableaus import TABLEAUS

_SOLVERS = tuple(TABLEAUS)
_ADAPTIVE = tuple(n for n, t in TABLEAUS.items() if t.adaptive)
_T = [0.0, 0.4, 1.0]


def _fixed_or_adaptive(solver, dtype):
    """Step settings of the ANODE tests. They compare the gradients of one
    discrete map, so any grid longer than the checkpoints will do; eager
    revolve with 2 slots takes time quadratic in its length."""
    if TABLEAUS[solver].adaptive:
        return {"rtol": 1e-3 if dtype == tf.float32 else 1e-4}
    return {"steps": 3}


class Field(keras.layers.Layer):
    """`f(t, y; k) = net(y) * k + sin(t) * w * y` with an unused variable."""

    def __init__(self, net, **kwargs):
        super().__init__(**kwargs)
        self.net = net

    def build(self, input_shape):
        self.net.build(input_shape)
        self.w = self.add_weight(shape=(), initializer="ones", name="w")
        self.unused = self.add_weight(shape=(), initializer="ones", name="u")

    def call(self, t, y, k):
        return self.net(y) * k + tf.sin(t) * self.w * y


def _mlp_field(dtype, dim=3):
    keras.utils.set_random_seed(1)
    net = keras.Sequential(
        [
            keras.layers.Dense(8, activation="tanh", dtype=dtype),
            keras.layers.Dense(dim, dtype=dtype),
        ]
    )
    field = Field(net, dtype=dtype)
    field.build((None, dim))
    y0 = tf.random.stateless_normal([2, dim], [1, 2], dtype=dtype)
    return field, y0


def _conv_field(dtype):
    keras.utils.set_random_seed(2)
    net = keras.Sequential(
        [
            keras.layers.Conv2D(4, 3, padding="same", dtype=dtype),
            keras.layers.GroupNormalization(2, dtype=dtype),
            keras.layers.Activation("relu", dtype=dtype),
            keras.layers.Conv2D(4, 3, padding="same", dtype=dtype),
        ]
    )
    field = Field(net, dtype=dtype)
    field.build((None, 5, 5, 4))
    y0 = tf.random.stateless_normal([2, 5, 5, 4], [3, 4], dtype=dtype)
    return field, y0


def _gradients(field, y0, **kwargs):
    """Gradients of a loss on every output time, for y0, args, variables."""
    k = tf.constant(0.8, y0.dtype)
    with tf.GradientTape() as tape:
        tape.watch([y0, k])
        ys = tfnode.odeint(field, y0, _T, args=(k,), **kwargs)
        loss = tf.reduce_sum(ys[1] ** 2) + tf.reduce_sum(tf.sin(ys[-1]))
    variables = [v for v in field.trainable_variables if "u" != v.name]
    return tape.gradient(loss, [y0, k, *variables])


class AnodeTest(test_util.TestCase):
    def _assert_anode_equals_backprop(
        self, make_field, solver, checkpoints, dtype
    ):
        dtype = tf.as_dtype(dtype)
        field, y0 = make_field(dtype)
        kw = _fixed_or_adaptive(solver, dtype)
        ref = _gradients(field, y0, solver=solver, **kw)
        got = _gradients(
            field,
            y0,
            solver=solver,
            adjoint="anode",
            checkpoints=checkpoints,
            **kw,
        )
        for g in got:
            self.assertIsNotNone(g)
        rtol = 1e-5 if dtype == tf.float32 else 1e-10
        self.assertAllCloseRelative(got, ref, rtol)

    @test_util.parameterized.product(
        solver=_SOLVERS,
        checkpoints=(None, 1, 2, 5),
        dtype=("float32", "float64"),
    )
    def test_equals_backprop_mlp(self, solver, checkpoints, dtype):
        self._assert_anode_equals_backprop(
            _mlp_field, solver, checkpoints, dtype
        )

    @test_util.parameterized.product(
        solver=_SOLVERS, checkpoints=(None, 2), dtype=("float32", "float64")
    )
    def test_equals_backprop_conv(self, solver, checkpoints, dtype):
        self._assert_anode_equals_backprop(
            _conv_field, solver, checkpoints, dtype
        )

    def test_checkpointing_recomputes_logarithmically(self):
        field, y0 = _mlp_field(tf.float64)

        @tf.function  # eagerly, the 2,080 evaluations take 20 s
        def gradient(checkpoints, counter):
            with tf.GradientTape() as tape:
                tape.watch(y0)
                ys = tfnode.odeint(
                    lambda t, y: field(t, y, tf.constant(1.0, y.dtype)),
                    y0,
                    [0.0, 1.0],
                    solver="euler",
                    steps=64,
                    adjoint="anode",
                    checkpoints=checkpoints,
                    nfe_counter=counter,
                )
            return tape.gradient(ys, y0)

        nfe = {}
        for checkpoints in (None, 2, 4, 64):
            counter = tfnode.NFECounter()
            gradient(checkpoints, counter)
            nfe[checkpoints] = int(counter.backward_total.numpy())
        # Stored states: each step recomputed once, for its VJP.
        self.assertEqual(nfe[None], 64)
        # K slots leave c = K - 1 free beside y0; with r the least integer
        # with C(c + r, c) >= 64, revolve advances every step at most r
        # times, plus once for its VJP: c = 1 gives r = 63 (quadratic),
        # c = 3 gives r = 5, c = 63 gives r = 1.
        self.assertGreater(nfe[2], 64 * 20)
        self.assertLessEqual(nfe[4], (5 + 1) * 64)
        self.assertLessEqual(nfe[64], (1 + 1) * 64)


class ContinuousTest(test_util.TestCase):
    def test_converges_to_closed_form_gradient_of_linear_ode(self):
        a = tf.Variable(problems.linear_system(dim=4, seed=5))
        y0 = tf.constant(np.random.default_rng(2).normal(size=(2, 4)))
        weights = tf.constant(np.random.default_rng(3).normal(size=(2, 4)))

        def loss_exact():
            return tf.reduce_sum(weights * problems.linear_solution(a, y0, 1.0))

        with tf.GradientTape() as tape:
            tape.watch(y0)
            loss = loss_exact()
        truth = tape.gradient(loss, [y0, a])
        errors = []
        for tol in (1e-3, 1e-6, 1e-9):
            with tf.GradientTape() as tape:
                tape.watch(y0)
                ys = tfnode.odeint(
                    lambda t, y: tf.matmul(y, a, transpose_b=True),
                    y0,
                    [0.0, 1.0],
                    tol=tol,
                    adjoint="continuous",
                )
                loss = tf.reduce_sum(weights * ys[-1])
            got = tape.gradient(loss, [y0, a])
            errors.append(
                max(
                    float(tf.reduce_max(tf.abs(g - e)))
                    for g, e in zip(got, truth, strict=True)
                )
            )
        self.assertLess(errors[1], errors[0] / 10)
        self.assertLess(errors[2], errors[1] / 10)
        self.assertLess(errors[2], 1e-7)

    def test_riccati_gradient(self):
        y0 = tf.constant([0.5], tf.float64)
        with tf.GradientTape() as tape:
            tape.watch(y0)
            ys = tfnode.odeint(
                problems.riccati, y0, [0.0, 1.0], tol=1e-9, adjoint="continuous"
            )
            y1 = ys[-1]
        self.assertAllClose(
            tape.gradient(y1, y0),
            [problems.riccati_grad_y0(1.0, 0.5)],
            rtol=1e-6,
        )

    @test_util.parameterized.named_parameters(
        ("dopri5", "dopri5"), ("tsit5", "tsit5"), ("bosh3", "bosh3")
    )
    def test_seminorm_lowers_backward_nfe(self, solver):
        keras.utils.set_random_seed(4)
        net = keras.Sequential(
            [keras.layers.Dense(64, activation="tanh"), keras.layers.Dense(8)]
        )
        net.build((None, 8))
        y0 = 2 * tf.random.stateless_normal([16, 8], [5, 6])
        t = [0.0, 2.0]

        @tf.function  # hundreds of steps: a graph's loop runs them faster
        def gradients(**kwargs):
            with tf.GradientTape() as tape:
                ys = tfnode.odeint(net, y0, t, solver=solver, **kwargs)
                loss = tf.reduce_mean(ys[-1] ** 2)
            return tape.gradient(loss, net.trainable_variables)

        def run(seminorm):
            counter = tfnode.NFECounter()
            grads = gradients(
                rtol=1e-5,
                atol=1e-8,
                adjoint="continuous",
                seminorm=seminorm,
                nfe_counter=counter,
            )
            return grads, int(counter.backward_total.numpy())

        truth, nfe_default = run(False)
        exact = gradients(tol=1e-9)
        grads, nfe_semi = run(True)
        self.assertLess(nfe_semi, nfe_default)
        self.assertAllCloseRelative(grads, exact, 1e-3)
        self.assertAllCloseRelative(truth, exact, 1e-3)


class ReversibleTest(test_util.TestCase):
    def _error(self, solver, steps):
        field, y0 = _mlp_field(tf.float64)
        ref = _gradients(field, y0, solver=solver, steps=steps)
        got = _gradients(
            field, y0, solver=solver, steps=steps, adjoint="reversible"
        )
        return max(
            float(tf.reduce_max(tf.abs(g - r)) / tf.reduce_max(tf.abs(r)))
            for g, r in zip(got, ref, strict=True)
        )

    def test_euler_error_is_first_order(self):
        errors = [self._error("euler", n) for n in (16, 32, 64)]
        for coarse, fine in zip(errors[:-1], errors[1:], strict=True):
            self.assertBetween(coarse / fine, 1.7, 2.3)

    def test_heun_error_is_at_least_second_order(self):
        # For a field smooth in t the forward and reversed Heun steps'
        # leading errors cancel (the ratio is then about 8); Sander et al.'s
        # O(h^2) bound allows weights that vary step to step.
        errors = [self._error("heun", n) for n in (16, 32, 64)]
        for coarse, fine in zip(errors[:-1], errors[1:], strict=True):
            self.assertGreater(coarse / fine, 3.5)

    def test_heun_is_exact_for_a_linear_autonomous_field_in_the_limit(self):
        self.assertLess(self._error("heun", 64), 1e-4)


class FiniteDifferenceTest(test_util.TestCase):
    @test_util.parameterized.named_parameters(
        ("backprop", "backprop", {"solver": "rk4", "steps": 4}, 1e-7),
        ("anode", "anode", {"solver": "rk4", "steps": 5}, 1e-7),
        # Finite differences also see the accepted steps move with y0; the
        # gradient holds them fixed: they differ by O(rtol).
        ("anode_adaptive", "anode", {"solver": "dopri5", "rtol": 1e-6}, 1e-6),
        (
            "anode_revolve",
            "anode",
            {"solver": "rk4", "steps": 6, "checkpoints": 2},
            1e-7,
        ),
        ("continuous", "continuous", {"solver": "dopri5", "tol": 1e-10}, 1e-6),
        ("reversible", "reversible", {"solver": "heun", "steps": 200}, 1e-5),
    )
    def test_matches_finite_differences(self, adjoint, kwargs, atol):
        w = tf.constant([[0.3, -0.8], [0.9, 0.2]], tf.float64)

        def solve(y0, k):
            ys = tfnode.odeint(
                lambda t, y, k: tf.tanh(tf.matmul(y, w)) * k - 0.1 * y * t,
                y0,
                [0.0, 0.5, 1.0],
                args=(k,),
                adjoint=adjoint,
                **kwargs,
            )
            return tf.reduce_sum(ys[1:] ** 2, axis=0)

        y0 = tf.constant([[0.5, -0.3]], tf.float64)
        k = tf.constant(1.3, tf.float64)
        if kwargs.get("steps", 0) > 100:
            # Traced once, not run eagerly step by step for every difference.
            solve = tf.function(solve)
        theoretical, numerical = tf.test.compute_gradient(
            solve, [y0, k], delta=1e-5
        )
        for th, nu in zip(theoretical, numerical, strict=True):
            self.assertAllClose(th, nu, atol=atol, rtol=atol)


class GradientReachTest(test_util.TestCase):
    @test_util.parameterized.named_parameters(
        ("backprop", "backprop", {"solver": "rk4", "steps": 3}),
        ("anode", "anode", {"solver": "rk4", "steps": 3}),
        ("continuous", "continuous", {"solver": "dopri5"}),
        ("reversible", "reversible", {"solver": "euler", "steps": 3}),
    )
    def test_unused_and_plain_variables(self, adjoint, kwargs):
        plain = tf.Variable(0.5)
        idle = tf.Variable(2.0)  # read by func but without effect

        def f(t, y):
            return -plain * y + 0.0 * idle

        y0 = tf.ones([2])
        with tf.GradientTape() as tape:
            ys = tfnode.odeint(f, y0, [0.0, 1.0], adjoint=adjoint, **kwargs)
            loss = tf.reduce_sum(ys[-1])
        g_plain, g_idle = tape.gradient(loss, [plain, idle])
        self.assertIsNotNone(g_plain)
        self.assertLess(float(g_plain), -0.5)
        self.assertIsNotNone(g_idle)
        self.assertEqual(float(g_idle), 0.0)

    def test_tfp_dopri5_with_the_continuous_adjoint(self):
        y0 = tf.constant([0.5], tf.float64)
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(y0)
            ys = tfnode.odeint(
                problems.riccati,
                y0,
                [0.0, 1.0],
                solver="tfp_dopri5",
                tol=1e-9,
                adjoint="continuous",
            )
            y1 = ys[-1]
            plain = tfnode.odeint(
                problems.riccati, y0, [0.0, 1.0], solver="tfp_dopri5"
            )[-1]
        self.assertAllClose(
            tape.gradient(y1, y0),
            [problems.riccati_grad_y0(1.0, 0.5)],
            rtol=1e-6,
        )
        with self.assertRaisesRegex(ValueError, "adjoint='continuous'"):
            tape.gradient(plain, y0)

    @test_util.parameterized.product(
        adjoint=("backprop", "anode", "continuous", "reversible"),
        mode=("tf_function", "xla"),
    )
    def test_modes_agree_with_eager(self, adjoint, mode):
        field, y0 = _mlp_field(tf.float32)
        kwargs = {"solver": "heun", "steps": 4}
        if adjoint == "continuous":
            kwargs = {"solver": "dopri5", "rtol": 1e-5, "max_num_steps": 64}

        def grads():
            return _gradients(field, y0, adjoint=adjoint, **kwargs)

        eager = grads()
        other = test_util.run_in_mode(grads, mode)
        self.assertAllCloseRelative(other, eager, 1e-4)


if __name__ == "__main__":
    tf.test.main()
