"""The package surface: the task classes are exported, and importing the package stays light."""

from __future__ import annotations

import subprocess
import sys

import pytest

import federation


def test_import_federation_imports_neither_flower_nor_torch():
    # a fresh interpreter: this test process may have imported both already
    code = (
        "import sys, federation; "
        "print(sorted(m for m in ('flwr', 'torch', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_task_classes_are_exported_from_their_modules():
    from federation.device_task import DeviceTask
    from federation.instruct_task import InstructTask

    assert {"InstructTask", "DeviceTask"} <= set(federation.__all__)
    assert federation.InstructTask is InstructTask
    assert federation.DeviceTask is DeviceTask
    missing = [name for name in federation.__all__ if not hasattr(federation, name)]
    assert missing == []


def test_an_unknown_name_is_an_attribute_error_naming_it():
    with pytest.raises(AttributeError, match="'federation' has no attribute 'InstructTsk'"):
        _ = federation.InstructTsk
