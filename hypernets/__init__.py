"""hypernets: quantum hypernetworks that train binary neural networks in superposition.

A circuit's measured bitstrings are whole binary networks (``layout``); every network's cost is computed
classically once (``landscape``); the circuit (``ansatz``) is trained so that the best networks carry
most of the probability (``train``). See docs/hypernets.md. ``depth`` counts layer steps.
"""

from .data import Dataset, digits_data, gaussian_data, make_dataset
from .landscape import Landscape, compute_landscape, evaluate_networks
from .layout import Choice, Layout, Weights, bits_from_index, index_from_bits
from .tasks import Task, digits_task, gaussian_task, get_task, make_task
import importlib

__all__ = ["Layout", "Weights", "Choice", "bits_from_index", "index_from_bits", "Dataset", "gaussian_data",
           "digits_data", "make_dataset", "Task", "make_task", "gaussian_task", "digits_task", "get_task",
           "Landscape", "compute_landscape", "evaluate_networks", "ansatz", "train"]


def __getattr__(name):
    if name in ("ansatz", "train"):

        return importlib.import_module(f"hypernets.{name}")
    raise AttributeError(f"module 'hypernets' has no attribute {name!r}")
