import jax.numpy as jnp
import numpy as np
import pytest

from hypernets.layout import Choice, Layout, Weights, bits_from_index, index_from_bits
from hypernets.tasks import DIGITS_VALUES_LAYOUT, GAUSSIAN_LAYOUT


def test_hand_built_bitstring_decodes_to_expected_weights_and_choices():
    lay = GAUSSIAN_LAYOUT
    assert lay.num_bits == 18
    # W1 row-major (2x4), b1 (4), W2 (4), b2, activation
    bits = np.array([1, 0, 0, 1,  0, 1, 1, 0,  1, 1, 0, 0,  0, 0, 1, 1,  1,  1], dtype=np.uint8)
    dec = lay.decode(bits[None])
    np.testing.assert_array_equal(dec["W1"][0], [[1, -1, -1, 1], [-1, 1, 1, -1]])
    np.testing.assert_array_equal(dec["b1"][0], [1, 1, -1, -1])
    np.testing.assert_array_equal(dec["W2"][0], [-1, -1, 1, 1])
    assert dec["b2"][0] == 1 and dec["b2"].shape == (1,)
    assert dec["activation"][0] == 1
    assert lay.option(dec, "activation")[0] == "sigmoid"
    assert lay.describe(bits)["activation"] == "sigmoid"
    np.testing.assert_array_equal(lay.encode(lay.describe(bits)), bits)


def test_two_bit_choice_is_most_significant_first():
    lay = DIGITS_VALUES_LAYOUT
    assert lay.num_bits == 19
    for idx, opt in enumerate([(0, 1), (-1, 1), (-2, 1), (-3, 1)]):
        bits = np.zeros(19, np.uint8)
        bits[0], bits[1] = idx >> 1, idx & 1
        dec = lay.decode(bits[None])
        assert int(dec["weight_values"][0]) == idx
        assert lay.option(dec, "weight_values")[0] == opt


def test_index_order_matches_qsim_probs_wire0_msb():
    # basis index 2^(N-1) has only wire 0 set
    n = 5
    b = bits_from_index(np.array([1 << (n - 1), 1, 6]), n)
    np.testing.assert_array_equal(b, [[1, 0, 0, 0, 0], [0, 0, 0, 0, 1], [0, 0, 1, 1, 0]])
    np.testing.assert_array_equal(index_from_bits(b), [16, 1, 6])
    bj = bits_from_index(jnp.arange(32, dtype=jnp.int32), n, jnp)
    np.testing.assert_array_equal(index_from_bits(np.asarray(bj)), np.arange(32))


def test_qsim_sample_bit_order_agrees_with_layout():
    import jax
    import qsim

    c = qsim.Circuit(3)
    c.x(0)                       # wire 0 -> 1: index 4
    bits = np.asarray(qsim.sample(c, None, shots=4, key=jax.random.key(0)))
    assert (index_from_bits(bits) == 4).all()
    lay = Layout([Weights("w", (3,))])
    np.testing.assert_array_equal(lay.decode(bits)["w"][0], [1, -1, -1])


def test_decode_works_under_jit():
    import jax

    lay = Layout([Weights("a", (2,)), Choice("c", ("x", "y", "z", "w"))])
    f = jax.jit(lambda i: lay.decode(bits_from_index(i, 4, jnp)))
    out = f(jnp.arange(16, dtype=jnp.int32))
    np.testing.assert_array_equal(np.asarray(out["c"]), np.tile(np.arange(4), 4))


@pytest.mark.parametrize("bad", [
    lambda: Choice("c", (1, 2, 3)),
    lambda: Weights("w", (0, 2)),
    lambda: Layout([Weights("w", (2,)), Weights("w", (3,))]),
    lambda: Layout([]),
])
def test_bad_layouts_raise(bad):
    with pytest.raises(ValueError):
        bad()


def test_wrong_bit_count_raises():
    lay = Layout([Weights("w", (3,))])
    with pytest.raises(ValueError, match="3"):
        lay.decode(np.zeros((2, 4), np.uint8))
    with pytest.raises(ValueError, match="circuit has 4 qubits"):
        lay.check_num_qubits(4)
