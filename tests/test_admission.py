"""The cross-process call count: a limit every worker process shares, freed by any death."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from server.admission import Admission, RefusalLog

ROOT = Path(__file__).parent.parent
# A worker stand-in: waits for "go", admits up to N calls, prints how many, holds them until
# stdin closes (or it is killed).
HOLDER = """
import asyncio
import sys
from pathlib import Path
from server.admission import Admission
admission = Admission(Path(sys.argv[1]), int(sys.argv[2]))
sys.stdin.readline()
async def admit():
    return [await admission.admit() for _ in range(int(sys.argv[3]))]
slots = [slot for slot in asyncio.run(admit()) if slot]
print(len(slots), flush=True)
sys.stdin.read()
"""


def holder(directory: Path, capacity: int, wanted: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(directory), str(capacity), str(wanted)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


async def test_admits_up_to_capacity_and_a_released_slot_is_free_again(tmp_path):
    admission = Admission(tmp_path, 3)
    slots = [await admission.admit() for _ in range(3)]
    assert all(slots) and await admission.count() == 3 and not await admission.has_room()
    assert await admission.admit() is None
    await slots[1].release()
    await slots[1].release()  # twice is harmless
    assert await admission.count() == 2 and await admission.has_room()
    assert await admission.count_here() == 2
    assert await admission.admit() is not None


async def test_without_a_limit_every_call_is_admitted_and_counted(tmp_path):
    admission = Admission(tmp_path, None)
    slots = [await admission.admit() for _ in range(50)]
    assert all(slots) and await admission.count() == 50 and await admission.has_room()


async def test_a_private_directory_is_made_on_first_use_and_removed_on_close():
    admission = Admission(None, 2)
    assert await admission.admit() is not None
    directory = admission.directory
    assert directory.is_dir()
    await admission.close()
    assert not directory.exists()


def test_a_capacity_below_one_is_refused(tmp_path):
    with pytest.raises(ValueError, match="capacity"):
        Admission(tmp_path, 0)


async def test_two_processes_contending_never_admit_more_than_the_capacity(tmp_path):
    capacity = 10
    holders = [holder(tmp_path, capacity, capacity) for _ in range(2)]
    try:
        for process in holders:
            process.stdin.write("go\n")
            process.stdin.flush()
        admitted = [int(process.stdout.readline()) for process in holders]
        assert sum(admitted) == capacity, admitted
        assert await Admission(tmp_path, capacity).count() == capacity
        assert await Admission(tmp_path, capacity).admit() is None
    finally:
        for process in holders:
            process.stdin.close()
            process.wait(10)
            process.stdout.close()
    assert await Admission(tmp_path, capacity).count() == 0


async def test_a_crashed_process_leaves_no_call_counted(tmp_path):
    process = holder(tmp_path, 4, 3)
    process.stdin.write("go\n")
    process.stdin.flush()
    assert int(process.stdout.readline()) == 3
    admission = Admission(tmp_path, 4)
    assert await admission.count() == 3
    os.kill(process.pid, signal.SIGKILL)
    process.wait(10)
    process.stdin.close()
    process.stdout.close()
    assert await admission.count() == 0
    assert all([await admission.admit() for _ in range(4)])


def test_refusals_log_a_line_a_second_at_most_saying_how_many(log_lines):
    refusals = RefusalLog(interval=0.2)
    for _ in range(5):
        refusals.refused("POST /voice answered busy", "2 calls in progress (MAX_CALLS 2)")
    assert log_lines == [
        "refused a call, POST /voice answered busy: 2 calls in progress (MAX_CALLS 2)"
    ]
    time.sleep(0.25)
    refusals.refused("WS /media upgrade refused", "2 calls in progress (MAX_CALLS 2)")
    assert log_lines[-1].endswith("(and 4 more since the last line)")
