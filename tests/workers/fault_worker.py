#!/usr/bin/env python3
"""The shipped DuckDB worker with faults on request, for the worker-pool tests.

Usage: fault_worker.py PATH/TO/sqlflight_worker.py

With SQLFLIGHT_FAULTS set, an `execute` whose SQL names a fault causes it for
real: 'die' kills this process with SIGKILL mid-query, 'hang' never answers,
'garbage' writes non-protocol bytes to stdout, 'abort' writes to stderr and
aborts. Everything else is the real worker.
"""
import importlib.util
import os
import signal
import sys
import time

spec = importlib.util.spec_from_file_location("sqlflight_worker", sys.argv[1])
w = importlib.util.module_from_spec(spec)
spec.loader.exec_module(w)


def intercept(msg):
    sql = msg.get("sql", "")
    if not os.environ.get("SQLFLIGHT_FAULTS") or msg.get("op") != "execute":
        return
    if "'die'" in sql:
        os.kill(os.getpid(), signal.SIGKILL)
    if "'hang'" in sql:
        time.sleep(3600)
    if "'garbage'" in sql:
        w._out.write(b"Traceback (most recent call last): oops\n" * 4)
        w._out.flush()
        time.sleep(3600)
    if "'abort'" in sql:
        print("fault worker: aborting on purpose", file=sys.stderr, flush=True)
        os.abort()


sys.exit(w.serve(w.DuckDB(), intercept))
