"""VQE on qsim circuits: UCCSD and hardware-efficient ansätze, exact or shot-based energies, optax,
trained through the one driver loop (:func:`qsim.infra.driver.run_loop`).

    from qsim.chem.hamiltonians import molecular_hamiltonian
    from qsim.chem import vqe
    mh = molecular_hamiltonian("H2", basis="sto-3g")
    ansatz = vqe.uccsd(mh)                              # a qsim.Circuit (HF preparation + excitations)
    result = vqe.run_vqe(ansatz.circuit, mh.qubit_hamiltonian, steps=100, learning_rate=0.2)
    result.energy - mh.fci_energy                      # ~1e-10 Hartree

This module holds the training (optimisers, the exact step, :func:`run_vqe`, :func:`run_vqe_shots`)
and re-exports the pieces it trains: the ansätze (:mod:`qsim.chem.ansatze`), the exact energies and
gradients (:mod:`qsim.chem.energies`) and the shot estimates (:mod:`qsim.chem.shots`).

Energies: exact through the statevector (``jax.value_and_grad``, :func:`run_vqe`), or shot-based on
any backend (``qsim.get_backend(name)``, :func:`run_vqe_shots`, :func:`shot_estimate`) with
parameter-shift or SPSA gradients from :mod:`qsim.gradients`. Optimisers are optax
transformations; ``qng=True`` preconditions the gradient with the quantum Fubini-Study metric
(quantum natural gradient, exact statevector only).

Both training functions take an optional open run directory ``run`` (:func:`qsim.infra.runs.open_run`):
with it, metrics go to ``metrics.csv`` row by row, the full optimiser state is checkpointed every
``checkpoint_every`` steps and at the end, and a run that has a checkpoint resumes from it (and reaches
the numbers of the uninterrupted run). Without it nothing is written and the result is the same
NamedTuple. A non-finite energy stops the run with :class:`qsim.infra.driver.NonFiniteError`; SIGINT
and SIGTERM end it as "interrupted" (``KeyboardInterrupt`` for the caller).
Units: energies in Hartree when the Hamiltonian comes from :mod:`qsim.chem.hamiltonians`.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from qsim.chem.ansatze import (COMPACT_MAX_WIRES, Ansatz, excitation_generator, hardware_efficient,
                               pauli_rotation, uccsd)
from qsim.chem.energies import (DENSE_MAX_QUBITS, cache_key, check_hamiltonian, energy_and_grad, energy_impl,
                                hamiltonian_data, make_energy_fn, metric_tensor, resolve_method)
from qsim.chem.shots import exact_stderr, resolve_backend, shot_estimate
from qsim.circuits.circuit import Circuit
from qsim.circuits.operators import PauliSum
from qsim.gradients import make_expval
from qsim.infra.cache import structural_cache
from qsim.infra.driver import NonFiniteError, resume, run_loop
from qsim.infra.validation import nonnegative_int, one_of, positive_float, positive_int

__all__ = ["Ansatz", "uccsd", "hardware_efficient", "pauli_rotation", "excitation_generator",
           "make_energy_fn", "energy_and_grad", "metric_tensor", "VQEState", "VQEResult", "make_optimizer", "vqe_init",
           "vqe_step", "run_vqe", "shot_estimate", "exact_stderr", "ShotVQEResult", "run_vqe_shots",
           "NonFiniteError", "COMPACT_MAX_WIRES", "DENSE_MAX_QUBITS"]

NAN_HINT = ("Lower the learning rate (or, with qng, raise qng_damping), and check that the Hamiltonian's "
            "coefficients are finite.")


class VQEState(NamedTuple):
    """Optimiser state of a VQE run (a pytree)."""

    params: jax.Array      # (P,)
    opt_state: optax.OptState
    step: jax.Array        # () int


class VQEResult(NamedTuple):
    params: np.ndarray
    energy: float
    energies: np.ndarray   # (steps,) energy before each update
    grad_norms: np.ndarray
    steps: int


_OPTIMIZERS = {"adam": optax.adam, "sgd": optax.sgd, "adabelief": optax.adabelief, "rmsprop": optax.rmsprop}


def make_optimizer(name: str = "adam", learning_rate: float = 0.1) -> optax.GradientTransformation:
    """An optax optimiser by name (``adam``, ``sgd``, ``adabelief``, ``rmsprop``, ``lbfgs``) with its
    learning rate injected as state (changing it does not recompile a step)."""
    learning_rate = positive_float(learning_rate, "learning_rate")
    one_of(name, "optimizer", [*_OPTIMIZERS, "lbfgs"])
    if name == "lbfgs":
        return optax.lbfgs(learning_rate=learning_rate)
    return optax.inject_hyperparams(_OPTIMIZERS[name])(learning_rate=learning_rate)


def vqe_init(params, optimizer: optax.GradientTransformation) -> VQEState:
    params = jnp.asarray(params)
    return VQEState(params, optimizer.init(params), jnp.zeros((), jnp.int32))


def vqe_step(energy_fn: Callable, optimizer: optax.GradientTransformation, *, qng: bool = False,
             qng_damping: float = 1e-3, circuit: Circuit | None = None) -> Callable:
    """``step(state, hdata) -> (state, (energy, grad_norm))`` for an exact ``energy_fn(params, hdata)``
    (not jitted; :func:`run_vqe` jits and caches it per circuit).

    ``qng=True`` replaces the gradient by ``(F + damping I)^{-1} grad`` with ``F`` the Fubini-Study
    metric of ``circuit`` (the quantum natural gradient); pair it with ``sgd``.
    """
    if qng and circuit is None:
        raise ValueError("qng=True needs the circuit (for the metric tensor)")

    def step(state: VQEState, hdata):
        f = lambda p: energy_fn(p, hdata)  # noqa: E731
        e, g = jax.value_and_grad(f)(state.params)
        gn = jnp.linalg.norm(g)
        if qng:
            m = metric_tensor(circuit, state.params)
            g = jnp.linalg.solve(m + qng_damping * jnp.eye(m.shape[0], dtype=m.dtype), g)
        if isinstance(optimizer, optax.GradientTransformationExtraArgs) and not qng:
            upd, opt_state = optimizer.update(g, state.opt_state, state.params, value=e, grad=g, value_fn=f)
        else:
            upd, opt_state = optimizer.update(g, state.opt_state, state.params)
        return VQEState(optax.apply_updates(state.params, upd), opt_state, state.step + 1), (e, gn)

    return step


@structural_cache(maxsize=64)
def _compiled_step(circuit: Circuit, hamiltonian, method: str, optimizer: str, qng: bool, qng_damping: float,
                   max_fuse: int | None, static_lr: float | None):
    energy = energy_impl(circuit, hamiltonian, method, max_fuse)
    opt = make_optimizer(optimizer, 1.0 if static_lr is None else static_lr)
    return jax.jit(vqe_step(energy, opt, qng=qng, qng_damping=qng_damping, circuit=circuit)), opt


def _default_dtype():
    return jnp.float64 if jax.config.jax_enable_x64 else jnp.float32


def _initial_params(circuit: Circuit, init_params, dtype) -> jax.Array:
    p0 = jnp.zeros(circuit.num_params, dtype) if init_params is None else jnp.asarray(init_params, dtype)
    if p0.shape != (circuit.num_params,):
        raise ValueError(f"init_params has shape {p0.shape}; the circuit has {circuit.num_params} parameters")
    return p0


def _initial_state(circuit: Circuit, opt, init_params, init_state, dtype) -> VQEState:
    state = vqe_init(_initial_params(circuit, init_params, dtype or _default_dtype()), opt)
    if init_state is not None:
        if jax.tree_util.tree_structure(init_state) != jax.tree_util.tree_structure(state):
            raise ValueError("init_state does not match this optimizer's state structure")
        state = jax.tree_util.tree_map(lambda a, b: jnp.asarray(a, jnp.asarray(b).dtype), init_state, state)
    return state


def _resume(run, state: NamedTuple, start: int) -> tuple[int, NamedTuple]:
    """The run's last checkpoint (saved as ``state._asdict()``) and the step after it, else ``start``."""
    if run is None:
        return start, state
    first, tree, resumed = resume(run, state._asdict())
    return (first, type(state)(**tree)) if resumed else (start, state)


