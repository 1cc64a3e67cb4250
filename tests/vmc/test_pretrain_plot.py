import json

import jax
import numpy as np
import pytest

from vmc import pretrain, systems
from vmc.networks import make_wavefunction


def test_hartree_fock_orbitals_and_pretraining_fit():
    mol = systems.get("H2")
    hf = pretrain.hartree_fock(mol, "sto-6g")
    assert hf.energy == pytest.approx(-1.1253, abs=2e-3)       # RHF/STO-6G at R = 1.4 bohr
    wf = make_wavefunction(mol, "slater_jastrow", hidden=[[8, 0]])
    params = wf.init(jax.random.PRNGKey(0))
    walkers = mol.initial_electrons(jax.random.PRNGKey(1), 64)
    orbs = hf.orbitals(np.asarray(walkers))
    assert [o.shape for o in orbs] == [(64, 1, 1), (64, 1, 1)]
    res = pretrain.pretrain(wf, mol, params, walkers, jax.random.PRNGKey(2), steps=60, learning_rate=1e-2, hf=hf)
    assert res.walkers.shape == walkers.shape and np.all(np.isfinite(res.losses))
    assert res.losses[-5:].mean() < 0.2 * res.losses[:5].mean()


def test_plot_overlays_runs_generic_over_metrics(tmp_path):
    from qsim.infra.plots import plot_runs

    for name, ref in (("a", -1.0), ("b", None)):
        d = tmp_path / name
        d.mkdir()
        rows = ["step,energy,variance,other"] + [f"{i},{-1.0 + 0.1 / (i + 1)},{0.1 / (i + 1)},{i}" for i in range(20)]
        (d / "metrics.csv").write_text("\n".join(rows) + "\n")
        (d / "summary.json").write_text(json.dumps({"reference_energy": ref}))
    out = plot_runs([tmp_path / "a", tmp_path / "b"], tmp_path / "cmp.png")
    assert out.exists() and out.stat().st_size > 1000
    out2 = plot_runs([tmp_path / "b"], tmp_path / "other.png", metrics=["other"])
    assert out2.exists()
    with pytest.raises(ValueError, match="not in metrics.csv"):
        plot_runs([tmp_path / "b"], tmp_path / "x.png", metrics=["nope"])
    with pytest.raises(FileNotFoundError):
        plot_runs([tmp_path / "missing"], tmp_path / "y.png")
