"""LoRA on a shared backbone: target modules per architecture, adapter state as fp32 arrays.

``enable_lora`` wraps the backbone's model in peft once. An adapter state is a plain
``dict[str, np.ndarray]`` of fp32 arrays keyed by parameter name (what Flower's ``ArrayRecord``
carries); ``activate`` copies one into the shared model, so swapping agents costs a copy of the
adapter, not a model load. ``state_version`` hashes a state: equal states share cached
embeddings, and a backbone's :class:`StateTable` (``backbone.states``, made by ``enable_lora``)
interns them: agents holding equal states share one set of read-only arrays (copy on write: an
agent that trains or loads a new state gets a new entry, the others keep theirs).

Example:
    >>> from agents.models import load_model
    >>> bb = load_model("tiny-encoder")
    >>> state = enable_lora(bb, rank=2)
    >>> sorted(state)[0]
    'encoder.layer.0.attention.self.query.lora_A.default.weight'
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from ._errors import AgentError
from .models import Backbone

State = dict[str, np.ndarray]


def target_modules(model: torch.nn.Module) -> list[str]:
    """Attention projections to adapt, from peft's table for the model's architecture.

    Falls back to the query/value projections found by name, and errors if there are none.
    """
    from peft.utils import constants

    table = constants.TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING
    found = table.get(model.config.model_type)
    if found:
        return list(found)
    linear = {
        n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)
    }
    guess = sorted(linear & {"query", "value", "q_proj", "v_proj", "q_lin", "v_lin", "c_attn"})
    if not guess:
        raise AgentError(
            f"no LoRA target modules known for model_type {model.config.model_type!r}; "
            f"its linear layers are {sorted(linear)}"
        )
    return guess


_architecture_targets = target_modules  # enable_lora's parameter of that name shadows it


def adaptable_layers(backbone: Backbone) -> dict[str, str]:
    """``{module name: class name}`` of the layers LoRA can adapt on ``backbone``: peft's
    linear, embedding, convolution and GPT-2 ``Conv1D`` layers inside the transformer body
    (``backbone.core``; the adapter state covers only the body, so an LM head is left out),
    named as in the unwrapped model, in model order."""
    kinds = ("Linear", "Embedding", "Conv1d", "Conv2d", "Conv3d", "Conv1D")
    body = {id(m) for m in backbone.core.modules()}
    model = backbone.model if backbone.lora is None else backbone.model.get_base_model()
    return {
        n: type(m).__name__
        for n, m in model.named_modules()
        if id(m) in body and type(m).__name__ in kinds
    }


def _check_targets(backbone: Backbone, requested: str | Sequence[str]) -> list[str]:
    """The requested target names after checking each matches an adaptable layer the way peft
    matches them (the whole module name or a dotted suffix of it)."""
    names = [requested] if isinstance(requested, str) else list(requested)
    if not names or not all(isinstance(t, str) and t.strip() for t in names):
        raise AgentError(
            f"target_modules must be a non-empty list of module names, got {requested!r}"
        )
    layers = adaptable_layers(backbone)
    missing = [t for t in names if not any(n == t or n.endswith("." + t) for n in layers)]
    if missing:
        model_type = backbone.core.config.model_type
        short = sorted({n.rsplit(".", 1)[-1] for n in layers})
        raise AgentError(
            f"target_modules {missing} match no layer of this {model_type!r} model's body that "
            f"LoRA can adapt; its adaptable layers are named {short} (or give a dotted suffix "
            f"of a full name such as {next(iter(layers), '')!r})"
        )
    return names


def enable_lora(
    backbone: Backbone,
    *,
    rank: int = 8,
    alpha: float = 16.0,
    seed: int = 0,
    target_modules: str | Sequence[str] | None = None,
) -> State:
    """Wrap ``backbone.model`` with LoRA (once) and return the initial adapter state.

    The initial state is peft's (A random with ``seed``, B zero), so a fresh adapter leaves
    the model's outputs unchanged. Calling again with the same rank, alpha and targets returns
    the current state; anything else is an error (one shared model has one adapter shape).

    Args:
        backbone: the shared backbone (wrapped in place).
        rank: LoRA rank r >= 1; alpha: its scaling numerator (update scale ``alpha / r``).
        seed: seeds the random A matrices.
        target_modules: names of the layers to adapt, matched as peft matches them (a whole
            module name or a dotted suffix, e.g. ``["q_proj", "k_proj", "v_proj", "o_proj"]``);
            ``None`` picks :func:`target_modules` (peft's table for the architecture, e.g.
            query/value attention projections).

    Raises:
        AgentError: rank < 1; a target that names no adaptable layer (the message lists the
            layer names there are); LoRA already enabled with other settings.
    """
    if int(rank) != rank or rank < 1:
        raise AgentError(f"rank must be an integer >= 1, got {rank}")
    wanted = None if target_modules is None else _check_targets(backbone, target_modules)
    if backbone.lora is not None:
        have = set(backbone.lora.target_modules)
        if (
            backbone.lora.r != rank
            or backbone.lora.lora_alpha != alpha
            or (wanted is not None and set(wanted) != have)
        ):
            raise AgentError(
                f"LoRA already enabled with rank {backbone.lora.r}, alpha "
                f"{backbone.lora.lora_alpha}, target_modules {sorted(have)}; got rank {rank}, "
                f"alpha {alpha}, target_modules {wanted}"
            )
        return initial_adapter(backbone)
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=int(rank),
        lora_alpha=alpha,
        lora_dropout=0.0,
        target_modules=_architecture_targets(backbone.model) if wanted is None else wanted,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        backbone.model = get_peft_model(backbone.model, config).eval()
    backbone.lora = config
    backbone.states = StateTable()
    backbone.model.requires_grad_(False)
    backbone.initial_adapter = adapter_state(backbone)
    backbone.active_version = state_version(backbone.initial_adapter)
    return initial_adapter(backbone)


def initial_adapter(backbone: Backbone) -> State:
    """A copy of the adapter state ``enable_lora`` started from (every new agent's)."""
    if backbone.lora is None:
        raise AgentError("LoRA is not enabled on this backbone; call enable_lora first")
    return {k: v.copy() for k, v in backbone.initial_adapter.items()}


def adapter_parameters(backbone: Backbone) -> dict[str, torch.nn.Parameter]:
    """The LoRA parameters of the shared model, keyed by name relative to ``backbone.core``."""
    if backbone.lora is None:
        raise AgentError("LoRA is not enabled on this backbone; call enable_lora first")
    return {n: p for n, p in backbone.core.named_parameters() if "lora_" in n}


def adapter_state(backbone: Backbone) -> State:
    """A copy of the active adapter as fp32 numpy arrays."""
    return {
        n: p.detach().numpy().astype(np.float32) for n, p in adapter_parameters(backbone).items()
    }


def state_version(state: Mapping[str, np.ndarray]) -> str:
    """Content hash of a state (names, shapes and bytes): equal states, equal versions."""
    digest = hashlib.blake2b(digest_size=12)
    for name in sorted(state):
        arr = np.ascontiguousarray(state[name], dtype=np.float32)
        digest.update(f"{name}{arr.shape}".encode())
        digest.update(arr.tobytes())
    return digest.hexdigest()


def activate(backbone: Backbone, state: Mapping[str, np.ndarray], version: str) -> None:
    """Copy ``state`` into the shared model unless ``version`` is already active."""
    if backbone.active_version == version:
        return
    params = adapter_parameters(backbone)
    check_state(state, {n: tuple(p.shape) for n, p in params.items()})
    with torch.no_grad():
        for name, param in params.items():
            # torch.tensor copies: interned states are read-only, which from_numpy warns about
            param.copy_(torch.tensor(np.asarray(state[name], dtype=np.float32)))
    backbone.active_version = version


def check_state(state: Mapping[str, np.ndarray], shapes: Mapping[str, tuple[int, ...]]) -> None:
    """Raise :class:`AgentError` unless ``state`` has exactly these names and shapes."""
    if set(state) != set(shapes):
        extra, lacking = sorted(set(state) - set(shapes)), sorted(set(shapes) - set(state))
        raise AgentError(f"state keys do not match: unexpected {extra[:3]}, missing {lacking[:3]}")
    for name, shape in shapes.items():
        if tuple(np.shape(state[name])) != shape:
            raise AgentError(f"state[{name!r}] has shape {np.shape(state[name])}, expected {shape}")


def state_nbytes(state: Mapping[str, np.ndarray]) -> int:
    """Bytes of the arrays in a state (what one upload of it costs, without framing)."""
    return int(sum(np.asarray(v).nbytes for v in state.values()))


def save_state(path: str | Path, state: Mapping[str, np.ndarray]) -> Path:
    """Write a state to an ``.npz`` file atomically (temporary file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **{k: np.asarray(v, dtype=np.float32) for k, v in state.items()})
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_state(path: str | Path) -> State:
    """Read a state written by :func:`save_state`."""
    with np.load(Path(path)) as data:
        return {k: data[k].astype(np.float32) for k in data.files}


class SharedState(dict):  # type: ignore[type-arg]
    """An interned adapter + head state: a read-only ``dict[str, np.ndarray]`` that several
    agents hold at once (its arrays are not writeable; the dict refuses changes)."""

    def _refuse(self, *args: object, **kwargs: object) -> None:
        raise AgentError("a shared state is read-only; load a new state instead")

    __setitem__ = __delitem__ = update = pop = popitem = clear = setdefault = _refuse  # type: ignore[assignment]


class StateTable:
    """Interned states of one backbone, keyed by :func:`state_version` (weakly: a state no
    agent holds any longer is dropped).

    Example:
        >>> table = StateTable()
        >>> a, version = table.intern({"w": np.ones(3)})
        >>> b, _ = table.intern({"w": np.ones(3)})
        >>> a is b, a["w"].flags.writeable, table.nbytes
        (True, False, 12)
    """

    def __init__(self) -> None:
        self._states: weakref.WeakValueDictionary[str, SharedState] = weakref.WeakValueDictionary()

    def intern(self, state: Mapping[str, np.ndarray]) -> tuple[SharedState, str]:
        """The shared fp32 copy of ``state`` (made on first sight of its version) and its
        version."""
        version = state_version(state)
        found = self._states.get(version)
        if found is None:
            arrays = {k: np.array(v, dtype=np.float32) for k, v in state.items()}
            for arr in arrays.values():
                arr.flags.writeable = False
            found = self._states[version] = SharedState(arrays)
        return found, version

    def __len__(self) -> int:
        return len(self._states)

    @property
    def nbytes(self) -> int:
        """Bytes of all distinct states held by someone (each counted once)."""
        return sum(state_nbytes(s) for s in self._states.values())
