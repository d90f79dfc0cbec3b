"""The Butcher tableaux: validation and order conditions."""

import tensorflow as tf

from tests import test_util
from tfnode.solvers.tableau import ButcherTableau
from tfnode.solvers.tableau import order_condition_residuals
from tfnode.solvers.tableau import rooted_trees
from tfnode.solvers.tableaus import TABLEAUS

_NAMES = tuple((name, name) for name in TABLEAUS)


class RootedTreesTest(test_util.TestCase):
    def test_counts_match_oeis_a000081(self):
        counts = [len(rooted_trees(n)) for n in range(1, 7)]
        self.assertEqual(counts, [1, 1, 2, 4, 9, 20])


class TableauOrderTest(test_util.TestCase):
    @test_util.parameterized.named_parameters(*_NAMES)
    def test_satisfies_order_conditions_of_its_order(self, name):
        tab = TABLEAUS[name]
        residuals = order_condition_residuals(tab.b, tab.a, tab.order)
        worst = max(abs(r) for r in residuals.values())
        # Tsitouras' coefficients are published to 16 digits.
        self.assertLess(worst, 1e-13 if name != "tsit5" else 1e-12)

    @test_util.parameterized.named_parameters(*_NAMES)
    def test_order_is_not_higher(self, name):
        tab = TABLEAUS[name]
        residuals = order_condition_residuals(tab.b, tab.a, tab.order + 1)
        self.assertGreater(max(abs(r) for r in residuals.values()), 1e-6)

    @test_util.parameterized.named_parameters(
        *((n, n) for n, t in TABLEAUS.items() if t.adaptive)
    )
    def test_embedded_weights_have_embedded_order(self, name):
        tab = TABLEAUS[name]
        residuals = order_condition_residuals(
            tab.b_embedded, tab.a, tab.embedded_order
        )
        self.assertLess(max(abs(r) for r in residuals.values()), 1e-12)
        higher = order_condition_residuals(
            tab.b_embedded, tab.a, tab.embedded_order + 1
        )
        self.assertGreater(max(abs(r) for r in higher.values()), 1e-6)

    def test_fsal_methods(self):
        fsal = {name for name, tab in TABLEAUS.items() if tab.fsal}
        self.assertEqual(fsal, {"bosh3", "dopri5", "tsit5"})


class TableauValidationTest(test_util.TestCase):
    def test_row_must_sum_to_node(self):
        with self.assertRaisesRegex(ValueError, "row 1 of a sums to"):
            ButcherTableau("bad", 2, a=((), (0.4,)), b=(0.0, 1.0), c=(0, 0.5))

    def test_weights_must_sum_to_one(self):
        with self.assertRaisesRegex(ValueError, "weights b sum to"):
            ButcherTableau("bad", 2, a=((), (0.5,)), b=(0.2, 0.7), c=(0, 0.5))

    def test_embedded_weights_must_sum_to_one(self):
        with self.assertRaisesRegex(ValueError, "embedded weights"):
            ButcherTableau(
                "bad",
                2,
                a=((), (0.5,)),
                b=(0.0, 1.0),
                c=(0, 0.5),
                b_error=(0.1, 0.0),
                embedded_order=1,
            )

    def test_must_be_explicit(self):
        with self.assertRaisesRegex(ValueError, "explicit method"):
            ButcherTableau("bad", 1, a=((0.0,),), b=(1.0,), c=(0.0,))


if __name__ == "__main__":
    tf.test.main()
