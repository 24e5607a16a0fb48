"""Checkpoints against faults and hostile files (issue 14, item 2): a pickle-free format whose
digests are checked before anything is decoded, a ledger copy checked with the ledger's key,
a run killed before its first checkpoint started again, temp files of a killed write cleaned;
and the ledger head a complete run keeps in summary.json, checked by `fedadagent ledger
verify` and `fedadagent report` (item 1).

The attacker here can write the run folder and knows the format: they recompute every sha256
(the digests catch corruption and hand edits, not a determined writer). What must hold anyway:
nothing they write is executed, and a ledger copy they forge is refused.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import platform
import shutil
import sqlite3
import stat
from importlib import metadata

import numpy as np
import pytest

import economy.runner
from economy.checkpoint import CheckpointError, load_checkpoint
from economy.cli import main
from economy.config import parse_config
from economy.environment import differences
from economy.report import make_report
from economy.run_ledger import verify_run_ledger
from economy.rundir import (
    CHECKPOINT,
    DEVICES,
    ENVIRONMENT,
    GRAPH,
    LEDGER,
    LEDGER_KEY,
    PLOTS,
    SUMMARY,
    RunFolderError,
    create_run_dir,
)
from economy.runner import resume_market, run_market
from incentives import Ledger

SMALL = {
    "name": "c",
    "seed": 7,
    "market": {"users": 30, "advertisers": 5, "steps": 4, "impressions_per_user": 2},
    "agents": {"scorer": "category"},
    "federated": {"every": 0},
}


class Payload:
    """Unpickling this creates ``path``: what a malicious pickle does."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    return run_market(parse_config({**SMALL, "output_dir": str(tmp_path_factory.mktemp("r"))}))


def stopped_at(tmp_path, step):
    """A run folder interrupted after ``step`` steps (a checkpoint after each step)."""
    cfg = parse_config({**SMALL, "output_dir": str(tmp_path)})
    run = create_run_dir(cfg)

    def stop(state):
        if state.step == step:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_market(cfg, run, on_step=stop)
    return run


def manifest(run):
    return json.loads((run / CHECKPOINT).read_text())


def seal(run, doc):
    """Write ``doc`` as the manifest with a correct self-digest (sha256 of the canonical JSON
    of the other fields), as an attacker who read the module docstring can."""
    rest = {k: v for k, v in doc.items() if k != "sha256"}
    text = json.dumps(rest, sort_keys=True, separators=(",", ":"))
    doc = {**rest, "sha256": hashlib.sha256(text.encode()).hexdigest()}
    (run / CHECKPOINT).write_text(json.dumps(doc))


def replace_part(run, name, arrays):
    """Rewrite part ``name`` with ``arrays`` and reseal the manifest around it."""
    doc = manifest(run)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    data = buf.getvalue()
    (run / doc["parts"][name]["file"]).write_bytes(data)
    doc["parts"][name]["sha256"] = hashlib.sha256(data).hexdigest()
    seal(run, doc)


def part_arrays(run, name):
    with np.load(run / manifest(run)["parts"][name]["file"]) as npz:
        return {k: npz[k] for k in npz.files}


def test_files_and_modes(tmp_path):
    run = stopped_at(tmp_path, 2)
    doc = manifest(run)
    assert doc["format"] == 2 and doc["step"] == 2 and not (run / "checkpoint.pkl").exists()
    paths = {k: run / doc["parts"][k]["file"] for k in ("server", "private")}
    assert paths["server"].parent == run and paths["private"].parent == run / DEVICES
    assert stat.S_IMODE(paths["private"].stat().st_mode) == 0o600
    assert stat.S_IMODE((run / DEVICES).stat().st_mode) == 0o700
    for name, path in paths.items():
        assert hashlib.sha256(path.read_bytes()).hexdigest() == doc["parts"][name]["sha256"]
    # one checkpoint on disk: the parts of the earlier ones are gone
    assert set(run.rglob("checkpoint-*.npz")) == set(paths.values())


def test_the_devices_part_is_needed(tmp_path):
    run = stopped_at(tmp_path, 1)
    (run / manifest(run)["parts"]["private"]["file"]).unlink()
    with pytest.raises(CheckpointError, match="is missing"):
        load_checkpoint(run)


