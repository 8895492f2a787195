#!/usr/bin/env python3
"""Bench listener: listens on every port given as FIRST LAST STEP on ADDR, and
never accepts: the kernel completes each handshake from the backlog, which is
all a connect probe needs. Exits on SIGTERM."""
import signal
import socket
import sys

addr, first, last, step = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
socks = []
for port in range(first, last + 1, step):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    s.listen(64)
    socks.append(s)
print(len(socks), flush=True)
signal.sigwait([signal.SIGTERM, signal.SIGINT])
