#!/usr/bin/env python3
"""sqlflight worker for Python-hosted engines: DuckDB and datafusion-python.

Speaks the sqlflight worker protocol, version 1 (docs/worker-protocol.md), on
stdin/stdout:

    frame   = u32 little-endian length, then that many bytes of UTF-8 JSON
    payload = when a JSON header has "payload_len": N, N raw bytes follow it
              (an Arrow IPC stream for `execute` results)

Usage: sqlflight_worker.py duckdb|datafusion

Nothing but protocol frames is written to stdout; diagnostics go to stderr.
"""

import io
import json
import struct
import sys
import traceback

PROTOCOL = 1

_in = sys.stdin.buffer
_out = sys.stdout.buffer
# Engines (and their native code) must not write into the protocol stream.
sys.stdout = sys.stderr


def read_exact(n):
    buf = bytearray()
    while len(buf) < n:
        chunk = _in.read(n - len(buf))
        if not chunk:
            return None
        buf.extend(chunk)
    return bytes(buf)


def recv():
    head = read_exact(4)
    if head is None:
        return None
    (n,) = struct.unpack("<I", head)
    body = read_exact(n)
    if body is None:
        return None
    return json.loads(body)


def send(obj, payload=None):
    if payload is not None:
        obj["payload_len"] = len(payload)
    body = json.dumps(obj).encode("utf-8")
    _out.write(struct.pack("<I", len(body)))
    _out.write(body)
    if payload is not None:
        _out.write(payload)
    _out.flush()


def ipc_bytes(schema, batches):
    import pyarrow as pa

    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, schema) as w:
        for b in batches:
            w.write_batch(b)
    return sink.getvalue()


class EngineError(Exception):
    def __init__(self, cls, message):
        super().__init__(message)
        self.cls = cls
        self.message = message


def render_tree(nodes, depth):
    out = []
    for n in nodes:
        info = n.get("extra_info") or {}
        details = []
        if isinstance(info, dict):
            for k, v in info.items():
                if k == "Estimated Cardinality":
                    continue
                v = ", ".join(map(str, v)) if isinstance(v, list) else str(v)
                details.append(f"{k}=" + " ".join(v.split()))
        elif info:
            details.append(" ".join(str(info).split()))
        line = "  " * depth + n.get("name", "?").strip()
        if details:
            line += ": " + ", ".join(details)
        out.append(line)
        out.extend(render_tree(n.get("children") or [], depth + 1))
    return out


class DuckDB:
    name = "duckdb"

    def __init__(self):
        import duckdb

        self.duckdb = duckdb
        self.version = duckdb.__version__
        self.con = duckdb.connect(":memory:")
        self.con.execute("SET explain_output = 'all'")

    def classify(self, e):
        kind = type(e).__name__
        msg = str(e)
        if "INTERNAL Error" in msg or kind == "InternalException" or kind == "FatalException":
            return "internal"
        if kind == "ParserException":
            return "parse"
        if kind in ("BinderException", "CatalogException", "NotImplementedException"):
            return "plan"
        if kind == "OutOfMemoryException":
            return "resource"
        if kind == "InterruptException":
            return "timeout"
        return "execution"

    def fatal(self, e):
        # After an internal or fatal error DuckDB invalidates the database.
        return self.classify(e) == "internal" or type(e).__name__ == "FatalException"

    def setting(self, key, value):
        self.con.execute(f"SET {key} = '{value}'")

    def table(self, name, path, fmt):
        reader = "read_parquet" if fmt == "parquet" else "read_csv_auto"
        quoted = path.replace("'", "''")
        self.con.execute(f'CREATE OR REPLACE VIEW "{name}" AS SELECT * FROM {reader}(\'{quoted}\')')

    def statement(self, sql):
        self.con.execute(sql)

    def compile(self, sql):
        rows = self.con.execute("EXPLAIN " + sql).fetchall()
        parts = {r[0]: r[1] for r in rows}
        physical = parts.get("physical_plan") or "\n".join(r[1] for r in rows)
        logical = parts.get("logical_opt") or parts.get("logical_plan") or physical
        # The physical plan as an operator tree, one `NAME: details` line per
        # operator (sqlflight's change signatures read the names), without
        # cardinality estimates (like COSTS OFF). Older releases without JSON
        # EXPLAIN keep the box drawing.
        try:
            self.con.execute("SET explain_output = 'physical_only'")
            tree = json.loads(self.con.execute("EXPLAIN (FORMAT JSON) " + sql).fetchall()[0][1])
            physical = "\n".join(render_tree(tree, 0))
        except Exception:  # noqa: BLE001 - keep the text plan
            pass
        finally:
            self.con.execute("SET explain_output = 'all'")
        return logical, physical

    def execute(self, sql, memory_limit):
        if memory_limit:
            self.con.execute(f"SET memory_limit = '{int(memory_limit)}B'")
        reader = self.con.execute(sql).fetch_record_batch(65536)
        schema = reader.schema
        batches = list(reader)
        return schema, batches