@pytest.mark.parametrize("where", ["server", "private", "manifest"])
def test_an_edited_checkpoint_is_refused(tmp_path, where):
    run = stopped_at(tmp_path, 2)
    if where == "manifest":
        doc = manifest(run)
        doc["step"] = 1
        (run / CHECKPOINT).write_text(json.dumps(doc))
    else:
        path = run / manifest(run)["parts"][where]["file"]
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 1
        path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="edited or corrupted"):
        resume_market(run)
    assert not (run / SUMMARY).exists()


def test_an_old_pickle_checkpoint_is_never_read(tmp_path):
    run = stopped_at(tmp_path, 1)
    (run / CHECKPOINT).unlink()
    import pickle

    marker = tmp_path / "pwned"
    (run / "checkpoint.pkl").write_bytes(pickle.dumps(Payload(marker)))
    with pytest.raises(CheckpointError, match="never read"):
        resume_market(run)
    assert not marker.exists()


def test_a_pickled_array_is_refused_and_not_run(tmp_path):
    run = stopped_at(tmp_path, 1)
    marker = tmp_path / "pwned"
    arrays = part_arrays(run, "server")
    arrays["s0"] = np.array([Payload(marker)], dtype=object)  # np.savez pickles it
    replace_part(run, "server", arrays)
    with pytest.raises(CheckpointError, match=r"nothing in it was run.*allow_pickle"):
        resume_market(run)
    assert not marker.exists()


@pytest.mark.parametrize("cls", ["os:system", "builtins:eval", "economy.rundir:RunFolderError"])
def test_a_class_outside_the_list_is_refused(tmp_path, cls):
    run = stopped_at(tmp_path, 1)
    arrays = part_arrays(run, "server")
    tree = json.loads(arrays["__tree__"].tobytes())
    tree["records"][0] = {"cls": cls, "state": {}, "part": "server"}
    arrays["__tree__"] = np.frombuffer(json.dumps(tree).encode(), np.uint8)
    replace_part(run, "server", arrays)
    with pytest.raises(CheckpointError, match="cannot hold"):
        resume_market(run)


def test_a_part_outside_the_run_folder_is_refused(tmp_path):
    run = stopped_at(tmp_path, 1)
    doc = manifest(run)
    doc["parts"]["server"]["file"] = "../../etc/passwd"
    seal(run, doc)
    with pytest.raises(CheckpointError, match="bad file"):
        load_checkpoint(run)


def ledger_in_checkpoint(run, edit=None):
    """Put a real ledger (its key in the run folder) into the checkpoint, as a federated
    run's checkpoint holds it; ``edit(image) -> (image, head)`` changes the copy and the head
    the manifest records, without the key. Returns the real head."""
    with Ledger(run / LEDGER) as led:
        led.mint("user-1", 2.0, round=1)
        led.mint("user-2", 1.0, round=1)
        image, head = led.image(), led.head()
    real = head
    if edit is not None:
        image, head = edit(image)
    arrays = part_arrays(run, "server")
    arrays["__ledger__"] = np.frombuffer(image, np.uint8)
    replace_part(run, "server", arrays)
    doc = manifest(run)
    doc["ledger_head"] = list(head)
    seal(run, doc)
    with Ledger(run / LEDGER) as led:  # the live ledger went on after the checkpoint
        led.mint("user-3", 5.0, round=2)
    return real


def forge(image):
    """Raise an amount in the copy, recomputing the plain hash chain and the stored head as
    the module docstring publishes them (no key: no MAC)."""
    db = sqlite3.connect(":memory:")
    db.deserialize(image)
    db.execute("DROP TRIGGER no_update")
    db.execute("UPDATE entries SET amount = amount * 10 WHERE seq = 1")
    prev, rows = (
        "0" * 64,
        db.execute(
            "SELECT seq, account, counterparty, amount, kind, round, memo FROM entries ORDER BY seq"
        ),
    )
    for seq, *row in rows.fetchall():
        text = json.dumps(["entry", prev, seq, *row], ensure_ascii=False, separators=(",", ":"))
        digest = hashlib.sha256(text.encode()).hexdigest()
        db.execute("UPDATE entries SET prev_hash = ?, hash = ? WHERE seq = ?", (prev, digest, seq))
        prev, last = digest, seq
    db.execute("UPDATE head SET hash = ?", (prev,))
    db.commit()
    out = db.serialize()
    db.close()
    return out, (last, prev)


