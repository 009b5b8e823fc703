# systemd's service watchdog, as systemd/pgha.service configures it, for one agent of the chaos
# lab. It runs in the root namespace, outside the node it guards, so freezing the node's
# processes (the fault freeze-primary-node) does not freeze it, just as freezing a unit's cgroup
# does not freeze systemd. Node has no unix datagram sockets, hence python.
#
#   systemd-watchdog.py SOCKET MAIN_PID NETNS WATCHDOG_MS SLACK_MS
#
# It binds SOCKET (the agent's NOTIFY_SOCKET) and arms at READY=1 or the first WATCHDOG=1, as
# systemd does. When no WATCHDOG=1 came for WATCHDOG_MS + SLACK_MS (SLACK_MS: the 250 ms by which
# sd-event may coalesce the timer, taken at its worst), it does what WatchdogSignal=SIGKILL and
# FinalKillSignal=SIGKILL do with KillMode=mixed: SIGKILL to every process of the unit. The
# unit's cgroup is the node's network namespace here (the agent, its fencing process and
# PostgreSQL; nothing else runs there). It prints "fired <ms since the last message>" and exits;
# the caller restarts the agent after RestartSec, with a new socket and a new watchdog.
#
# It exits quietly when MAIN_PID is gone or a zombie: the agent died some other way (a crash
# fault), and systemd would then restart the unit, not fire its watchdog.
import os
import select
import signal
import socket
import subprocess
import sys
import time

path, main_pid, netns = sys.argv[1], int(sys.argv[2]), sys.argv[3]
limit = (float(sys.argv[4]) + float(sys.argv[5])) / 1000.0

s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
os.chmod(path, 0o666)  # the agent runs as postgres
print("listening", flush=True)


def main_alive():
    try:
        with open(f"/proc/{main_pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


last = None
while True:
    wait = 0.1 if last is None else max(0.0, min(0.1, last + limit - time.monotonic()))
    ready, _, _ = select.select([s], [], [], wait)
    if ready:
        # recv() without room for ancillary data: the file descriptor systemd-notify attaches to
        # its BARRIER=1 message is closed at once, which tells it the message was processed.
        data = s.recv(4096).decode(errors="replace")
        for line in data.split("\n"):
            if line in ("READY=1", "WATCHDOG=1"):
                if last is None:
                    print("armed", flush=True)
                last = time.monotonic()
        continue
    if not main_alive():
        print("main process gone", flush=True)
        sys.exit(0)
    if last is not None and time.monotonic() >= last + limit:
        # Said first: the caller may stop this process as soon as the agent is gone.
        print(f"fired {round((time.monotonic() - last) * 1000)}", flush=True)
        out = subprocess.run(["ip", "netns", "pids", netns], capture_output=True, text=True).stdout
        for pid in (int(p) for p in out.split()):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        sys.exit(0)
