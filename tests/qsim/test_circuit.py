"""Circuit builder: slots, composition, inverse, depth and op counts."""

import jax.numpy as jnp
import numpy as np
import pytest

import qsim


def test_slots_fixed_values_and_sharing():
    c = qsim.Circuit(3)
    c.h(0).cnot(0, 1)
    c.ry(2)
    c.rz(1, value=0.25)
    c.rx(0, param=0)
    c.u3(1)
    assert c.num_params == 4
    assert c.slot_usage()[0] == [(2, 0), (4, 0)]
    k = c.new_param()
    c.crx(0, 2, param=k)
    assert c.num_params == 5


def test_append_inverse_depth_count_ops():
    a = qsim.Circuit(2)
    a.h(0); a.cnot(0, 1); a.ry(1)
    b = qsim.Circuit(3)
    b.append(a, wires=[2, 0])
    b.append(a, wires=[0, 1])
    assert b.num_params == 2
    b.append(a, wires=[1, 2], share_params=True)
    assert b.num_params == 2
    assert b.count_ops() == {"H": 3, "CNOT": 3, "RY": 3}
    assert b.depth == 9
    assert (a + a).num_params == 2
    p = jnp.asarray([0.3, -1.2])
    psi = qsim.simulate(b, p)
    np.testing.assert_allclose(qsim.simulate(b.inverse(), p, init_state=psi), np.eye(8)[0], atol=1e-12)
    assert "RY†" in b.inverse().count_ops()
    assert "H" in b.inverse().count_ops()  # self-inverse gates stay plain
    with pytest.raises(ValueError, match="mapped onto 1 wires"):
        b.append(a, wires=[0])
    with pytest.raises(TypeError, match="takes a Circuit"):
        b.append("not a circuit")


def test_controlled_versions_and_draw():
    c = qsim.Circuit(3)
    c.ctrl("H", [0, 1], 2)
    c.ctrl("RZZ", 0, [1, 2])
    c.mcx([0, 1], 2)
    assert c.count_ops()["C2-H"] == 1
    assert c.num_params == 1
    assert "RZZ" in c.draw()
    with pytest.raises(ValueError, match="mcx needs at least one control"):
        c.mcx([], 0)


def test_key_identifies_structure():
    a, b = qsim.Circuit(2), qsim.Circuit(2)
    a.ry(0); b.ry(0)
    assert a.key() == b.key()
    b.rz(1, value=0.1)
    assert a.key() != b.key()