def _metrics(energy: float, grad_norm: float, reference_energy: float | None) -> dict:
    m = {"energy": energy, "grad_norm": grad_norm}
    if reference_energy is not None:
        m["error_mha"] = 1000.0 * (energy - reference_energy)
    return m


def _postfix(m: dict) -> dict:
    err = m.get("error_mha")
    return {"E": f"{m['energy']:.8f}", **({} if err is None else {"err_mHa": f"{err:.4f}"})}


def _user_callback(callback: Callable | None, params_of: Callable) -> list:
    """``callback(step, energy, grad_norm, state)`` as a driver callback (``False`` stops the run)."""
    if callback is None:
        return []
    return [lambda t, m, s: callback(t, m["energy"], m["grad_norm"], params_of(s))]


def _tol_stop(tol: float) -> list:
    """Stop when the energy moved by less than ``tol`` over 10 steps (nothing for ``tol <= 0``)."""
    if not tol > 0:
        return []
    energies: list[float] = []

    def cb(t, m, s):
        energies.append(m["energy"])
        if len(energies) > 10 and abs(energies[-11] - energies[-1]) < tol:
            return False
        return None

    return [cb]


def _column(loop, name: str) -> np.ndarray:
    return np.asarray([m[name] for m in loop.metrics])


def run_vqe(circuit: Circuit, hamiltonian: PauliSum, *, init_params=None, optimizer: str = "adam",
            learning_rate: float = 0.1, steps: int = 200, qng: bool = False, qng_damping: float = 1e-3,
            tol: float = 0.0, energy_method: str = "auto", max_fuse: int | None = None,
            callback: Callable | None = None, dtype=None, init_state: VQEState | None = None,
            step_offset: int = 0, run=None, checkpoint_every: int | None = None, progress: bool = False,
            reference_energy: float | None = None, desc: str = "vqe") -> VQEResult:
    """Minimise ``<H>`` over the circuit's parameters with exact statevector energies.

    Args:
        init_params: ``(P,)`` start (default zeros: the HF state for :func:`uccsd`).
        optimizer, learning_rate: see :func:`make_optimizer`.
        steps: number of updates (steps ``step_offset .. step_offset + steps - 1``).
        qng: quantum natural gradient preconditioning (see :func:`vqe_step`).
        tol: stop when the energy changed by less than ``tol`` over 10 steps (0: never).
        energy_method, max_fuse: see :func:`make_energy_fn`.
        callback: ``callback(step, energy, grad_norm, state)`` after every step (``state`` a
            :class:`VQEState`); returning ``False`` stops the run.
        dtype: parameter dtype (default float64 if x64 is enabled, else float32).
        init_state: start from this :class:`VQEState` (overrides ``init_params``).
        step_offset: the number of the first step (for runs continued by hand).
        run: an open run directory (or None): metrics, checkpoints of the whole :class:`VQEState`
            every ``checkpoint_every`` steps and at the end; resumes from its last checkpoint.
        progress, desc: progress display; reference_energy: also log ``error_mha`` (mHa above it).

    The jitted step is cached per (circuit structure, energy method, optimizer, qng): with the
    ``dense`` method the Hamiltonian and the learning rate are arguments, so a second molecule on the
    same circuit (or another learning rate) does not recompile.
    """
    steps = positive_int(steps, "steps")
    if qng and optimizer == "lbfgs":
        raise ValueError("qng=True preconditions the gradient; L-BFGS's line search needs the plain one: "
                         "use optimizer='sgd' with qng")
    check_hamiltonian(circuit, hamiltonian)
    state = _initial_state(circuit, make_optimizer(optimizer, learning_rate), init_params, init_state, dtype)
    method = resolve_method(energy_method, circuit.n_wires)
    hdata = hamiltonian_data(hamiltonian, circuit.n_wires, method)
    compiled, _ = _compiled_step(circuit, cache_key(hamiltonian, method), method, optimizer, bool(qng),
                                 float(qng_damping), max_fuse,
                                 float(learning_rate) if optimizer == "lbfgs" else None)
    n_total = nonnegative_int(step_offset, "step_offset") + steps
    start, state = _resume(run, state, step_offset)

    def step_fn(t, s):
        s, (e, gn) = compiled(s, hdata)
        return s, _metrics(float(e), float(gn), reference_energy)

    loop = run_loop(step_fn, state, n_total, start=start, run=run, checkpoint_every=checkpoint_every,
                    checkpoint=lambda s: s._asdict(), progress=progress, desc=desc, postfix=_postfix,
                    callbacks=_user_callback(callback, lambda s: s) + _tol_stop(tol), nan_keys=("energy",),
                    max_nan_steps=1, nan_hint=NAN_HINT)
    params = loop.state.params
    final = float(energy_and_grad(circuit, hamiltonian, method, max_fuse)(params)[0])
    energies = _column(loop, "energy")
    return VQEResult(np.asarray(params), final, energies, _column(loop, "grad_norm"), len(energies))


