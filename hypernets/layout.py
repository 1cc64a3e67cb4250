"""Bit layouts: what each qubit of a hypernetwork encodes.

A :class:`Layout` is an ordered list of fields. Field ``k`` owns a contiguous run of bits; the bits
of the whole layout are the qubits of the circuit in wire order, so wire 0 is bit 0 of the layout
and the **most significant bit** of the basis-state index used by ``qsim.probs`` / ``qsim.sample``
(index ``i`` has bit ``j`` equal to ``(i >> (N - 1 - j)) & 1``).

Field kinds

- :class:`Weights` ``(name, shape)``: ``prod(shape)`` bits, row-major; a bit ``b`` decodes to the binary
  weight ``w = 2 b - 1`` (0 -> -1, 1 -> +1).
- :class:`Choice` ``(name, options)``: ``log2(len(options))`` bits (the count must be a power of two),
  first bit most significant; decodes to the integer index of the chosen option (a hyperparameter or
  an architecture choice). ``layout.option(decoded, name)`` maps indices to option values.

Example::

    lay = Layout([Weights("W1", (2, 4)), Weights("b1", (4,)), Weights("W2", (4,)),
                  Weights("b2", ()), Choice("activation", ("relu", "sigmoid"))])
    lay.num_bits                      # 18
    dec = lay.decode(bits)            # bits: (batch, 18) ints -> {"W1": (batch, 2, 4) ±1, ..., "activation": (batch,)}

Decoding works on NumPy and JAX arrays (it is jit- and vmap-friendly).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from qsim.infra.validation import indices_to_bits

__all__ = ["Weights", "Choice", "Layout", "bits_from_index", "index_from_bits"]


@dataclass(frozen=True)
class Weights:
    """Binary weights of shape ``shape``: ``prod(shape)`` bits, ``w = 2b - 1``."""

    name: str
    shape: tuple[int, ...] = ()

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"field name must be a non-empty string, got {self.name!r}")
        shape = tuple(int(s) for s in (self.shape if isinstance(self.shape, (tuple, list)) else (self.shape,)))
        if any(s <= 0 for s in shape):
            raise ValueError(f"weights {self.name!r}: shape {shape} must have positive sizes")
        object.__setattr__(self, "shape", shape)

    @property
    def num_bits(self) -> int:
        return int(math.prod(self.shape))


@dataclass(frozen=True)
class Choice:
    """A choice among ``options`` (a power-of-two count >= 2), ``log2(len(options))`` bits."""

    name: str
    options: tuple = (0, 1)

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"field name must be a non-empty string, got {self.name!r}")
        opts = tuple(self.options)
        n = len(opts)
        if n < 2 or n & (n - 1):
            raise ValueError(f"choice {self.name!r}: the number of options must be a power of two >= 2, "
                             f"got {n} ({opts!r})")
        object.__setattr__(self, "options", opts)

    @property
    def num_bits(self) -> int:
        return len(self.options).bit_length() - 1


Field = Weights | Choice


def bits_from_index(index, num_bits: int, xp=np):
    """Basis-state indices ``(batch,)`` -> bits ``(batch, num_bits)`` (uint8 for NumPy, int32 for JAX);
    bit 0 is the most significant (wire 0), as in ``qsim.probs``."""
    if num_bits < 1 or num_bits > 62:
        raise ValueError(f"num_bits must be in 1..62, got {num_bits}")
    if xp is np:
        return indices_to_bits(index, num_bits).astype(np.uint8)
    index = xp.asarray(index)                       # traceable: the same shifts in JAX
    shifts = xp.arange(num_bits - 1, -1, -1, dtype=index.dtype)
    return ((index[..., None] >> shifts) & 1).astype("int32")


def index_from_bits(bits, xp=np):
    """Bits ``(batch, N)`` (bit 0 most significant) -> indices ``(batch,)`` (int64 for NumPy)."""
    bits = xp.asarray(bits)
    n = bits.shape[-1]
    dt = np.int64 if xp is np else "int32"
    weights = (1 << xp.arange(n - 1, -1, -1)).astype(dt)
    return (bits.astype(dt) * weights).sum(-1)


class Layout:
    """An ordered, named list of fields; see the module docstring."""

    def __init__(self, fields: Sequence[Field]):
        fields = tuple(fields)
        if not fields:
            raise ValueError("a layout needs at least one field")
        names = set()
        for f in fields:
            if not isinstance(f, (Weights, Choice)):
                raise TypeError(f"layout fields must be Weights or Choice, got {type(f).__name__}: {f!r}")
            if f.name in names:
                raise ValueError(f"duplicate field name {f.name!r} in layout")
            names.add(f.name)
        self.fields = fields
        offsets, start = {}, 0
        for f in fields:
            offsets[f.name] = (start, start + f.num_bits)
            start += f.num_bits
        self.offsets = offsets
        self.num_bits = start

    # -- introspection ---------------------------------------------------------------------
    def __repr__(self) -> str:
        parts = [f"Weights({f.name!r}, {f.shape})" if isinstance(f, Weights) else
                 f"Choice({f.name!r}, {f.options!r})" for f in self.fields]
        return f"Layout([{', '.join(parts)}])"

    def __eq__(self, other) -> bool:
        return isinstance(other, Layout) and self.fields == other.fields

    def __hash__(self) -> int:
        return hash(self.fields)

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"no field {name!r} in {self!r}")

    def check_num_qubits(self, num_qubits: int) -> None:
        """ValueError unless the circuit has exactly one qubit per bit of this layout."""
        if int(num_qubits) != self.num_bits:
            raise ValueError(f"layout has {self.num_bits} bits but the circuit has {num_qubits} qubits; "
                             f"they must match one to one ({self!r})")

    # -- decoding ----------------------------------------------------------------------------
    def field_bits(self, bits, name: str):
        """The raw bits of field ``name``: ``(batch, *shape)`` for Weights, ``(batch, k)`` for Choice."""
        lo, hi = self.offsets[name]
        f = self.field(name)
        sub = bits[..., lo:hi]
        if isinstance(f, Weights):
            return sub.reshape(sub.shape[:-1] + f.shape)
        return sub

    def decode(self, bits, dtype: Any = np.float32) -> dict:
        """Bits ``(..., N)`` (0/1 ints, NumPy or JAX) -> ``{name: value}``.

        Weights decode to ``2b - 1`` of ``dtype`` with shape ``(..., *shape)``; choices to int32
        indices ``(...,)``."""
        if bits.shape[-1] != self.num_bits:
            raise ValueError(f"bitstrings have {bits.shape[-1]} bits but the layout has {self.num_bits} "
                             f"({self!r})")
        out = {}
        for f in self.fields:
            sub = self.field_bits(bits, f.name).astype(np.int32)
            if isinstance(f, Weights):
                out[f.name] = (2 * sub - 1).astype(dtype)
            else:
                k = f.num_bits
                place = np.asarray([1 << (k - 1 - i) for i in range(k)], dtype=np.int32)
                out[f.name] = (sub.astype(np.int32) * place).sum(-1).astype(np.int32)
        return out

    def decode_index(self, index, dtype: Any = np.float32) -> dict:
        """Basis-state indices (NumPy) -> decoded fields (see :meth:`decode`)."""
        return self.decode(bits_from_index(np.asarray(index, dtype=np.int64), self.num_bits), dtype)

    def option(self, decoded: dict, name: str):
        """The option values chosen by the decoded index array of choice ``name`` (NumPy object array)."""
        f = self.field(name)
        if not isinstance(f, Choice):
            raise TypeError(f"field {name!r} is not a Choice")
        table = np.empty(len(f.options), dtype=object)
        table[:] = list(f.options)
        return table[np.asarray(decoded[name])]

    def encode(self, values: dict) -> np.ndarray:
        """Inverse of :meth:`decode` for one network: ``{name: ±1 array | option index}`` -> bits ``(N,)``.

        Weights accept ±1 (or 0/1 bits); a choice accepts its option index or the option value."""
        missing = [f.name for f in self.fields if f.name not in values]
        extra = [k for k in values if k not in self.offsets]
        if missing or extra:
            raise ValueError(f"encode needs exactly the fields {list(self.offsets)}; missing {missing}, "
                             f"unknown {extra}")
        bits = np.zeros(self.num_bits, dtype=np.uint8)
        for f in self.fields:
            lo, hi = self.offsets[f.name]
            v = values[f.name]
            if isinstance(f, Weights):
                arr = np.asarray(v).reshape(-1)
                if arr.size != f.num_bits:
                    raise ValueError(f"field {f.name!r}: expected {f.num_bits} values of shape {f.shape}, "
                                     f"got {np.shape(v)}")
                if np.all(np.isin(arr, (-1, 1))):
                    arr = (arr + 1) // 2
                elif not np.all(np.isin(arr, (0, 1))):
                    raise ValueError(f"field {f.name!r}: weights must be ±1 (or 0/1 bits), got {arr}")
                bits[lo:hi] = arr.astype(np.uint8)
            else:
                if isinstance(v, (int, np.integer)) and not isinstance(v, bool) and 0 <= v < len(f.options):
                    idx = int(v)
                elif v in f.options:
                    idx = f.options.index(v)
                else:
                    raise ValueError(f"choice {f.name!r}: {v!r} is neither an option {f.options} nor an index")
                k = f.num_bits
                bits[lo:hi] = [(idx >> (k - 1 - i)) & 1 for i in range(k)]
        return bits

    def describe(self, bits) -> dict:
        """One network as plain Python: weights as nested lists of ±1, choices as option values."""
        bits = np.asarray(bits).reshape(-1)
        dec = self.decode(bits[None, :])
        out = {}
        for f in self.fields:
            if isinstance(f, Weights):
                out[f.name] = np.asarray(dec[f.name][0]).astype(int).tolist()
            else:
                out[f.name] = f.options[int(dec[f.name][0])]
        return out