def test_the_ledger_copy_is_restored_once_it_verifies(tmp_path):
    run = stopped_at(tmp_path, 1)
    real = ledger_in_checkpoint(run)
    load_checkpoint(run).close()
    with Ledger(run / LEDGER) as led:  # back to the checkpoint's moment: user-3 is gone
        assert led.head() == real and led.verify().ok
        assert led.balances() == {"user-1": 2.0, "user-2": 1.0}


@pytest.mark.parametrize(
    ("edit", "why"),
    [
        (forge, "forged"),
        (lambda image: (image, (1, "0" * 64)), "the chain was rewritten"),
        (lambda image: (image[: len(image) // 2], (2, "0" * 64)), "not a readable ledger"),
    ],
)
def test_a_forged_ledger_copy_is_refused(tmp_path, edit, why):
    run = stopped_at(tmp_path, 1)
    ledger_in_checkpoint(run, edit=edit)
    before = (run / LEDGER).read_bytes()
    with pytest.raises(CheckpointError, match=rf"ledger copy .* does not verify: .*{why}"):
        load_checkpoint(run)
    assert (run / LEDGER).read_bytes() == before  # the live ledger is left as it was


def test_a_run_killed_before_its_first_checkpoint_starts_again(tmp_path, reference, caplog):
    cfg = parse_config({**SMALL, "output_dir": str(tmp_path)})
    run = create_run_dir(cfg)
    save = economy.runner.save_checkpoint

    def killed(state, where):
        (where / ".checkpoint.json.x1y2z3").write_text("{half")  # a write cut short
        raise KeyboardInterrupt

    economy.runner.save_checkpoint = killed
    try:
        with pytest.raises(KeyboardInterrupt):
            run_market(cfg, run)
    finally:
        economy.runner.save_checkpoint = save
    assert (run / GRAPH).is_file() and not (run / CHECKPOINT).exists()
    with caplog.at_level(logging.WARNING, logger="economy.runner"):
        resume_market(run)
    assert "stopped before its first one; starting it again from step 0" in caplog.text
    assert (run / SUMMARY).read_text() == (reference / SUMMARY).read_text()
    assert not list(run.glob(".*.*"))  # the temp file is gone


def test_a_fresh_folder_resumes_from_step_0(tmp_path, reference):
    run = create_run_dir(parse_config({**SMALL, "output_dir": str(tmp_path)}))
    resume_market(run)
    assert (run / SUMMARY).read_text() == (reference / SUMMARY).read_text()


def test_no_checkpoint_but_paid_entries_is_refused(tmp_path):
    run = create_run_dir(parse_config({**SMALL, "output_dir": str(tmp_path)}))
    with Ledger(run / LEDGER) as led:
        led.mint("user-1", 1.0)
    with pytest.raises(RunFolderError, match="paying them twice"):
        resume_market(run)
    assert (run / LEDGER).is_file()


def test_temp_files_of_a_killed_write_are_cleaned(tmp_path, reference):
    run = stopped_at(tmp_path, 2)
    (run / DEVICES / "device-3").mkdir(parents=True)
    temps = [
        run / ".metrics.csv.abc123",
        run / DEVICES / ".checkpoint-0123456789abcdef.npz.k9",
        run / DEVICES / "device-3" / ".context.json.q7",
    ]
    for path in temps:
        path.write_bytes(b"half")
    keep = run / DEVICES / "device-3" / "context.json"
    keep.write_text("{}")
    resume_market(run)
    assert not any(p.exists() for p in temps) and keep.is_file()
    assert (run / SUMMARY).read_text() == (reference / SUMMARY).read_text()
    assert not list(run.rglob("checkpoint*")) and not (run / CHECKPOINT).exists()
    assert os.listdir(run / DEVICES) == ["device-3"]


# The head a complete run keeps in summary.json pins its ledger: `fedadagent ledger verify` and
# `fedadagent report` catch a ledger extended, replaced, truncated or keyless.


def paid_run(reference, tmp_path):
    """A copy of the complete run whose ledger holds three entries, its head in the summary."""
    run = tmp_path / "run"
    shutil.copytree(reference, run)
    with Ledger(run / LEDGER) as led:
        led.mint("user-1", 2.0, round=1)
        led.mint("user-2", 1.0, round=1)
        led.mint("user-1", 0.5, round=2)
        seq, digest = led.head()
    edit_json(run / SUMMARY, lambda s: s["ledger"].update(head=f"{seq}:{digest}"))
    return run


def test_a_run_without_a_ledger_verifies(reference, capsys):
    assert json.loads((reference / SUMMARY).read_text())["ledger"]["head"] is None
    assert main(["ledger", "verify", str(reference)]) == 0
    assert "ledger verified: 0 entries, checked against the head in summary.json" in (
        capsys.readouterr().out
    )


def test_a_kept_head_verifies(reference, tmp_path, capsys):
    run = paid_run(reference, tmp_path)
    assert verify_run_ledger(run).ok
    assert main(["ledger", "verify", str(run)]) == 0
    assert "3 entries" in capsys.readouterr().out


def extend(run):
    with Ledger(run / LEDGER) as led:  # with the key: only the kept head catches it
        led.mint("user-9", 100.0)


def replace(run):
    (run / LEDGER).unlink()
    (run / LEDGER_KEY).rename(run / "ledger.old")
    with Ledger(run / LEDGER) as led:  # a valid ledger of its own, under a new key
        led.mint("user-1", 2.0, round=1)


def truncate(run):
    (run / LEDGER).write_bytes(b"")


def drop_key(run):
    (run / LEDGER_KEY).unlink()


@pytest.mark.parametrize(
    ("attack", "why"),
    [
        (extend, "expected 3 entries"),
        (replace, "entry 3 is missing"),  # replaced by a shorter one
        (truncate, "no ledger"),
        (drop_key, "no key"),
    ],
)
def test_a_changed_ledger_is_caught(reference, tmp_path, capsys, attack, why):
    run = paid_run(reference, tmp_path)
    attack(run)
    check = verify_run_ledger(run)
    assert not check.ok and why in check.verification.reason
    assert main(["ledger", "verify", str(run)]) == 1
    assert "ledger NOT verified" in capsys.readouterr().err
    assert main(["report", str(run)]) == 2  # the report refuses to plot it
    assert "does not verify" in capsys.readouterr().err and not (run / PLOTS).exists()


def test_a_ledger_where_the_summary_says_none_is_caught(reference, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(reference, run)
    with Ledger(run / LEDGER) as led:
        led.mint("user-1", 1.0)
    with pytest.raises(RunFolderError, match="expected 0 entries"):
        make_report(run)


def edit_json(path, edit):
    """Rewrite the JSON file ``path`` after ``edit(document)``; the edited document."""
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))
    return doc


def test_a_malformed_kept_head_is_refused(reference, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(reference, run)
    edit_json(run / SUMMARY, lambda s: s["ledger"].update(head="garbage"))
    assert main(["ledger", "verify", str(run)]) == 2
    assert "no valid ledger.head" in capsys.readouterr().err


def test_an_unfinished_run_checks_its_chain(reference, tmp_path):
    run = paid_run(reference, tmp_path)
    (run / SUMMARY).unlink()
    check = verify_run_ledger(run)
    assert check.ok and "not complete" in check.against


# environment.json (item 7): what a run ran with, and a warning when that differs.


def test_a_run_records_its_environment(reference):
    env = json.loads((reference / ENVIRONMENT).read_text())
    assert env["python"] == platform.python_version()
    assert env["packages"]["numpy"] == metadata.version("numpy")


def test_differences_by_hand():
    old = {"python": "3.10.1", "packages": {"a": "1", "b": "2"}}
    new = {"python": "3.11.7", "packages": {"a": "1", "c": "3"}}
    assert differences(old, new) == ["python 3.10.1 -> 3.11.7", "b 2 -> (none)", "c (none) -> 3"]


def test_report_and_resume_warn_about_another_environment(tmp_path, reference, caplog):
    run = tmp_path / "run"
    shutil.copytree(reference, run)
    env = edit_json(run / ENVIRONMENT, lambda e: e["packages"].update(numpy="0.0"))
    with caplog.at_level(logging.WARNING):
        make_report(run)
    assert f"numpy 0.0 -> {metadata.version('numpy')}" in caplog.text
    caplog.clear()
    stopped = stopped_at(tmp_path / "s", 1)
    (stopped / ENVIRONMENT).write_text(json.dumps(env))
    with caplog.at_level(logging.WARNING):
        resume_market(stopped)
    assert "ran with another environment" in caplog.text and "numpy 0.0" in caplog.text