class ShotVQEResult(NamedTuple):
    params: np.ndarray
    energy: float            # final shot estimate (final_shots per group)
    energy_stderr: float
    exact_energy: float      # statevector energy of the final parameters
    energies: np.ndarray     # (steps,) shot estimate before each update
    steps: int


class ShotVQEState(NamedTuple):
    """The state of a shot-based VQE run (a pytree; checkpointed whole, so a resumed run draws the
    same shots as the uninterrupted one)."""

    params: jax.Array        # (P,)
    opt_state: optax.OptState
    key: jax.Array           # the PRNG key's raw data (jax.random.key_data)


def run_vqe_shots(circuit: Circuit, hamiltonian: PauliSum, backend, *, shots: int = 1000,
                  init_params=None, optimizer: str = "adam", learning_rate: float = 0.05, steps: int = 50,
                  gradient: str = "parameter-shift", final_shots: int | None = None, seed: int = 0,
                  callback: Callable | None = None, run=None, checkpoint_every: int | None = None,
                  progress: bool = False, reference_energy: float | None = None,
                  desc: str = "vqe") -> ShotVQEResult:
    """VQE with shot-based energies and gradients on ``backend`` (name or object).

    Each step: the energy from ``shots`` shots per measurement group and its gradient by parameter
    shift (shared slots expanded, one batched job; :mod:`qsim.gradients`) or SPSA; an optax update.
    The final parameters are evaluated with ``final_shots`` (default ``10 * shots``) and exactly.
    ``callback(step, energy, grad_norm, params)``; ``run``, ``checkpoint_every``, ``progress``,
    ``reference_energy``: as for :func:`run_vqe`.
    """
    shots, steps = positive_int(shots, "shots"), positive_int(steps, "steps")
    b = resolve_backend(backend)
    vg = jax.value_and_grad(make_expval(b, circuit, hamiltonian, shots=shots, gradient=gradient))
    opt = make_optimizer(optimizer, learning_rate)
    params = _initial_params(circuit, init_params, _default_dtype())
    state = ShotVQEState(params, opt.init(params), jax.random.key_data(jax.random.key(seed)))
    start, state = _resume(run, state, 0)

    def step_fn(t, s):
        key, sub = jax.random.split(jax.random.wrap_key_data(s.key))
        e, g = vg(s.params, sub)
        upd, opt_state = opt.update(g, s.opt_state, s.params)
        s = ShotVQEState(optax.apply_updates(s.params, upd), opt_state, jax.random.key_data(key))
        return s, _metrics(float(e), float(jnp.linalg.norm(g)), reference_energy)

    loop = run_loop(step_fn, state, steps, start=start, run=run, checkpoint_every=checkpoint_every,
                    checkpoint=lambda s: s._asdict(), progress=progress, desc=desc, postfix=_postfix,
                    callbacks=_user_callback(callback, lambda s: s.params), nan_keys=("energy",),
                    max_nan_steps=1, nan_hint=NAN_HINT)
    params = np.asarray(loop.state.params, np.float64)
    _, sub = jax.random.split(jax.random.wrap_key_data(loop.state.key))
    est = b.estimate(circuit, params, hamiltonian, positive_int(final_shots or 10 * shots, "final_shots"), key=sub)
    exact = float(energy_and_grad(circuit, hamiltonian)(loop.state.params)[0])
    energies = _column(loop, "energy")
    return ShotVQEResult(np.asarray(loop.state.params), float(est.mean), float(est.stderr), exact, energies,
                         len(energies))
