#!/usr/bin/env python3
"""Socket activation as systemd does it, for the integration tests (SocketActivationTests).

    socket-activate.py --pid-file FILE --listen PATH [--listen PATH ...] [--backlog N ...] -- COMMAND [ARG ...]

Binds a unix stream socket at each PATH (mode 0666: the tests' nginx runs as nobody), the i-th with the
i-th --backlog as its listen queue (128 when there is none, as mediscope-io.socket has; 4 as
mediscope-inference.socket), and runs COMMAND
with them as descriptors 3, 4, ... and LISTEN_PID / LISTEN_FDS set (the sd_listen_fds protocol), its pid
written to FILE. The sockets stay open here for as long as this runs, as a socket unit's do.

SIGHUP restarts COMMAND as `systemctl restart` does: SIGTERM, wait until it has exited, start it again.
SIGTERM or SIGINT stops COMMAND and exits with its status; so does COMMAND exiting on its own.
"""
import argparse
import os
import signal
import socket
import sys

SIGNALS = {signal.SIGHUP, signal.SIGTERM, signal.SIGINT}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--listen", action="append", required=True)
    parser.add_argument("--backlog", action="append", type=int, default=[])
    parser.add_argument("--pid-file", required=True)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command")

    sockets = []
    for i, path in enumerate(args.listen):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if os.path.exists(path):
            os.unlink(path)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(path)
        os.chmod(path, 0o666)
        s.listen(args.backlog[i] if i < len(args.backlog) else 128)
        sockets.append(s)

    # Signals are taken one at a time by sigtimedwait, never by handlers racing the fork.
    signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)

    def start() -> int:
        pid = os.fork()
        if pid == 0:
            try:
                # Above every descriptor first, so that placing them at 3, 4, ... clobbers none.
                high = [os.dup2(s.fileno(), 200 + i) for i, s in enumerate(sockets)]
                for i, fd in enumerate(high):
                    os.dup2(fd, 3 + i)
                    os.close(fd)
                env = dict(os.environ, LISTEN_PID=str(os.getpid()), LISTEN_FDS=str(len(sockets)))
                signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)
                os.execvpe(command[0], command, env)
            finally:
                os._exit(127)
        temporary = args.pid_file + ".tmp"
        with open(temporary, "w") as f:
            f.write(str(pid))
        os.replace(temporary, args.pid_file)
        return pid

    def stop(pid: int) -> int:
        os.kill(pid, signal.SIGTERM)
        _, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status)

    child = start()
    while True:
        info = signal.sigtimedwait(SIGNALS, 0.05)
        if info is not None and info.si_signo == signal.SIGHUP:
            stop(child)
            child = start()
            continue
        if info is not None:
            return stop(child)
        pid, status = os.waitpid(child, os.WNOHANG)
        if pid == child:
            return os.waitstatus_to_exitcode(status)


if __name__ == "__main__":
    sys.exit(main())
