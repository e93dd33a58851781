"""Run a command and record its peak resident memory: ``python child_rss.py OUT.json -- CMD ARGS...``.

The benchmark drives nnU-Net through its CLIs, so memory must be read per child process. ``os.wait4`` returns the
rusage of exactly that child (ru_maxrss: the largest RSS of the child or any descendant it waited for), whereas
``getrusage(RUSAGE_CHILDREN)`` in the parent is a running maximum over every step so far. Kept free of heavy imports
so that it adds milliseconds to the step it wraps. Exits with the command's exit code.
"""
import json
import os
import shutil
import subprocess
import sys
import time


def main() -> None:
    out, sep, *cmd = sys.argv[1:]
    assert sep == "--" and cmd, "usage: child_rss.py OUT.json -- CMD ARGS..."
    exe = os.path.join(os.path.dirname(sys.executable), cmd[0])
    cmd[0] = exe if os.path.exists(exe) else (shutil.which(cmd[0]) or cmd[0])
    start = time.time()
    proc = subprocess.Popen(cmd)
    _, status, usage = os.wait4(proc.pid, 0)
    code = proc.returncode = os.waitstatus_to_exitcode(status)      # reaped here: Popen must not wait again
    with open(out, "w") as f:
        # Linux reports ru_maxrss in KiB
        json.dump({"command": cmd, "exit_code": code, "wall_s": time.time() - start,
                   "max_rss_mib": usage.ru_maxrss / 1024, "user_s": usage.ru_utime, "system_s": usage.ru_stime}, f)
    sys.exit(code)


if __name__ == "__main__":
    main()
