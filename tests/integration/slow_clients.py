#!/usr/bin/env python3
"""Slow HTTP clients for http_slow_clients.sh: --slow slowloris connections (a request whose
headers arrive one byte every --trickle seconds and never end) and --idle keep-alive connections
(one complete request, then silence), each reopened a second after the server closes it, for at
most --duration seconds (SIGTERM ends it sooner). Once a second it writes its figures as JSON to
--stats: how many are open, how many the server closed and after how long."""
import argparse
import json
import os
import selectors
import signal
import socket
import time

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--slow", type=int, default=200)
parser.add_argument("--idle", type=int, default=2)
parser.add_argument("--trickle", type=float, default=2.0)
parser.add_argument("--duration", type=float, default=60.0)
parser.add_argument("--stats", required=True)
args = parser.parse_args()

REQUEST = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"
REOPEN_AFTER = 1.0  # a pause before reopening, so cut clients do not spin the test machine

start = time.monotonic()
deadline = start + args.duration
signal.signal(signal.SIGTERM, lambda *_: globals().__setitem__("deadline", 0))

sel = selectors.DefaultSelector()
figures = {"slow_open": 0, "idle_open": 0, "opened": 0, "connect_failures": 0,
           "slow_closed_by_server": 0, "slow_lifetime_min": None, "slow_lifetime_max": None,
           "slow_answered": 0, "idle_answered": 0, "idle_closed_by_server": 0, "ready": False}


class Client:
    def __init__(self, kind):
        self.kind = kind
        self.sock = None
        self.reopen_at = 0.0
        self.opened_at = 0.0
        self.next_byte_at = 0.0
        self.sent = 0

    def open(self, now):
        try:
            self.sock = socket.create_connection(("127.0.0.1", args.port), timeout=2)
        except OSError:
            figures["connect_failures"] += 1
            self.reopen_at = now + REOPEN_AFTER
            return
        self.sock.setblocking(False)
        sel.register(self.sock, selectors.EVENT_READ, self)
        self.opened_at = now
        self.sent = 0
        self.next_byte_at = now
        figures["opened"] += 1
        figures[self.kind + "_open"] += 1
        if self.kind == "idle":
            self.send(REQUEST + b"\r\n")

    def send(self, data):
        try:
            self.sock.send(data)
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            self.closed(time.monotonic())

    def trickle(self, now):
        # The request line and Host at once, then one header byte at a time, never the blank line.
        data = REQUEST if self.sent == 0 else b"X-Slow: " if self.sent == 1 else b"a"
        self.sent += 1
        self.next_byte_at = now + args.trickle
        self.send(data)

    def readable(self, now):
        try:
            data = self.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if data:
            figures[self.kind + "_answered"] += 1
        else:
            self.closed(now)

    def closed(self, now):
        if self.sock is None:
            return
        sel.unregister(self.sock)
        self.sock.close()
        self.sock = None
        figures[self.kind + "_open"] -= 1
        figures[self.kind + "_closed_by_server"] += 1
        if self.kind == "slow":
            lifetime = round(now - self.opened_at, 2)
            low, high = figures["slow_lifetime_min"], figures["slow_lifetime_max"]
            figures["slow_lifetime_min"] = lifetime if low is None else min(low, lifetime)
            figures["slow_lifetime_max"] = lifetime if high is None else max(high, lifetime)
        self.reopen_at = now + REOPEN_AFTER


def write_stats():
    tmp = args.stats + ".tmp"
    with open(tmp, "w") as f:
        json.dump(figures, f)
    os.replace(tmp, args.stats)


clients = [Client("slow") for _ in range(args.slow)] + [Client("idle") for _ in range(args.idle)]
for c in clients:
    c.open(time.monotonic())
figures["ready"] = figures["opened"] == len(clients)
write_stats()
next_stats = time.monotonic() + 1
while time.monotonic() < deadline:
    for key, _ in sel.select(timeout=0.1):
        key.data.readable(time.monotonic())
    now = time.monotonic()
    for c in clients:
        if c.sock is None:
            if now >= c.reopen_at:
                c.open(now)
        elif c.kind == "slow" and now >= c.next_byte_at:
            c.trickle(now)
    if now >= next_stats:
        write_stats()
        next_stats = now + 1
for c in clients:
    if c.sock is not None:
        sel.unregister(c.sock)
        c.sock.close()
write_stats()