class DataFusion:
    name = "datafusion-python"

    def __init__(self):
        import datafusion

        self.df = datafusion
        self.version = getattr(datafusion, "__version__", "unknown")
        self.settings = {}
        self.ctx = datafusion.SessionContext()
        # What setup did, to build a session with a memory limit the same way.
        self.tables = []
        self.statements = []
        self.limited = {}

    def context(self, memory_limit):
        """The session for a per-query memory limit (a greedy pool of that many
        bytes; RuntimeEnvBuilder from 43 on, RuntimeConfig before)."""
        if not memory_limit:
            return self.ctx
        limit = int(memory_limit)
        if limit not in self.limited:
            builder = getattr(self.df, "RuntimeEnvBuilder", None) or getattr(self.df, "RuntimeConfig", None)
            if builder is None:
                return self.ctx
            runtime = builder().with_greedy_memory_pool(limit)
            ctx = self.df.SessionContext(self.df.SessionConfig(dict(self.settings)), runtime)
            for name, path, fmt in self.tables:
                self.register(ctx, name, path, fmt)
            for sql in self.statements:
                ctx.sql(sql).collect()
            self.limited[limit] = ctx
        return self.limited[limit]

    def classify(self, e):
        msg = str(e)
        kind = type(e).__name__
        if kind == "PanicException" or "panicked" in msg:
            return "crash"
        if "ParserError" in msg or "SQL error" in msg:
            return "parse"
        if "Internal error" in msg:
            return "internal"
        if "Resources exhausted" in msg:
            return "resource"
        if any(
            k in msg
            for k in (
                "Error during planning",
                "Schema error",
                "Optimizer rule",
                "This feature is not implemented",
                "Invalid function",
                "Plan(",
            )
        ):
            return "plan"
        return "execution"

    def fatal(self, e):
        # A panic may leave shared state poisoned.
        return self.classify(e) == "crash"

    def setting(self, key, value):
        self.settings[key] = value
        config = self.df.SessionConfig(dict(self.settings))
        self.ctx = self.df.SessionContext(config)

    @staticmethod
    def register(ctx, name, path, fmt):
        if fmt == "parquet":
            ctx.register_parquet(name, path)
        else:
            ctx.register_csv(name, path)

    def table(self, name, path, fmt):
        self.register(self.ctx, name, path, fmt)
        self.tables.append((name, path, fmt))

    def statement(self, sql):
        self.ctx.sql(sql).collect()
        self.statements.append(sql)

    def compile(self, sql):
        frame = self.ctx.sql(sql)
        logical = frame.optimized_logical_plan().display_indent()
        physical = frame.execution_plan().display_indent()
        return logical, physical

    def execute(self, sql, memory_limit):
        frame = self.context(memory_limit).sql(sql)
        batches = frame.collect()
        schema = batches[0].schema if batches else frame.schema()
        return schema, batches


def main():
    if len(sys.argv) != 2 or sys.argv[1] not in ("duckdb", "datafusion"):
        print("usage: sqlflight_worker.py duckdb|datafusion", file=sys.stderr)
        return 2
    return serve(DuckDB() if sys.argv[1] == "duckdb" else DataFusion())


def serve(engine, intercept=None):
    """Answers requests until shutdown or end of input. `intercept(msg)` (tests)
    sees each request first."""
    while True:
        msg = recv()
        if msg is None:
            return 0
        if intercept is not None:
            intercept(msg)
        op = msg.get("op")
        try:
            if op == "hello":
                send(
                    {
                        "ok": True,
                        "protocol": PROTOCOL,
                        "engine": engine.name,
                        "version": engine.version,
                        "capabilities": ["compile", "execute", "settings", "tables"],
                    }
                )
            elif op == "setup":
                for k, v in (msg.get("settings") or {}).items():
                    engine.setting(k, v)
                for t in msg.get("tables") or []:
                    engine.table(t["name"], t["path"], t["format"])
                for s in msg.get("statements") or []:
                    engine.statement(s)
                send({"ok": True})
            elif op == "compile":
                logical, physical = engine.compile(msg["sql"])
                send({"ok": True, "logical": logical, "physical": physical})
            elif op == "execute":
                schema, batches = engine.execute(msg["sql"], msg.get("memory_limit"))
                rows = sum(b.num_rows for b in batches)
                send(
                    {"ok": True, "rows": rows, "batches": len(batches)},
                    ipc_bytes(schema, batches),
                )
            elif op == "shutdown":
                send({"ok": True})
                return 0
            else:
                send({"ok": False, "error": {"class": "internal", "message": f"unknown op {op!r}"}})
        except BaseException as e:  # engines raise anything, including pyo3 panics
            if isinstance(e, (KeyboardInterrupt, SystemExit)):
                raise
            traceback.print_exc(file=sys.stderr)
            message = str(e).split("\n\nStack Trace")[0]
            fatal = engine.fatal(e)
            send({"ok": False, "fatal": fatal, "error": {"class": engine.classify(e), "message": message}})
            if fatal:
                # The engine is unusable after this error; the host starts a new worker.
                return 0


if __name__ == "__main__":
    sys.exit(main())
