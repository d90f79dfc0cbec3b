"""`scripts/benchmark_peers.py` without PyTorch (the peers are an optional
extra): its oneDNN primitive listing (the parser, and tfnode's ANODE-block
step run as the benchmark runs it under `ONEDNN_VERBOSE=1`), and the conv
problem without its GroupNorms."""

import os
import subprocess
import sys

import tensorflow as tf

from tests import _script_runner
from tfnode import _onednn

_WEIGHTS = (
    "onednn_verbose,v1,primitive,exec,cpu,convolution,jit:avx2,"
    "backward_weights,src:f32::blocked:acdb::f0 wei:f32:a:blocked:ABcd8b8a::f0"
    " bia:f32::blocked:a::f0 dst:f32::blocked:acdb::f0,,"
    "alg:convolution_direct,mb32_ic32oc32_ih16oh16kh3sh1dh0ph1_iw16ow16kw3sw1"
    "dw0pw1,{ms}"
)
_TORCH_FORWARD = (
    "onednn_verbose,v1,primitive,exec,cpu,convolution,jit:avx2,"
    "forward_training,src:f32:a:blocked:aBcd8b::f0 wei:f32:a:blocked:ABcd8b8a"
    "::f0 bia:f32:a:blocked:a::f0 dst:f32:a:blocked:aBcd8b::f0,"
    "attr-scratchpad:user,alg:convolution_direct,mb32_ic32oc32_ih16oh16kh3sh1"
    "dh0ph1_iw16ow16kw3sw1dw0pw1,1.5"
)
_NOT_EXECUTIONS = [
    "onednn_verbose,v1,info,oneDNN v3.12.0 (commit 80afa71)",
    "onednn_verbose,v1,primitive,info,template:operation,engine,primitive,"
    "implementation,prop_kind,memory_descriptors,attributes,auxiliary,"
    "problem_desc,exec_time",
    "onednn_verbose,v1,primitive,create:cache_miss,cpu,convolution,jit:avx2,"
    "forward_training,src:f32::blocked:acdb::f0,,,mb32,9.0",
    'RESULT{"wall": [0.5]}',
]


class OnednnPrimitivesTest(tf.test.TestCase):
    def test_counts_and_times_executions_per_step(self):
        peers = _script_runner.script("benchmark_peers")
        output = "\n".join(
            _NOT_EXECUTIONS
            + [_WEIGHTS.format(ms=ms) for ms in (9.0, 1.0, 1.2, 1.1)]
            + [_TORCH_FORWARD] * 2
        )
        primitives = peers.onednn_primitives(output, steps=2)
        weights = ("convolution", "backward_weights", "jit:avx2", "acdb")
        forward = ("convolution", "forward_training", "jit:avx2", "aBcd8b")
        self.assertEqual(set(primitives), {weights, forward})
        calls, median, per_step = primitives[weights]
        # Four calls over two steps; the slow first call moves the median
        # only to the middle of the other three.
        self.assertEqual(calls, 2)
        self.assertAllClose(median, 1.15)
        self.assertAllClose(per_step, 2.3)
        self.assertAllClose(primitives[forward], (1, 1.5, 1.5))

    def test_anode_block_step_recomputes_its_forward_convolutions(self):
        if not _onednn.enabled():
            self.skipTest("TensorFlow runs without its oneDNN kernels here.")
        peers = _script_runner.script("benchmark_peers")
        steps, warmup, _ = peers.CONFIGS["anode_block"]
        env = dict(os.environ, ONEDNN_VERBOSE="1")
        proc = subprocess.run(
            [
                sys.executable,
                peers.__file__,
                "--child=tfnode:anode_block",
                "--onednn_primitives",
            ],
            capture_output=True,
            text=True,
            env=env,
            check=False,
            timeout=600,
        )
        self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
        primitives = peers.onednn_primitives(proc.stdout, steps + warmup)
        convolutions = {
            key[1]: calls
            for key, (calls, _, _) in primitives.items()
            if key[0] == "convolution"
        }
        # Two Euler steps of a field with two convolutions: 4 in the solve,
        # 4 more where `anode` recomputes each step in the backward pass,
        # and each of those 4 differentiated for its input and its kernel.
        self.assertEqual(
            convolutions,
            {
                "forward_training": 8,
                "backward_data": 4,
                "backward_weights": 4,
            },
        )


class ConvWithoutNormTest(tf.test.TestCase):
    def test_is_the_conv_field_with_its_group_norms_left_out(self):
        problems = _script_runner.script("standard_problems")
        with_norm, y0 = problems.make_problem("conv")
        without, y0_without = problems.make_problem("conv", group_norm="none")
        self.assertAllEqual(y0, y0_without)
        self.assertLen(without.trainable_variables, 4)  # two convs' weights
        for weight, same in zip(
            without.trainable_variables,
            [v for v in with_norm.trainable_variables if "conv" in v.path],
            strict=True,
        ):
            self.assertAllEqual(weight, same)
        first, second = (
            layer for layer in with_norm.layers if "conv" in layer.name
        )
        self.assertAllClose(
            without(y0), second(tf.nn.relu(first(y0))), rtol=1e-6, atol=1e-6
        )


if __name__ == "__main__":
    tf.test.main()
