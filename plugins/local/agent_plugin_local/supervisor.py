"""Runs one workload and records its exit code: ``python -I -S supervisor.py RUN_DIR -- ARGV...``.

The agent starts this in a session of its own with stdout and stderr going to the run
directory's ``output.log``. It uses the standard library only, so that it starts fast (it is
run as a file, not as a module of this package). Because the exit code lands in a file, a restarted agent (or one
that was SIGKILLed meanwhile) still learns how the workload ended.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    run_dir = Path(argv[0])
    command = argv[2:] if len(argv) > 1 and argv[1] == "--" else argv[1:]
    # SIGTERM to the process group reaches the workload too; the supervisor outlives it so it
    # can write down how it ended. A caught (not ignored) signal is reset in the child on exec.
    signal.signal(signal.SIGTERM, lambda *_: None)
    signal.signal(signal.SIGINT, lambda *_: None)
    try:
        child = subprocess.Popen(command)
    except OSError as exc:
        print(f"cannot start {command[0]!r}: {exc.strerror or exc}", flush=True)
        code = 127
    else:
        code = child.wait()
        if code < 0:
            code = 128 - code  # killed by a signal: the shell's convention
    tmp = run_dir / "exit_code.tmp"
    tmp.write_text(str(code))
    os.replace(tmp, run_dir / "exit_code")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
