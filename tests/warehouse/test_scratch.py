"""Scratch folders (``warehouse.scratch``): removed on any exit, also while a worker thread is
still writing into them as the run unwinds (SIGTERM or Ctrl-C in the middle of a cutout
ingest left one behind)."""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time

import pytest

from warehouse.scratch import scratch_dir


def test_a_scratch_folder_a_thread_still_writes_into_is_removed(tmp_path):
    stop = threading.Event()
    started = threading.Event()

    def writer(folder):  # type: ignore[no-untyped-def]
        k = 0
        deadline = time.monotonic() + 0.3  # goes on writing for a while after the exit began
        while time.monotonic() < deadline and not stop.is_set():
            sub = folder / f"d{k % 7}"
            try:
                sub.mkdir(exist_ok=True)
                (sub / f"f{k}").write_bytes(b"x" * 1000)
            except OSError:  # its folder was removed under it: as a real worker, it stops
                pass
            started.set()
            k += 1

    with pytest.raises(KeyboardInterrupt), scratch_dir(tmp_path, "ingest-") as folder:
        thread = threading.Thread(target=writer, args=(folder,))
        thread.start()
        started.wait(5)
        raise KeyboardInterrupt
    thread.join()
    stop.set()
    assert list(tmp_path.iterdir()) == []


def test_a_signal_during_the_removal_does_not_leave_the_folder(tmp_path, monkeypatch):
    """SIGTERM landing while the folder is being removed (the run ending as the signal came:
    CI saw a cutout ingest leave its folder so) stopped the removal; the folder is now removed
    and the signal's exception raised after."""
    remove = shutil.rmtree
    sent = []

    def rmtree_signalled(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        if not sent:  # the signal arrives as the removal starts
            sent.append(True)
            os.kill(os.getpid(), signal.SIGALRM)
        remove(path, *args, **kwargs)

    def terminated(_signum, _frame):  # type: ignore[no-untyped-def]
        raise SystemExit(143)

    previous = signal.signal(signal.SIGALRM, terminated)
    monkeypatch.setattr(shutil, "rmtree", rmtree_signalled)
    try:
        with pytest.raises(SystemExit), scratch_dir(tmp_path, "ingest-") as folder:
            (folder / "part").write_bytes(b"x" * 1000)
    finally:
        signal.signal(signal.SIGALRM, previous)
    assert sent and list(tmp_path.iterdir()) == []
