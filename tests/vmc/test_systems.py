import math

import numpy as np
import pytest

from vmc import systems


def test_catalog_geometry_spin_and_reference():
    lih = systems.get("LiH")
    assert lih.atoms == ("Li", "H")
    assert lih.n_up == 2 and lih.n_down == 2
    assert np.allclose(lih.nuclei[1] - lih.nuclei[0], [3.015, 0, 0])
    assert lih.reference_energy == pytest.approx(-8.070548)
    assert systems.get("li").n_up == 2 and systems.get("li").n_down == 1
    assert systems.get("N").spin == 3
    assert systems.get("H2").nuclear_repulsion() == pytest.approx(1 / 1.4)
    # the catalog reference only applies to the catalog state
    assert systems.get("Li", charge=1).reference_energy is None


def test_xyz_angstrom_to_bohr(tmp_path):
    text = "2\nhydrogen\nH 0 0 0\nH 0 0 0.74\n"
    m = systems.from_xyz(text)
    assert m.n_up == 1 and m.n_down == 1
    assert m.nuclei[1, 2] == pytest.approx(0.74 * systems.ANGSTROM_TO_BOHR)
    assert m.nuclei[1, 2] == pytest.approx(1.39839, abs=1e-4)
    f = tmp_path / "h2o.xyz"
    f.write_text("O 0 0 0\nH 0.757 0.586 0\nH -0.757 0.586 0\n")
    w = systems.from_xyz(str(f))
    assert w.n_electrons == 10 and w.spin == 0 and w.name == "h2o"
    assert systems.from_xyz("Li 0 0 0").spin == 1


def test_from_pyscf_roundtrip():
    m = systems.get("LiH")
    pm = m.to_pyscf()
    back = systems.from_pyscf(pm)
    assert back.atoms == m.atoms and np.allclose(back.nuclei, m.nuclei)
    assert (back.n_up, back.n_down) == (m.n_up, m.n_down)


@pytest.mark.parametrize("bad, match", [
    ("Xx 0 0 0", "unknown element"),
    ("H 0 0 0\nH 0 0 0", "same position"),
    ("H 0 0 nan", "non-finite"),
    ("H 0 0 inf", "non-finite"),
    ("H 0 0", "three coordinates"),
])
def test_bad_xyz(bad, match):
    with pytest.raises(ValueError, match=match):
        systems.from_xyz(bad)


def test_impossible_charge_and_spin():
    with pytest.raises(ValueError, match="spin=1 .* impossible"):
        systems.get("He", spin=1)
    with pytest.raises(ValueError, match="impossible"):
        systems.get("H2", spin=4)
    with pytest.raises(ValueError, match="electrons"):
        systems.get("H", charge=1)
    with pytest.raises(ValueError, match="unknown system"):
        systems.get("Unobtainium")
    with pytest.raises(ValueError, match="same position"):
        systems.Molecule(("H", "H"), ((0, 0, 0), (0, 0, 0)), (1.0, 1.0), 1, 1)
    with pytest.raises(ValueError, match="non-finite"):
        systems.Molecule(("H",), ((0, math.inf, 0),), (1.0,), 1, 0)


def test_initial_electrons_near_nuclei():
    import jax

    m = systems.get("LiH")
    x = m.initial_electrons(jax.random.PRNGKey(0), 1000)
    assert x.shape == (1000, 12) and x.dtype == np.float64
    centres = np.asarray(x).reshape(1000, 4, 3).mean(axis=0)
    # Li gets 3 electrons (2 up 1 down), H one: every electron starts on a nucleus (+-0.1 bohr)
    d = np.min(np.linalg.norm(centres[:, None] - m.nuclei[None], axis=-1), axis=1)
    assert np.all(d < 0.15)
