"""Neural quantum states through NetKet for the same qubit Hamiltonians as VQE.

    from qsim.chem.hamiltonians import molecular_hamiltonian
    from qsim.chem import nqs
    mh = molecular_hamiltonian("H2")
    result = nqs.run_nqs(mh.qubit_hamiltonian, mh.n_qubits, steps=300)
    result.exact_energy - mh.fci_energy          # < 1 mHa

The qsim PauliSum becomes a ``netket.operator.PauliStrings`` on ``netket.hilbert.Qubit(n)`` (site k =
wire k; local state 0/1 = qubit |0>/|1>, checked against qsim's sparse matrix in the tests). The
variational state is a NetKet ``MCState`` of a complex-parameter RBM (molecular ground states have
sign structure; a real positive RBM cannot hold it), sampled exactly for small registers
(``ExactSampler``) or by local Metropolis, and trained with NetKet's ``VMC`` driver preconditioned by
stochastic reconfiguration (``netket.optimizer.SR``).

NetKet switches ``jax_enable_x64`` on for the whole process when imported, so ``import netket`` happens
only inside these functions, never at ``import qsim`` time. Energies in Hartree.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

import jax
import jax.numpy as jnp
import optax
from jax.nn.initializers import normal

from qsim.circuits.operators import PauliSum
from qsim.infra.driver import resume, run_loop
from qsim.infra.runs import NullRun
from qsim.infra.validation import positive_float, positive_int

__all__ = ["to_netket_operator", "NQSResult", "make_vstate", "state_energy", "run_nqs"]


def _pauli_label(string, n: int) -> str:
    chars = ["I"] * n
    for w, p in string:
        chars[w] = p
    return "".join(chars)


def to_netket_operator(hamiltonian: PauliSum, n_qubits: int | None = None, hilbert=None):
    """``(hilbert, PauliStrings)`` for a Hermitian PauliSum on ``n_qubits`` qubits (site k = wire k)."""
    import netket as nk

    if not isinstance(hamiltonian, PauliSum):
        raise TypeError(f"hamiltonian must be a qsim PauliSum, got {type(hamiltonian).__name__}")
    n = hamiltonian.n_wires if n_qubits is None else int(n_qubits)
    if hamiltonian.wires and max(hamiltonian.wires) >= n:
        raise ValueError(f"Hamiltonian acts on wire {max(hamiltonian.wires)}, outside {n} qubits")
    if not hamiltonian.simplify().is_hermitian(1e-10):
        raise ValueError("to_netket_operator needs a Hermitian PauliSum (real coefficients)")
    if hilbert is None:
        hilbert = nk.hilbert.Qubit(N=n)
    labels, weights = [], []
    for c, s in hamiltonian.simplify(0.0):
        labels.append(_pauli_label(s, n))
        weights.append(float(c.real))
    if not labels:
        labels, weights = ["I" * n], [0.0]
    return hilbert, nk.operator.PauliStrings(hilbert, labels, weights, cutoff=0.0)


class NQSResult(NamedTuple):
    """Outcome of :func:`run_nqs` (Hartree).

    Attributes:
        energy: final Monte Carlo energy estimate (mean over the last step's samples).
        energy_error: its standard error.
        variance: local-energy variance of the last step.
        exact_energy: ``<psi|H|psi>`` of the final state by full summation (None for > 20 qubits).
        energies: ``(steps,)`` MC energy per step.
        steps: number of steps run.
        parameters: the final NetKet parameter pytree.
    """

    energy: float
    energy_error: float
    variance: float
    exact_energy: float | None
    energies: np.ndarray
    steps: int
    parameters: object


def make_vstate(hilbert, *, alpha: int = 2, n_samples: int = 1024, sampler: str = "auto", seed: int = 0,
                init_scale: float = 0.3, init_bits=None, init_bias: float = 1.0, random_phases: bool = False):
    """A NetKet ``MCState`` of a complex RBM (``alpha`` hidden units per visible unit).

    ``sampler``: ``"exact"`` (NetKet's ExactSampler), ``"local"`` (Metropolis single flips), ``"auto"``
    (exact up to 16 qubits), or ``"full"``: a ``FullSumState`` (exact expectations and gradients by
    summing over all configurations, no sampling noise; up to 20 qubits).

    ``init_scale`` is the standard deviation of the (complex) initial parameters. It must not be tiny:
    at real parameters the energy is stationary in the phase directions, and the sign change that a
    molecular ground state needs (H2: ``0.99|1100> - 0.11|0011>``) never develops; with 0.01 the H2 run
    stalls at the Hartree-Fock energy (+20.6 mHa), with 0.3 it reaches 0.7 mHa in 100 steps.

    ``init_bits`` (e.g. the Hartree-Fock bits) starts the visible biases at ``init_bias * (2 b - 1)``,
    so the initial state is peaked on that determinant instead of uniform.
    """
    import netket as nk

    if sampler == "auto":
        sampler = "exact" if hilbert.size <= 16 else "local"
    if sampler == "full":
        smp = None
    elif sampler == "exact":
        smp = nk.sampler.ExactSampler(hilbert)
    elif sampler == "local":
        smp = nk.sampler.MetropolisLocal(hilbert, n_chains=16)
    else:
        raise ValueError(f"unknown sampler {sampler!r}; choose 'auto', 'exact', 'local' or 'full'")
    model = nk.models.RBM(alpha=alpha, param_dtype=jnp.complex128, kernel_init=normal(init_scale),
                          hidden_bias_init=normal(init_scale), visible_bias_init=normal(init_scale))
    if smp is None:
        if hilbert.size > 20:
            raise ValueError(f"sampler='full' sums over all 2**{hilbert.size} configurations; limit is 20 qubits")
        vs = nk.vqs.FullSumState(hilbert, model, seed=seed)
    else:
        vs = nk.vqs.MCState(smp, model, n_samples=n_samples, seed=seed, sampler_seed=seed + 1)
    if random_phases:
        # uniform random phases on the visible biases: a generic starting point, away from the
        # real-parameter saddle where the phase directions have zero gradient
        params = dict(vs.parameters)
        ph = np.random.default_rng(seed).uniform(-np.pi, np.pi, hilbert.size)
        params["visible_bias"] = params["visible_bias"] + 1j * jnp.asarray(ph, jnp.float64)
        vs.parameters = params
    if init_bits is not None:
        bits = np.asarray(init_bits, dtype=np.float64)
        if bits.shape != (hilbert.size,):
            raise ValueError(f"init_bits has shape {bits.shape}; the register has {hilbert.size} qubits")
        params = dict(vs.parameters)
        params["visible_bias"] = params["visible_bias"] + jnp.asarray(init_bias * (2 * bits - 1),
                                                                       params["visible_bias"].dtype)
        vs.parameters = params
    return vs


def state_energy(vstate, hamiltonian: PauliSum, n_qubits: int) -> float | None:
    """Exact ``<psi|H|psi>/<psi|psi>`` by full summation (None above 20 qubits)."""
    if n_qubits > 20:
        return None
    psi = np.asarray(vstate.to_array(normalize=True))
    h = hamiltonian.to_matrix(n_qubits)
    return float(np.real(np.vdot(psi, h @ psi)))


def _warm_start(op, hamiltonian: PauliSum, n_qubits: int, first, new_state: Callable, schedule, sr, seed: int,
                n_restarts: int, warmup_steps: int):
    """Train ``n_restarts`` RBMs (``first``, then fresh ones of seeds ``seed+1, ...``) for ``warmup_steps`` each with
    NetKet's own loop; ``(energy, vstate, restart)`` of the lowest (exact energy up to 20 qubits, else
    the MC estimate)."""
    import netket as nk

    best = None
    for r in range(int(n_restarts)):
        cand = first if r == 0 else new_state(seed + r)
        drv = nk.driver.VMC(op, nk.optimizer.Sgd(learning_rate=schedule), variational_state=cand,
                            preconditioner=sr)
        drv.run(int(warmup_steps), out=None, show_progress=False)
        e = state_energy(cand, hamiltonian, n_qubits)
        e = float(np.real(cand.expect(op).mean)) if e is None else e
        if best is None or e < best[0]:
            best = (e, cand, r)
    return best


def _stats(st) -> dict:
    return {"energy": float(np.real(st.mean)), "energy_error": float(st.error_of_mean),
            "variance": float(st.variance)}


def _postfix(m: dict) -> dict:
    err = m.get("error_mha")
    return {"E": f"{m['energy']:.6f}", **({} if err is None else {"err_mHa": f"{err:.3f}"})}


def run_nqs(hamiltonian: PauliSum, n_qubits: int, *, alpha: int = 2, n_samples: int = 1024, steps: int = 300,
            learning_rate: float = 0.1, diag_shift: float = 0.01, sampler: str = "auto", seed: int = 0,
            final_lr_fraction: float = 0.1,
            init_bits=None, run=None, callback: Callable | None = None, progress: bool = False,
            exact_every: int = 0, n_restarts: int = 3, warmup_steps: int = 30, checkpoint_every: int = 50,
            reference_energy: float | None = None, desc: str = "nqs") -> NQSResult:
    """Train a complex RBM ``MCState`` with NetKet's VMC driver + SR on a qubit Hamiltonian, one NetKet
    step per step of the driver loop (:func:`qsim.infra.driver.run_loop`).

    Args:
        hamiltonian, n_qubits: the qubit Hamiltonian (Hartree) and its register size.
        alpha: RBM hidden-unit density; n_samples: samples per step; steps: VMC iterations.
        learning_rate: SGD step size (the SR-preconditioned update), cosine-decayed to
            ``final_lr_fraction * learning_rate`` over ``steps`` (the last steps average out MC noise);
            diag_shift: SR regularisation.
        sampler: ``"auto"`` (exact sampling up to 16 qubits, else local Metropolis), ``"exact"``, ``"local"``,
            or ``"full"`` (FullSumState: exact sums instead of samples; see :func:`make_vstate`).
        init_bits: start peaked on this bitstring (the HF state; see :func:`make_vstate`).
        run: an open run directory or None (metrics per step; checkpoints of the parameters every
            ``checkpoint_every`` steps and at the end; resumes from the last checkpoint).
        callback: ``callback(step, energy, error)`` after every step (``False`` stops the run).
        exact_every: also log the exact variational energy every this many steps (0: never).
        reference_energy: also log ``error_mha`` (MC energy above it, mHa); progress, desc: the display.
        n_restarts, warmup_steps: start ``n_restarts`` RBMs (seeds ``seed, seed+1, ...``), train each
            for ``warmup_steps`` and keep the lowest-energy one (exact energy up to 20 qubits, else the
            MC estimate). Measured on H2: from some initialisations SR drifts onto the Hartree-Fock
            determinant before the RBM's phases develop the ground state's sign change and stays there
            (+20.6 mHa); which ones is visible within 30 steps, so a few short restarts make the run
            reliable. Skipped when resuming from a checkpoint. The chosen restart's warm-up steps
            count towards ``steps``.

    A non-finite energy stops the run with :class:`qsim.infra.driver.NonFiniteError`.
    """
    for name, v in (("alpha", alpha), ("n_samples", n_samples), ("steps", steps)):
        positive_int(v, name)
    learning_rate = positive_float(learning_rate, "learning_rate")
    diag_shift = positive_float(diag_shift, "diag_shift")
    import netket as nk

    hilbert, op = to_netket_operator(hamiltonian, n_qubits)
    schedule = optax.cosine_decay_schedule(learning_rate, max(int(steps), 1), alpha=final_lr_fraction)
    sr = nk.optimizer.SR(diag_shift=diag_shift, holomorphic=True)

    def new_state(s):
        return make_vstate(hilbert, alpha=alpha, n_samples=n_samples, sampler=sampler, seed=s, init_bits=init_bits)

    vs = new_state(seed)
    start, params, resumed = resume(run if run is not None else NullRun(), vs.parameters)
    if resumed:
        vs.parameters = jax.tree_util.tree_map(jnp.asarray, params)
    elif n_restarts > 1 and 0 < warmup_steps < int(steps):
        e0, vs, r = _warm_start(op, hamiltonian, n_qubits, vs, new_state, schedule, sr, seed, n_restarts, warmup_steps)
        start = int(warmup_steps)
        if run is not None:
            run.update_summary(nqs_restart=r, nqs_warmup_energy=e0)
    # a resumed (or warmed-up) run continues the schedule where it stopped
    driver = nk.driver.VMC(op, nk.optimizer.Sgd(learning_rate=lambda t: schedule(t + start)), variational_state=vs,
                           preconditioner=sr)

    def step_fn(k, state):
        driver.run(1, out=None, show_progress=False)
        m = _stats(driver.energy)
        if exact_every:
            m["exact_energy"] = state_energy(vs, hamiltonian, n_qubits) if k % exact_every == 0 else None
        if reference_energy is not None:
            m["error_mha"] = 1000.0 * (m["energy"] - reference_energy)
        return state, m

    cbs = [] if callback is None else [lambda k, m, s: callback(k, m["energy"], m["energy_error"])]
    loop = run_loop(step_fn, vs, int(steps), start=start, run=run, checkpoint_every=checkpoint_every,
                    checkpoint=lambda s: s.parameters, progress=progress, desc=desc, postfix=_postfix,
                    callbacks=cbs, nan_keys=("energy",), max_nan_steps=1,
                    nan_hint="Lower the learning rate or raise diag_shift (SR regularisation).")
    last = loop.metrics[-1] if loop.metrics else _stats(vs.expect(op))  # a resumed finished run: one estimate
    return NQSResult(last["energy"], last["energy_error"], last["variance"], state_energy(vs, hamiltonian, n_qubits),
                     np.asarray([m["energy"] for m in loop.metrics]), loop.steps, vs.parameters)
