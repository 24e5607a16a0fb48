"""Progress a person can follow: labelled phases, and the libraries' output in run.log."""

from __future__ import annotations

import logging
import os
import warnings

from economy.cli import main
from economy.progress import PHASE_LOGGER, library_output_to, phase, progress_bar
from economy.rundir import RUN_LOG

TINY = ["-c", "market.users=20", "-c", "market.advertisers=3", "-c", "market.steps=2"]
TINY += ["-c", "agents.scorer=category", "-c", "federated.every=0"]


def test_libraries_go_to_the_log_file_ours_also_to_the_terminal(tmp_path, capsys):
    lib = logging.getLogger("somelib")
    console = logging.StreamHandler()
    lib.addHandler(console)  # a library that prints its own records
    try:
        with library_output_to(tmp_path / "run.log"):
            warnings.warn("a library's deprecation", FutureWarning, stacklevel=1)
            lib.warning("a library's warning")
            lib.info("a library's chatter")
            logging.getLogger("economy.something").warning("our warning")
            phase("step %d of %d", 1, 2)
        assert lib.handlers == [console]  # put back
    finally:
        lib.removeHandler(console)
    log = (tmp_path / "run.log").read_text()
    for line in ("a library's deprecation", "a library's warning", "our warning", "step 1 of 2"):
        assert line in log
    assert "a library's chatter" not in log  # libraries from WARNING, ours from INFO
    err = capsys.readouterr().err
    assert "our warning" in err
    assert "a library's" not in err and "step 1 of 2" not in err


def test_the_bar_label_follows_the_phases():
    labels = []
    with progress_bar(3, "demo", enabled=False) as update:
        handler = logging.getLogger(PHASE_LOGGER).handlers[-1]
        original = handler.set_label
        handler.set_label = lambda text: labels.append(text) or original(text)
        phase("federated round %d: valuing %d updates (%s)", 2, 8, "svarm-cv")
        update(1, "revenue 1.0")
    assert labels == ["federated round 2: valuing 8 updates (svarm-cv)"]
    assert not logging.getLogger(PHASE_LOGGER).handlers  # removed on exit


def test_a_run_logs_its_phases_in_its_folder(tmp_path):
    assert main(["run", "-o", str(tmp_path), "--no-progress", *TINY]) == 0
    (run,) = tmp_path.iterdir()
    log = (run / RUN_LOG).read_text()
    assert "building the world" in log and "step 2 of 2: auctions and feedback" in log


def test_hugging_face_bars_are_off_inside_and_restored_after(tmp_path, monkeypatch, capsys):
    from transformers.utils import logging as hf_logging
    from transformers.utils.logging import tqdm as hf_tqdm

    monkeypatch.delenv("HF_HUB_DISABLE_PROGRESS_BARS", raising=False)
    hf_logging.enable_progress_bar()
    with library_output_to(tmp_path / "run.log"):
        assert os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "1"  # for Ray's workers too
        for _ in hf_tqdm(range(3), desc="Loading weights"):
            pass
    assert "Loading weights" not in capsys.readouterr().err
    assert hf_logging.is_progress_bar_enabled()
    assert "HF_HUB_DISABLE_PROGRESS_BARS" not in os.environ
