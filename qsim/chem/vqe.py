"""VQE on qsim circuits: UCCSD and hardware-efficient ansätze, exact or shot-based energies, optax.

    from qsim.chem.hamiltonians import molecular_hamiltonian
    from qsim.chem import vqe
    mh = molecular_hamiltonian("H2", basis="sto-3g")
    ansatz = vqe.uccsd(mh)                              # a qsim.Circuit (HF preparation + excitations)
    result = vqe.run_vqe(ansatz.circuit, mh.qubit_hamiltonian, steps=100, learning_rate=0.2)
    result.energy - mh.fci_energy                      # ~1e-10 Hartree

UCCSD: every spin-conserving single and double excitation out of the Hartree-Fock determinant is
``exp(theta (T - T^dag))`` with ``T = a+_a a_i`` (or ``a+_a a+_b a_j a_i``). The Hermitian generator
``i (T - T^dag)`` is mapped to qubits with the Hamiltonian's own mapping (Jordan-Wigner Z strings or
parity strings included: this is the fermionic UCCSD, not the Givens-rotation approximation); its Pauli
terms commute and have equal magnitude ``c`` (1/2 for singles, 1/8 for doubles), so the excitation is
exactly a product of Pauli rotations ``exp(-i s_k phi / 2 P_k)`` with one shared trainable slot ``phi``
(``phi = 2 c theta``). Each Pauli rotation is a basis change (RY/RX by +-pi/2, fixed angles), a CNOT
ladder, one ``RZ`` reading the shared slot, and the ladder undone: only table gates, so the circuit
exports to PennyLane and Qiskit unchanged (``form="compact"`` merges the fixed gates into ``unitary``
ops instead).

Energies: exact through the statevector (``jax.value_and_grad``, :func:`run_vqe`), or shot-based on
any backend (``qsim.get_backend(name)``, :func:`run_vqe_shots`, :func:`shot_estimate`) with
parameter-shift or SPSA gradients from :mod:`qsim.gradients`. Optimisers are optax
transformations; ``qng=True`` preconditions the gradient with the quantum Fubini-Study metric
(quantum natural gradient, exact statevector only).
Units: energies in Hartree when the Hamiltonian comes from :mod:`qsim.chem.hamiltonians`.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from qsim.circuits.circuit import Circuit
from qsim.circuits.operators import PauliSum
from qsim.simulator.statevector import simulate, state_expval
from qsim.chem.hamiltonians import fermion_to_qubit
from qsim.circuits.gates import GATES
from qsim.chem.hamiltonians import _normalise_mapping, excitations, hf_state
from qsim.backends import get_backend
from qsim.gradients import make_expval

__all__ = ["Ansatz", "uccsd", "hardware_efficient", "pauli_rotation", "excitation_generator",
           "make_energy_fn", "energy_and_grad", "metric_tensor", "VQEState", "VQEResult", "make_optimizer", "vqe_init",
           "vqe_step", "run_vqe", "shot_estimate", "exact_stderr", "ShotVQEResult", "run_vqe_shots"]


# ---------------------------------------------------------------------------------------------------
# circuits
# ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Ansatz:
    """A parametrised circuit with a description of its slots.

    Attributes:
        circuit: the qsim.Circuit (HF preparation included).
        labels: one label per trainable slot (e.g. ``"D(0,1->2,3)"``).
        scales: per slot, ``theta / phi``: the fermionic amplitude per unit of slot value.
    """

    circuit: Circuit
    labels: tuple[str, ...]
    scales: tuple[float, ...]

    @property
    def num_params(self) -> int:
        return self.circuit.num_params


def _basis_change(circuit: Circuit, wire: int, letter: str, sign: int, undo: bool) -> None:
    """Rotate ``letter`` on ``wire`` to ``sign * Z`` (or back when ``undo``)."""
    s = -1.0 if undo else 1.0
    if letter == "X":   # RY(-pi/2) X RY(pi/2) = Z ; RY(+pi/2) gives -Z
        circuit.ry(wire, value=s * (-sign) * math.pi / 2)
    elif letter == "Y":  # RX(pi/2) Y RX(-pi/2) = Z ; RX(-pi/2) gives -Z
        circuit.rx(wire, value=s * sign * math.pi / 2)


def pauli_rotation(circuit: Circuit, string: Sequence[tuple[int, str]], slot: int, sign: int = 1) -> Circuit:
    """Append ``exp(-i sign * phi / 2 * P)`` for Pauli string ``P`` with ``phi`` read from ``slot``.

    ``string`` is a sorted tuple of ``(wire, "X"|"Y"|"Z")``; ``sign`` is +1 or -1. The sign goes into
    the basis change of the first X/Y letter (fixed angles), so every rotation reads the slot as is.
    """
    string = tuple(string)
    if not string:
        raise ValueError("pauli_rotation of the identity string is a global phase; nothing to append")
    if sign not in (1, -1):
        raise ValueError(f"sign must be +1 or -1, got {sign!r}")
    first_xy = next((k for k, (_, p) in enumerate(string) if p in "XY"), None)
    flip_with_x = first_xy is None and sign == -1
    signs = [sign if k == first_xy else 1 for k in range(len(string))]
    for (w, p), sg in zip(string, signs):
        _basis_change(circuit, w, p, sg, undo=False)
    wires = [w for w, _ in string]
    for a, b in zip(wires[:-1], wires[1:]):
        circuit.cnot(a, b)
    if flip_with_x:
        circuit.x(wires[-1])
    circuit.rz(wires[-1], param=slot)
    if flip_with_x:
        circuit.x(wires[-1])
    for a, b in reversed(list(zip(wires[:-1], wires[1:]))):
        circuit.cnot(a, b)
    for (w, p), sg in zip(string, signs):
        _basis_change(circuit, w, p, sg, undo=True)
    return circuit


def excitation_generator(indices: Sequence[int], n_qubits: int, mapping: str = "jordan_wigner") -> PauliSum:
    """Hermitian ``G = i (T - T^dag)`` of a single ``(i, a)`` or double ``(i, j, a, b)`` excitation as a
    PauliSum (``T = a+_a a_i`` or ``a+_a a+_b a_j a_i``), mapped like the Hamiltonian."""
    import pennylane as qml


    idx = tuple(int(k) for k in indices)
    if any(not 0 <= k < n_qubits for k in idx) or len(set(idx)) != len(idx):
        raise ValueError(f"excitation {idx} invalid on {n_qubits} spin orbitals")
    if len(idx) == 2:
        i, a = idx
        t = qml.FermiWord({(0, a): "+", (1, i): "-"})
        td = qml.FermiWord({(0, i): "+", (1, a): "-"})
    elif len(idx) == 4:
        i, j, a, b = idx
        t = qml.FermiWord({(0, a): "+", (1, b): "+", (2, j): "-", (3, i): "-"})
        td = qml.FermiWord({(0, i): "+", (1, j): "+", (2, b): "-", (3, a): "-"})
    else:
        raise ValueError(f"an excitation has 2 or 4 indices, got {idx}")
    gen = qml.FermiSentence({t: 1j, td: -1j})
    g = fermion_to_qubit(gen, n_qubits, mapping)
    if not g.is_hermitian(1e-10):
        raise RuntimeError(f"generator of excitation {idx} is not Hermitian: {g}")  # pragma: no cover
    return PauliSum({s: complex(c.real) for s, c in g.terms.items()})


def _commute(a, b) -> bool:
    da = dict(a)
    anti = sum(1 for w, p in b if w in da and da[w] != p)
    return anti % 2 == 0


COMPACT_MAX_WIRES = 4


def _ops_matrix(ops, support: Sequence[int]) -> np.ndarray:
    """The unitary of a list of fixed-angle ops, on the wires ``support`` (first = most significant)."""

    k = len(support)
    t = np.eye(2 ** k, dtype=np.complex128).reshape((2,) * k + (2 ** k,))
    for op in ops:
        m = np.asarray(GATES[op.name].matrix(*[p.value for p in op.params]), dtype=np.complex128)
        loc = [support.index(w) for w in op.wires]
        g = m.reshape((2,) * (2 * len(loc)))
        t = np.tensordot(g, t, axes=(list(range(len(loc), 2 * len(loc))), loc))
        t = np.moveaxis(t, list(range(len(loc))), loc)
    return t.reshape(2 ** k, 2 ** k)


def _append_compact(circuit: Circuit, terms, slot: int) -> None:
    """exp(-i phi/2 sum_k s_k P_k) as U(V_1) RZ U(V_2 V_1^dag) RZ ... U(V_m^dag): the constant basis
    changes and CNOT ladders between consecutive rotations are merged into one ``unitary`` each."""
    support = sorted({w for _, s in terms for w, _ in s})
    prev = None
    for coeff, s in terms:
        scratch = Circuit(circuit.n_wires)
        pauli_rotation(scratch, s, scratch.new_param(), sign=1 if coeff > 0 else -1)
        k = next(i for i, op in enumerate(scratch.ops) if op.params and op.params[0].slot is not None)
        v = _ops_matrix(scratch.ops[:k], support)
        circuit.unitary(np.ascontiguousarray(v if prev is None else v @ prev.conj().T), support)
        circuit.rz(scratch.ops[k].wires[0], param=slot)
        prev = v
    circuit.unitary(np.ascontiguousarray(prev.conj().T), support)


def _append_excitation(circuit: Circuit, gen: PauliSum, form: str = "compact") -> float:
    """Append exp(-i theta G) as Pauli rotations sharing one new slot; return theta/phi."""
    terms = [(c.real, s) for c, s in gen if s]
    mags = {round(abs(c), 12) for c, _ in terms}
    if len(mags) != 1:
        raise ValueError(f"generator terms have unequal magnitudes {sorted(mags)}; cannot share one slot")
    strings = [s for _, s in terms]
    for x, a in enumerate(strings):
        for b in strings[x + 1:]:
            if not _commute(a, b):
                raise ValueError("generator terms do not commute; the product formula would not be exact")
    c = mags.pop()
    slot = circuit.new_param()
    support = {w for s in strings for w, _ in s}
    if form == "compact" and len(support) <= COMPACT_MAX_WIRES:
        _append_compact(circuit, terms, slot)
    else:
        for coeff, s in terms:
            pauli_rotation(circuit, s, slot, sign=1 if coeff > 0 else -1)
    return 1.0 / (2.0 * c)


def _prepare_bits(circuit: Circuit, bits: Sequence[int]) -> None:
    for w, b in enumerate(bits):
        if int(b):
            circuit.x(w)


def uccsd(mh=None, *, n_qubits: int | None = None, n_alpha: int | None = None, n_beta: int | None = None,
          mapping: str | None = None, hf_bits: Sequence[int] | None = None, singles: bool = True,
          doubles: bool = True, form: str = "ladder") -> Ansatz:
    """The UCCSD ansatz (doubles first, then singles) on the HF determinant of ``mh``.

    Args:
        mh: a :class:`qsim.chem.hamiltonians.MolecularHamiltonian` (or give ``n_qubits``, ``n_alpha``,
            ``n_beta``, ``mapping`` and ``hf_bits`` explicitly).
        singles, doubles: which excitations to include.
        form: ``"ladder"`` (default) uses only RX/RY/CNOT/RZ (native gates for every backend and
            transpiler); ``"compact"`` merges the fixed basis changes and CNOT ladders between the
            shared-slot RZ's of one excitation into ``unitary`` ops when the excitation spans at most
            ``COMPACT_MAX_WIRES`` wires. Measured here (benchmarks/vqe.py): compact with
            ``max_fuse=4`` compiles about as fast as ladder with the simulator's default fusion on H2,
            and much slower on 6 qubits, so ladder is the default.

    Returns:
        an :class:`Ansatz`; all-zero parameters give the HF state.
    """

    if mh is not None:
        n_qubits, n_alpha, n_beta, mapping = mh.n_qubits, mh.n_alpha, mh.n_beta, mh.mapping
        hf_bits = mh.hf_state
    if n_qubits is None or n_alpha is None or n_beta is None:
        raise ValueError("uccsd needs a MolecularHamiltonian or n_qubits, n_alpha and n_beta")
    if n_qubits % 2:
        raise ValueError(f"n_qubits must be even (two spin orbitals per spatial orbital), got {n_qubits}")
    mapping = _normalise_mapping(mapping or "jordan_wigner")
    if hf_bits is None:
        hf_bits = hf_state(n_alpha, n_beta, n_qubits // 2, mapping)
    if len(hf_bits) != n_qubits:
        raise ValueError(f"hf_bits has {len(hf_bits)} entries for {n_qubits} qubits")
    if form not in ("compact", "ladder"):
        raise ValueError(f"unknown UCCSD form {form!r}; choose 'compact' or 'ladder'")
    s, d = excitations(n_alpha, n_beta, n_qubits // 2)
    circuit = Circuit(n_qubits)
    _prepare_bits(circuit, hf_bits)
    labels, scales = [], []
    for ex in (d if doubles else []):
        scales.append(_append_excitation(circuit, excitation_generator(ex, n_qubits, mapping), form))
        labels.append(f"D({ex[0]},{ex[1]}->{ex[2]},{ex[3]})")
    for ex in (s if singles else []):
        scales.append(_append_excitation(circuit, excitation_generator(ex, n_qubits, mapping), form))
        labels.append(f"S({ex[0]}->{ex[1]})")
    if not labels:
        raise ValueError("the UCCSD ansatz is empty: no excitations out of this determinant")
    return Ansatz(circuit, tuple(labels), tuple(scales))


def hardware_efficient(n_qubits: int, layers: int = 2, hf_bits: Sequence[int] | None = None) -> Ansatz:
    """Hardware-efficient ansatz: HF bits, then ``layers`` x (RY and RZ on every wire, CNOT chain).

    It does not conserve particle number: on an active space the optimum can leave the N-electron
    sector. ``2 * n_qubits * layers`` slots. All-zero parameters do not give the HF state (the CNOT
    chain maps it to another determinant); start from small random angles. A CZ entangler keeps HF at
    zero angles but, measured on H2, leaves the optimiser stuck at the HF energy (HF is stationary for
    it); the CNOT chain with 2 layers reaches FCI.
    """
    if isinstance(layers, bool) or not isinstance(layers, (int, np.integer)) or layers < 1:
        raise ValueError(f"layers must be a positive int, got {layers!r}")
    c = Circuit(n_qubits)
    if hf_bits is not None:
        if len(hf_bits) != n_qubits:
            raise ValueError(f"hf_bits has {len(hf_bits)} entries for {n_qubits} qubits")
        _prepare_bits(c, hf_bits)
    labels = []
    for layer in range(layers):
        for w in range(n_qubits):
            c.ry(w)
            labels.append(f"L{layer}.RY{w}")
        for w in range(n_qubits):
            c.rz(w)
            labels.append(f"L{layer}.RZ{w}")
        for w in range(n_qubits - 1):
            c.cnot(w, w + 1)
    return Ansatz(c, tuple(labels), (1.0,) * c.num_params)


# ---------------------------------------------------------------------------------------------------
# energies
# ---------------------------------------------------------------------------------------------------
DENSE_MAX_QUBITS = 10


def _check_h(circuit: Circuit, hamiltonian: PauliSum) -> None:
    if not isinstance(circuit, Circuit):
        raise TypeError(f"expected a qsim.Circuit, got {type(circuit).__name__}")
    if not isinstance(hamiltonian, PauliSum):
        raise TypeError(f"hamiltonian must be a qsim PauliSum, got {type(hamiltonian).__name__}")
    if hamiltonian.wires and max(hamiltonian.wires) >= circuit.n_wires:
        raise ValueError(f"Hamiltonian acts on wire {max(hamiltonian.wires)}, outside the {circuit.n_wires}-wire "
                         "circuit")


def _resolve_method(method: str, n: int) -> str:
    if method == "auto":
        return "dense" if n <= DENSE_MAX_QUBITS else "pauli"
    if method not in ("dense", "pauli"):
        raise ValueError(f"unknown energy method {method!r}; choose 'auto', 'dense' or 'pauli'")
    if method == "dense" and n > DENSE_MAX_QUBITS:
        raise ValueError(f"energy method 'dense' is limited to {DENSE_MAX_QUBITS} qubits, the circuit has {n}")
    return method


def _hamiltonian_data(hamiltonian: PauliSum, n: int, method: str):
    """What the compiled energy takes as an argument: the dense real matrix (``dense``) or nothing."""
    if method == "dense":
        m = hamiltonian.to_matrix(n).toarray()
        if not np.allclose(m.imag, 0):
            raise ValueError("energy method 'dense' needs a real Hamiltonian matrix")
        return jnp.asarray(m.real, jnp.float64 if jax.config.jax_enable_x64 else jnp.float32)
    return jnp.zeros(())


def _energy_impl(circuit: Circuit, hamiltonian: PauliSum | None, method: str, max_fuse: int):
    """``energy(params, hdata)``: with ``dense`` the Hamiltonian is an argument, so one compiled program
    serves every Hamiltonian on the same circuit (H2 and LiH(2,2) share their UCCSD circuit)."""
    def energy(params, hdata):
        psi = simulate(circuit, params, max_fuse=max_fuse)
        if method == "dense":
            re, im = jnp.real(psi), jnp.imag(psi)
            h = hdata.astype(re.dtype)
            return re @ (h @ re) + im @ (h @ im)
        return state_expval(psi, hamiltonian, circuit.n_wires)
    return energy


def make_energy_fn(circuit: Circuit, hamiltonian: PauliSum, method: str = "auto",
                   max_fuse: int | None = None) -> Callable:
    """``energy(params) -> <H>`` as a pure, jit-able JAX function of ``(num_params,)`` params.

    ``method``: ``"pauli"`` is the simulator's matrix-free Pauli-sum expectation (any size);
    ``"dense"`` contracts the state with the dense real Hamiltonian matrix (up to 10 qubits; fastest
    there); ``"auto"`` picks dense up to 10 qubits. ``max_fuse`` is the simulator's gate-fusion width
    (None: its default, 2). Measured for the ladder UCCSD of LiH (2,3), 6 qubits: fusion 2 compiled in
    13 s and ran energy+gradient in 1.7 ms; fusion 4 took 33 s and 48 ms.
    """
    _check_h(circuit, hamiltonian)
    method = _resolve_method(method, circuit.n_wires)
    hdata = _hamiltonian_data(hamiltonian, circuit.n_wires, method)
    f = _energy_impl(circuit, hamiltonian, method, max_fuse)
    return lambda params: f(params, hdata)


def metric_tensor(circuit: Circuit, params, max_fuse: int | None = None) -> jax.Array:
    """Fubini-Study metric ``Re(<d_i psi|d_j psi> - <d_i psi|psi><psi|d_j psi>)``, ``(P, P)``."""
    def re_im(p):
        s = simulate(circuit, p, max_fuse=max_fuse)
        return jnp.stack([jnp.real(s), jnp.imag(s)])

    psi = simulate(circuit, params, max_fuse=max_fuse)
    jac = jax.jacfwd(re_im)(params)             # (2, D, P)
    dpsi = jac[0] + 1j * jac[1]                  # (D, P)
    overlap = jnp.conj(dpsi).T @ dpsi
    berry = jnp.conj(dpsi).T @ psi               # <d_i psi|psi>
    return jnp.real(overlap - jnp.outer(berry, jnp.conj(berry)))


# ---------------------------------------------------------------------------------------------------
# optimisation (exact statevector)
# ---------------------------------------------------------------------------------------------------
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
    if not (isinstance(learning_rate, (int, float)) and learning_rate > 0 and math.isfinite(learning_rate)):
        raise ValueError(f"learning_rate must be a positive finite number, got {learning_rate!r}")
    if name == "lbfgs":
        return optax.lbfgs(learning_rate=learning_rate)
    if name not in _OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {', '.join([*_OPTIMIZERS, 'lbfgs'])}")
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


class _Ref:
    """Carries an object into an lru_cache key without hashing it (the fingerprint is the key)."""

    __slots__ = ("obj",)

    def __init__(self, obj):
        self.obj = obj

    def __hash__(self):
        return 0

    def __eq__(self, other):
        return isinstance(other, _Ref)


@functools.lru_cache(maxsize=64)
def _compiled_step(circuit_key, circuit_ref: _Ref, h_key, h_ref: _Ref, method: str, optimizer: str, qng: bool,
                   qng_damping: float, max_fuse: int, static_lr: float | None):
    circuit, hamiltonian = circuit_ref.obj, h_ref.obj
    energy = _energy_impl(circuit, hamiltonian, method, max_fuse)
    opt = make_optimizer(optimizer, 1.0 if static_lr is None else static_lr)
    return jax.jit(vqe_step(energy, opt, qng=qng, qng_damping=qng_damping, circuit=circuit)), opt


def run_vqe(circuit: Circuit, hamiltonian: PauliSum, *, init_params=None, optimizer: str = "adam",
            learning_rate: float = 0.1, steps: int = 200, qng: bool = False, qng_damping: float = 1e-3,
            tol: float = 0.0, energy_method: str = "auto", max_fuse: int | None = None,
            callback: Callable | None = None,
            dtype=None, init_state: VQEState | None = None, step_offset: int = 0) -> VQEResult:
    """Minimise ``<H>`` over the circuit's parameters with exact statevector energies.

    Args:
        init_params: ``(P,)`` start (default zeros: the HF state for :func:`uccsd`).
        optimizer, learning_rate: see :func:`make_optimizer`.
        steps: maximum number of updates.
        qng: quantum natural gradient preconditioning (see :func:`vqe_step`).
        tol: stop when the energy changed by less than ``tol`` over 10 steps (0: never).
        energy_method, max_fuse: see :func:`make_energy_fn`.
        callback: ``callback(step, energy, grad_norm, state)`` after every step (``state`` a
            :class:`VQEState`: checkpoint it to resume exactly).
        dtype: parameter dtype (default float64 if x64 is enabled, else float32).
        init_state: resume from this :class:`VQEState` (overrides ``init_params``).
        step_offset: added to the step number passed to ``callback`` (for resumed runs).

    The jitted step is cached per (circuit structure, energy method, optimizer, qng): with the
    ``dense`` method the Hamiltonian and the learning rate are arguments, so a second molecule on the
    same circuit (or another learning rate) does not recompile.
    """
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    if qng and optimizer == "lbfgs":
        raise ValueError("qng=True preconditions the gradient; L-BFGS's line search needs the plain one: "
                         "use optimizer='sgd' with qng")
    _check_h(circuit, hamiltonian)
    opt_user = make_optimizer(optimizer, learning_rate)
    method = _resolve_method(energy_method, circuit.n_wires)
    dtype = dtype or (jnp.float64 if jax.config.jax_enable_x64 else jnp.float32)
    p0 = jnp.zeros(circuit.num_params, dtype) if init_params is None else jnp.asarray(init_params, dtype)
    if p0.shape != (circuit.num_params,):
        raise ValueError(f"init_params has shape {p0.shape}; the circuit has {circuit.num_params} parameters")
    hdata = _hamiltonian_data(hamiltonian, circuit.n_wires, method)
    h_key = None if method == "dense" else hamiltonian.key()
    step_fn, _ = _compiled_step(circuit.key(), _Ref(circuit), h_key, _Ref(hamiltonian), method, optimizer,
                                bool(qng), float(qng_damping), max_fuse,
                                float(learning_rate) if optimizer == "lbfgs" else None)
    state = vqe_init(p0, opt_user)
    if init_state is not None:
        if jax.tree_util.tree_structure(init_state) != jax.tree_util.tree_structure(state):
            raise ValueError("init_state does not match this optimizer's state structure")
        state = jax.tree_util.tree_map(lambda a, b: jnp.asarray(a, jnp.asarray(b).dtype), init_state, state)
    energies, gnorms = [], []
    for k in range(int(steps)):
        state, (e, gn) = step_fn(state, hdata)
        e, gn = float(e), float(gn)
        if not math.isfinite(e):
            raise FloatingPointError(f"VQE energy became non-finite at step {k}")
        energies.append(e)
        gnorms.append(gn)
        if callback is not None:
            callback(step_offset + k, e, gn, state)
        if tol > 0 and k >= 10 and abs(energies[-11] - e) < tol:
            break
    final = float(energy_and_grad(circuit, hamiltonian, method, max_fuse)(state.params)[0])
    return VQEResult(np.asarray(state.params), final, np.asarray(energies), np.asarray(gnorms), len(energies))


@functools.lru_cache(maxsize=64)
def _compiled_value_and_grad(circuit_key, circuit_ref: _Ref, h_key, h_ref: _Ref, method: str, max_fuse: int):
    return jax.jit(jax.value_and_grad(_energy_impl(circuit_ref.obj, h_ref.obj, method, max_fuse)))


def energy_and_grad(circuit: Circuit, hamiltonian: PauliSum, method: str = "auto",
                    max_fuse: int | None = None) -> Callable:
    """``f(params) -> (energy, gradient (P,))``, jitted and cached per circuit structure (with the
    ``dense`` method the Hamiltonian is an argument of the compiled program, so other Hamiltonians on
    the same circuit reuse it)."""
    _check_h(circuit, hamiltonian)
    method = _resolve_method(method, circuit.n_wires)
    hdata = _hamiltonian_data(hamiltonian, circuit.n_wires, method)
    h_key = None if method == "dense" else hamiltonian.key()
    f = _compiled_value_and_grad(circuit.key(), _Ref(circuit), h_key, _Ref(hamiltonian), method, max_fuse)
    return lambda params: f(jnp.asarray(params), hdata)


# ---------------------------------------------------------------------------------------------------
# shot-based energies on any backend
# ---------------------------------------------------------------------------------------------------
def _backend(backend):
    if isinstance(backend, str):

        return get_backend(backend)
    return backend


def shot_estimate(backend, circuit: Circuit, params, hamiltonian: PauliSum, shots: int, key=None):
    """``Estimate(mean, stderr)`` of ``<H>`` from ``shots`` shots per measurement group on ``backend``.

    ``stderr`` is the backend's own estimate from the sampled frequencies. Backends measure the
    qubit-wise commuting groups of :func:`qsim.backends.group_observable` with ``shots`` shots each.
    """
    if isinstance(shots, bool) or not isinstance(shots, (int, np.integer)) or shots < 1:
        raise ValueError(f"shots must be a positive int, got {shots!r}")
    return _backend(backend).estimate(circuit, np.asarray(params, np.float64), hamiltonian, int(shots), key=key)


def exact_stderr(circuit: Circuit, params, hamiltonian: PauliSum, shots: int) -> float:
    """The exact standard error of the grouped ``shots``-shot estimator at ``params`` (from the
    statevector backend: every qsim backend uses the same grouping)."""

    return float(get_backend("statevector").shot_stderr(circuit, np.asarray(params, np.float64), hamiltonian,
                                                        int(shots)))


class ShotVQEResult(NamedTuple):
    params: np.ndarray
    energy: float            # final shot estimate (final_shots per group)
    energy_stderr: float
    exact_energy: float      # statevector energy of the final parameters
    energies: np.ndarray     # (steps,) shot estimate before each update
    steps: int


def run_vqe_shots(circuit: Circuit, hamiltonian: PauliSum, backend, *, shots: int = 1000,
                  init_params=None, optimizer: str = "adam", learning_rate: float = 0.05, steps: int = 50,
                  gradient: str = "parameter-shift", final_shots: int | None = None, seed: int = 0,
                  callback: Callable | None = None) -> ShotVQEResult:
    """VQE with shot-based energies and gradients on ``backend`` (name or object).

    Each step: the energy from ``shots`` shots per measurement group and its gradient by parameter
    shift (shared slots expanded, one batched job; :mod:`qsim.gradients`) or SPSA; an optax update.
    The final parameters are evaluated with ``final_shots`` (default ``10 * shots``) and exactly.
    """

    for name, v in (("shots", shots), ("steps", steps)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    b = _backend(backend)
    loss = make_expval(b, circuit, hamiltonian, shots=int(shots), gradient=gradient)
    vg = jax.value_and_grad(loss)
    opt = make_optimizer(optimizer, learning_rate)
    params = jnp.zeros(circuit.num_params, jnp.float64 if jax.config.jax_enable_x64 else jnp.float32)
    if init_params is not None:
        params = jnp.asarray(init_params, params.dtype)
        if params.shape != (circuit.num_params,):
            raise ValueError(f"init_params has shape {params.shape}; the circuit has {circuit.num_params}")
    opt_state = opt.init(params)
    key = jax.random.key(seed)
    energies = []
    for k in range(int(steps)):
        key, sub = jax.random.split(key)
        e, g = vg(params, sub)
        upd, opt_state = opt.update(g, opt_state, params)
        params = optax.apply_updates(params, upd)
        energies.append(float(e))
        if callback is not None:
            callback(k, float(e), float(jnp.linalg.norm(g)), params)
    key, sub = jax.random.split(key)
    est = b.estimate(circuit, np.asarray(params, np.float64), hamiltonian, int(final_shots or 10 * shots), key=sub)
    exact = float(energy_and_grad(circuit, hamiltonian)(params)[0])
    return ShotVQEResult(np.asarray(params), float(est.mean), float(est.stderr), exact, np.asarray(energies),
                         len(energies))
