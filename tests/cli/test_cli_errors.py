"""Unexpected errors print one line (traceback only with --debug / TERRACARBON_DEBUG=1); outputs are locked while
a live run writes them, and a stale lock (dead owner) is taken over."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from terracarbon.cli import main
from terracarbon.errors import BusyError, InputError
from terracarbon.utils import output_lock


def _boom(*args, **kwargs):
    raise RuntimeError("boom from the reader\nsecond line")


@pytest.fixture
def failing_synth(monkeypatch):
    import terracarbon.data.synthetic.scenes as scenes

    monkeypatch.setattr(scenes, "make_scene", _boom)


def test_unexpected_error_is_one_line(failing_synth, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("TERRACARBON_DEBUG", raising=False)
    with pytest.raises(SystemExit) as exc:
        main(["data", "synth", str(tmp_path / "s"), "--size", "8"])
    assert exc.value.code == 1
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    assert "RuntimeError: boom from the reader" in err and "--debug" in err


@pytest.mark.parametrize("how", ["flag", "env"])
def test_debug_shows_the_traceback(failing_synth, tmp_path, capsys, monkeypatch, how):
    argv = ["data", "synth", str(tmp_path / "s"), "--size", "8"]
    if how == "flag":
        monkeypatch.delenv("TERRACARBON_DEBUG", raising=False)
        argv = ["--debug", *argv]
    else:
        monkeypatch.setenv("TERRACARBON_DEBUG", "1")
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "_boom" in err


def test_input_errors_stay_exit_2(monkeypatch, tmp_path, capsys):
    import terracarbon.data.synthetic.scenes as scenes

    def bad(*a, **k):
        raise InputError(tmp_path / "x.tif", "is truncated")

    monkeypatch.setattr(scenes, "make_scene", bad)
    with pytest.raises(SystemExit) as exc:
        main(["data", "synth", str(tmp_path / "s"), "--size", "8"])
    assert exc.value.code == 2
    assert "x.tif: is truncated" in capsys.readouterr().err


def test_debug_after_double_dash_belongs_to_the_wrapped_command():
    from terracarbon.cli import _split_debug

    debug, args = _split_debug(["footprint", "track", "--", "python", "x.py", "--debug"])
    assert args[-1] == "--debug"
    assert debug is (os.environ.get("TERRACARBON_DEBUG", "") in ("1", "true", "yes"))


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_lock_refuses_a_live_writer_and_takes_over_a_stale_one(tmp_path):
    out = tmp_path / "agb.tif"
    lock = tmp_path / ".agb.tif.lock"
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock.write_text(json.dumps({"pid": sleeper.pid, "host": os.uname().nodename, "cmd": "terracarbon x"}))
        with pytest.raises(BusyError, match=rf"process {sleeper.pid}"):
            with output_lock(out):
                pass
        assert lock.exists()  # the live owner's lock is left alone
    finally:
        sleeper.kill()
        sleeper.wait()
    lock.write_text(json.dumps({"pid": _dead_pid(), "host": os.uname().nodename}))
    with output_lock(out) as held:
        assert json.loads(held.read_text())["pid"] == os.getpid()
    assert not lock.exists()  # released


def test_lock_is_released_on_error(tmp_path):
    out = tmp_path / "agb.tif"
    with pytest.raises(ValueError):
        with output_lock(out):
            raise ValueError("x")
    assert not (tmp_path / ".agb.tif.lock").exists()
