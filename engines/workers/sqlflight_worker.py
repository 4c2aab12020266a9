#!/usr/bin/env python3
"""sqlflight worker for Python-hosted engines: DuckDB, datafusion-python,
Apache Spark (pyspark, local mode), Spark Connect servers (pyspark-client) and
Apache Flink (pyflink, a local mini-cluster in batch or streaming mode).

Speaks the sqlflight worker protocol, version 1 (docs/worker-protocol.md), on
stdin/stdout:

    frame   = u32 little-endian length, then that many bytes of UTF-8 JSON
    payload = when a JSON header has "payload_len": N, N raw bytes follow it
              (an Arrow IPC stream for `execute` results)

Usage: sqlflight_worker.py duckdb|datafusion|spark [MASTER]|spark-connect URL
       sqlflight_worker.py flink batch|streaming [PARALLELISM]

Nothing but protocol frames is written to stdout; diagnostics go to stderr.
"""

import io
import json
import os
import re
import struct
import sys
import traceback

PROTOCOL = 1

_in = sys.stdin.buffer
# Engines must not write into the protocol stream: not Python code (sys.stdout),
# not native code, not child processes (Spark's JVM inherits file descriptor 1).
# The protocol gets a private copy of the pipe; descriptor 1 becomes stderr.
_out = os.fdopen(os.dup(1), "wb")
os.dup2(2, 1)
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
        # The columns of each catalog table (to name the scans of its view).
        self.columns = {}

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
        described = self.con.execute(f'DESCRIBE "{name}"').fetchall()
        self.columns[name] = {str(r[0]).lower() for r in described}

    def name_scans(self, nodes):
        """A catalog table is a view over `read_parquet`/`read_csv_auto`, and
        DuckDB's plan names no table for such a scan. Name it when exactly one
        catalog table has every column the scan projects or filters on (TPC-H
        and TPC-DS: always); otherwise leave it unnamed rather than guess."""
        known = set().union(*self.columns.values()) if self.columns else set()
        for n in nodes:
            info = n.get("extra_info")
            kind = str(n.get("name", "")).strip()
            if isinstance(info, dict) and kind.startswith("READ_") and not any(k.lower() == "table" for k in info):
                words = set()
                for k in ("Projections", "Filters"):
                    v = info.get(k)
                    v = " ".join(map(str, v)) if isinstance(v, list) else str(v or "")
                    words.update(w.lower() for w in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", v))
                used = words & known
                tables = [t for t, cols in self.columns.items() if used and used <= cols]
                if len(tables) == 1:
                    info["Table"] = tables[0]
            self.name_scans(n.get("children") or [])

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
            self.name_scans(tree)
            physical = "\n".join(render_tree(tree, 0))
        except Exception:  # noqa: BLE001 - keep the text plan
            pass
        finally:
            self.con.execute("SET explain_output = 'all'")
        return logical, physical

    def execute(self, sql, memory_limit, timeout_ms=None):
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

    def execute(self, sql, memory_limit, timeout_ms=None):
        frame = self.context(memory_limit).sql(sql)
        batches = frame.collect()
        schema = batches[0].schema if batches else frame.schema()
        return schema, batches


# Spark's tree drawing (`+- `, `:- `, `:  `) before an operator, and the
# whole-stage codegen marker `*(3) `.
_SPARK_PREFIX = re.compile(r"^([ :|+\-]*)(\*\(\d+\) )?")
# Per-session counters: expression ids `a#12L`, `plan_id=7`, `[id=#3]`,
# `subquery#4`, query stage numbers.
_SPARK_IDS = re.compile(r"#\d+L?\b")
_SPARK_PLAN_ID = re.compile(r",? ?\[plan_id=\d+\]|plan_id=\d+")
_SPARK_KEY = re.compile(r"(^|, )([A-Z][A-Za-z ]*): ")


def spark_plan_lines(text):
    """A Spark tree string, one `Kind: details` line per operator, children
    indented below their parent (what sqlflight's plan-facts parser reads), with
    per-session ids removed so the same query renders the same in every worker.
    A plan without Spark's tree drawing (a DataFusion-based server such as Sail
    prints `Kind: details` lines already) only loses its ids."""
    if "+- " not in text and ":- " not in text and re.search(r"^\s*\w[\w ]*: ", text, re.M):
        return "\n".join(_SPARK_IDS.sub("#", l).rstrip() for l in text.splitlines() if l.strip())
    out = []
    for raw in text.splitlines():
        if not raw.strip():
            continue
        m = _SPARK_PREFIX.match(raw)
        depth = len(m.group(1))
        line = raw[m.end():]
        line = _SPARK_PLAN_ID.sub("", _SPARK_IDS.sub("", line)).rstrip()
        k = re.match(r"[A-Za-z_][A-Za-z0-9_]*", line)
        if not k:
            out.append(" " * depth + line)
            continue
        kind, rest = k.group(0), line[k.end():].strip()
        # Already `Kind: details` (a DataFusion-based server such as Sail).
        rest = rest[1:].strip() if rest.startswith(":") else rest
        if rest.startswith("(") and rest.endswith(")"):
            rest = rest[1:-1]
        if kind == "FileScan":
            # `FileScan parquet [cols] Batched: true, Location: ...`
            f = re.match(r"(\w+) (\[[^\]]*\]) ?(.*)", rest)
            if f:
                rest = f"format={f.group(1)}, output={f.group(2)}, " + _SPARK_KEY.sub(
                    lambda x: x.group(1) + x.group(2).replace(" ", "") + "=", f.group(3)
                )
        out.append(" " * depth + (f"{kind}: {rest}" if rest else kind))
    return "\n".join(out)


def cancel_after(timeout_ms):
    """Seconds after which a worker cancels its query itself: a quarter of the
    timeout before the host's deadline (2 s at least, 10 s at most), time for a
    loaded JVM to stop the job and answer."""
    t = float(timeout_ms) / 1000.0
    return max(t - min(max(t * 0.25, 2.0), 10.0), t * 0.5)


class Spark:
    name = "spark"

    def __init__(self, master):
        import tempfile

        import pyspark

        self.pyspark = pyspark
        self.version = pyspark.__version__
        self.master = master
        self.settings = {}
        self.session = None
        self.scratch = tempfile.mkdtemp(prefix="sqlflight-spark-")
        self.seq = 0

    def spark(self):
        """The local session, started on first use, after the settings arrived
        (static settings only apply before the JVM starts)."""
        if self.session is None:
            import os.path

            from pyspark.sql import SparkSession

            b = (
                SparkSession.builder.master(self.master)
                .appName("sqlflight-worker")
                .config("spark.ui.enabled", "false")
                .config("spark.ui.showConsoleProgress", "false")
                .config("spark.driver.host", "127.0.0.1")
                .config("spark.driver.bindAddress", "127.0.0.1")
                .config("spark.sql.warehouse.dir", os.path.join(self.scratch, "warehouse"))
                .config("spark.local.dir", os.path.join(self.scratch, "local"))
                .config("spark.sql.catalogImplementation", "in-memory")
                # Plans print scan filters and paths in full, not cut at 100
                # characters mid-expression (a cut moves with the text).
                .config("spark.sql.maxMetadataStringLength", "10000")
                .config("spark.sql.debug.maxToStringFields", "1000")
            )
            for k, v in self.settings.items():
                b = b.config(k, v)
            self.session = b.getOrCreate()
            self.session.sparkContext.setLogLevel("ERROR")
            # One small job before the first query: a fresh JVM runs its first
            # jobs several times slower (class loading, JIT), which would read
            # as a slowdown of whatever query a replaced worker takes next.
            for _ in range(3):
                self.session.sql("select id % 7 as k, count(*) as n from range(1000) group by 1")._collect_as_arrow()
        return self.session

    def error_class(self, e):
        for getter in ("getCondition", "getErrorClass"):
            f = getattr(e, getter, None)
            if f is not None:
                try:
                    c = f()
                except Exception:  # noqa: BLE001 - a JVM that is gone
                    c = None
                if c:
                    return str(c)
        return ""

    def classify(self, e):
        if isinstance(e, EngineError):
            return e.cls
        if isinstance(e, TimeoutError):
            return "timeout"
        kind = type(e).__name__
        msg = self.message(e)
        cls = self.error_class(e)
        if kind in ("Py4JNetworkError", "ConnectionRefusedError", "BrokenPipeError", "EOFError") or (
            "Answer from Java side is empty" in msg or "Py4JNetworkError" in msg
        ):
            return "crash"
        if "OutOfMemoryError" in msg or kind == "MemoryError":
            return "resource"
        if not self.alive():
            # The JVM exited, or its SparkContext stopped (a query that ends the
            # JVM fails first with "SparkContext was shut down").
            return "crash"
        if cls.startswith("INTERNAL_ERROR") or "INTERNAL_ERROR" in msg[:200]:
            return "internal"
        if kind == "ParseException" or cls.startswith("PARSE_SYNTAX_ERROR"):
            return "parse"
        if kind == "AnalysisException":
            return "plan"
        if "cancelled" in msg and "job group" in msg.lower():
            return "timeout"
        return "execution"

    def alive(self):
        """Whether the JVM answers and its SparkContext still runs."""
        if self.session is None:
            return True
        try:
            return not self.session.sparkContext._jsc.sc().isStopped()
        except Exception:  # noqa: BLE001 - no answer from the JVM
            return False

    def fatal(self, e):
        # A lost JVM (or one out of heap) is not reused: the host starts a new worker.
        return self.classify(e) in ("crash", "resource")

    def message(self, e):
        # An uncaught JVM exception says where it was caught ("An error occurred
        # while calling o87.getResult"); what went wrong is its deepest cause.
        msg = str(e)
        j = getattr(e, "java_exception", None)
        if j is not None and type(e).__name__ == "Py4JJavaError":
            try:
                seen = 0
                while j.getCause() is not None and seen < 20:
                    j, seen = j.getCause(), seen + 1
                msg = j.toString()
            except Exception:  # noqa: BLE001 - a JVM that is gone
                pass
        # Spark's messages end in a JVM stack trace and may quote the statement
        # (`== SQL ==` and the query text); keep the message.
        for cut in ("\n== SQL",):
            msg = msg.split(cut)[0]
        for cut in ("\n\tat ", "\nJVM stacktrace:", "\n\nJVM stacktrace:"):
            msg = msg.split(cut)[0]
        # An analysis error appends the whole unresolved plan after `;`.
        return msg.split(";\n'")[0].strip()

    def setting(self, key, value):
        self.settings[key] = value
        if self.session is not None:
            self.session.conf.set(key, value)

    def table(self, name, path, fmt):
        r = self.spark().read
        df = r.parquet(path) if fmt == "parquet" else r.option("header", "true").option("inferSchema", "true").csv(path)
        df.createOrReplaceTempView(name)

    def statement(self, sql):
        self.spark().sql(sql).collect()

    def is_command(self, sql):
        """Whether `sql` is a command Spark runs eagerly (DDL, INSERT, SET)."""
        s = self.spark()
        plan = s._jsparkSession.sessionState().sqlParser().parsePlan(sql)
        jvm = s._jvm
        command = jvm.java.lang.Class.forName(
            "org.apache.spark.sql.catalyst.plans.logical.Command", True, plan.getClass().getClassLoader()
        )
        return command.isInstance(plan)

    def compile(self, sql):
        s = self.spark()
        if self.is_command(sql):
            # EXPLAIN plans a command without running it.
            text = s.sql("EXPLAIN EXTENDED " + sql).collect()[0][0]
            sections = dict(re.findall(r"== (.+?) ==\n(.*?)(?=\n== |\Z)", text, re.S))
            # EXPLAIN reports a failed analysis as the plan's text.
            failed = re.match(r"\S*(?:Exception|Error): (.*)", sections.get("Analyzed Logical Plan", ""), re.S)
            if failed:
                raise EngineError("plan", failed.group(1).split(";\n'")[0].strip())
            logical = sections.get("Optimized Logical Plan") or text
            physical = sections.get("Physical Plan")
            return spark_plan_lines(logical), physical and spark_plan_lines(physical)
        qe = s.sql(sql)._jdf.queryExecution()
        logical = spark_plan_lines(qe.optimizedPlan().treeString())
        physical = spark_plan_lines(qe.executedPlan().treeString())
        return logical, physical

    def execute(self, sql, memory_limit, timeout_ms=None):
        import threading

        s = self.spark()
        sc = s.sparkContext
        self.seq += 1
        group = f"sqlflight-{os.getpid()}-{self.seq}"
        sc.setJobGroup(group, "sqlflight query", True)
        timer = None
        if timeout_ms:
            # Cancel before the host's deadline, so the answer (a `timeout`)
            # arrives and the JVM is kept.
            t = cancel_after(timeout_ms)
            timer = threading.Timer(t, lambda: sc.cancelJobGroup(group))
            timer.daemon = True
            timer.start()
        try:
            df = s.sql(sql)
            batches = df._collect_as_arrow()
            schema = batches[0].schema if batches else self.arrow_schema(df)
            return schema, batches
        except Exception as e:
            if timer is not None and not timer.is_alive() and "cancel" in str(e).lower():
                raise TimeoutError(f"cancelled at the timeout ({timeout_ms} ms): job group {group} cancelled") from None
            raise
        finally:
            if timer is not None:
                timer.cancel()
            if hasattr(sc, "clearJobGroup"):
                sc.clearJobGroup()

    @staticmethod
    def arrow_schema(df):
        try:
            from pyspark.sql.pandas.types import to_arrow_schema

            return to_arrow_schema(df.schema)
        except Exception:  # noqa: BLE001 - a type Arrow cannot hold: no columns known
            import pyarrow as pa

            return pa.schema([(f.name, pa.string()) for f in df.schema.fields])


# Statements that are queries (planned without running); anything else is a
# command, which Spark Connect runs eagerly on `sql()`.
_QUERY_START = re.compile(r"^\s*(\(|select\b|with\b|values\b|from\b|table\b)", re.I)


class SparkConnect(Spark):
    """A remote Spark (or any Spark Connect server: a cluster, a gateway such as
    Kyuubi, Sail) through the pyspark-client package. The server's version is
    the engine's version; the token, if any, comes from the environment."""

    name = "spark-connect"

    def __init__(self, url):
        import pyspark

        self.pyspark = pyspark
        self.url = url
        token = os.environ.pop("SQLFLIGHT_SPARK_CONNECT_TOKEN", None)
        if token:
            self.url = url.rstrip("/") + "/;token=" + token
        self.settings = {}
        self.session = None
        self.seq = 0
        self._version = None

    @property
    def version(self):
        if self._version is None:
            self._version = str(self.spark().version)
        return self._version

    def spark(self):
        if self.session is None:
            from pyspark.sql import SparkSession

            self.session = SparkSession.builder.remote(self.url).getOrCreate()
            # Plans in full, as in local sessions (servers that lack the keys,
            # such as Sail, keep their own rendering).
            for k, v in (("spark.sql.maxMetadataStringLength", "10000"), ("spark.sql.debug.maxToStringFields", "1000")):
                try:
                    self.session.conf.set(k, v)
                except Exception:  # noqa: BLE001 - a server without the key
                    pass
            for k, v in self.settings.items():
                self.session.conf.set(k, v)
        return self.session

    def alive(self):
        return True

    def message(self, e):
        # A refused credential: say so, and what to set (never the token).
        for status in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
            if f"StatusCode.{status}" in str(e):
                found = re.search(r'details = "([^"\n]{0,200})"', str(e))
                why = found.group(1) if found else "credentials refused"
                return (
                    f"the Spark Connect server refused the connection ({status}: {why}); "
                    "a server that checks a token needs `token_env` naming the environment "
                    "variable that holds it (the token travels over TLS unless the host is "
                    "`localhost`)"
                )
        return super().message(e)

    def classify(self, e):
        msg = self.message(e)
        if "StatusCode.UNAVAILABLE" in str(e) or "failed to connect" in msg.lower():
            return "crash"
        if "OPERATION_CANCELED" in msg or "interrupted" in msg.lower():
            return "timeout"
        return super().classify(e)

    def fatal(self, e):
        # A lost connection: the host starts a new worker, which reconnects.
        return self.classify(e) == "crash"

    def is_command(self, sql):
        return not _QUERY_START.match(sql)

    def compile(self, sql):
        s = self.spark()
        if self.is_command(sql):
            text = s.sql("EXPLAIN EXTENDED " + sql).collect()[0][0]
        else:
            text = s.sql(sql)._explain_string(extended=True)
        sections = dict(re.findall(r"== (.+?) ==\n(.*?)(?=\n== |\Z)", text, re.S))
        failed = re.match(r"\S*(?:Exception|Error): (.*)", sections.get("Analyzed Logical Plan", ""), re.S)
        if failed:
            raise EngineError("plan", failed.group(1).split(";\n'")[0].strip())
        logical = sections.get("Optimized Logical Plan") or sections.get("Logical Plan") or text
        physical = sections.get("Physical Plan")
        return spark_plan_lines(logical), physical and spark_plan_lines(physical)

    def execute(self, sql, memory_limit, timeout_ms=None):
        import threading

        s = self.spark()
        self.seq += 1
        tag = f"sqlflight-{os.getpid()}-{self.seq}"
        timer = None
        fired = threading.Event()

        def interrupt():
            fired.set()
            s.interruptTag(tag)

        try:
            s.addTag(tag)
            if timeout_ms:
                t = cancel_after(timeout_ms)
                timer = threading.Timer(t, interrupt)
                timer.daemon = True
                timer.start()
            table = s.sql(sql).toArrow()
            return table.schema, table.to_batches()
        except Exception:
            # Whatever the server says once we interrupted the query (Spark:
            # OPERATION_CANCELED; Sail: "operation not found"), the query ran
            # out of time.
            if fired.is_set():
                raise TimeoutError(f"cancelled at the timeout ({timeout_ms} ms): operation tag {tag} interrupted") from None
            raise
        finally:
            if timer is not None:
                timer.cancel()
            try:
                s.removeTag(tag)
            except Exception:  # noqa: BLE001 - the server may be gone
                pass


# A Java package path before a class name.
_JAVA_PACKAGE = re.compile(r"\b(?:[a-z][a-z0-9_]*\.)+(?=[A-Z]\w*(?:Exception|Error)\b)")


def flink_scan_tables(line):
    """`table=[[default_catalog, default_database, t, filter=[..], project=[..],
    metadata=[]]]` as `table=[t], filter=[..], project=[..]`: the table's name
    where plan facts look for it, its pushed-down parts as their own details."""
    start = line.find("table=[[")
    if start < 0:
        return line
    i, depth = start + len("table=["), 0
    for j in range(i, len(line)):
        depth += {"[": 1, "]": -1}.get(line[j], 0)
        if depth == 0:
            break
    else:
        return line
    inner = line[i + 1 : j]
    parts, depth, cur = [], 0, ""
    for ch in inner:
        depth += {"[": 1, "]": -1, "(": 1, ")": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    parts.append(cur.strip())
    path = [p for p in parts if "=" not in p]
    rest = [p for p in parts if "=" in p and not p.endswith("=[]")]
    name = path[-1] if path else inner
    return line[:start] + ", ".join([f"table={name}"] + rest) + line[j + 2 :]


class Flink:
    """Apache Flink (pyflink) in a long-lived local mini-cluster, in batch or
    streaming mode. A streaming query's changelog (+I, -U, +U, -D) is folded
    into its final table before it is returned, so it compares with a batch
    result."""

    def __init__(self, mode, parallelism):
        import pyflink.version

        self.version = pyflink.version.__version__
        self.mode = mode
        self.name = "flink-" + mode
        self.parallelism = parallelism
        self.settings = {}
        self.env = None
        # The worker's local mini-cluster (see `tenv`).
        self.cluster = None
        # Set once a job was cancelled from the timer thread (see `execute`).
        self.tainted = False
        # Set once the JVM is known to have exited.
        self.dead = False

    def tenv(self):
        """The table environment, started on first use, after the settings
        arrived. It submits its jobs to one long-lived local mini-cluster in the
        same JVM (`execution.target: remote` at the cluster's loopback REST
        address) rather than to a new mini-cluster per job, Flink's local
        default: a job then costs about 0.5 s instead of 1.5 s, and the worker
        holds the cluster, so a job can be cancelled at the timeout."""
        if self.env is None:
            from pyflink.common import Configuration
            from pyflink.java_gateway import get_gateway
            from pyflink.table import EnvironmentSettings, TableEnvironment

            jvm = get_gateway().jvm
            cluster = jvm.org.apache.flink.configuration.Configuration()
            for k, v in {"rest.bind-address": "127.0.0.1", "rest.address": "127.0.0.1", "rest.port": "0", **self.settings}.items():
                cluster.setString(k, v)
            # As many task slots as the widest job the settings can ask for.
            slots = self.parallelism
            for k in ("parallelism.default", "table.exec.resource.default-parallelism"):
                try:
                    slots = max(slots, int(self.settings.get(k, 0)))
                except ValueError:
                    pass
            mc = jvm.org.apache.flink.runtime.minicluster
            conf = mc.MiniClusterConfiguration.Builder().setConfiguration(cluster)
            self.cluster = mc.MiniCluster(conf.setNumTaskManagers(1).setNumSlotsPerTaskManager(slots).build())
            self.cluster.start()
            rest = self.cluster.getRestAddress().get()
            c = Configuration()
            c.set_string("parallelism.default", str(self.parallelism))
            c.set_string("execution.target", "remote")
            c.set_string("rest.address", rest.getHost())
            c.set_string("rest.port", str(rest.getPort()))
            for k, v in self.settings.items():
                c.set_string(k, v)
            b = EnvironmentSettings.new_instance()
            b = b.in_batch_mode() if self.mode == "batch" else b.in_streaming_mode()
            self.env = TableEnvironment.create(b.with_configuration(c).build())
            # The first jobs of a fresh JVM run several times slower.
            for _ in range(2):
                with self.env.execute_sql("select count(*) from (values (1), (2), (3)) as t(x)").collect() as it:
                    list(it)
        return self.env

    def cancel_jobs(self):
        """Cancels every job still running on the worker's mini-cluster (one
        query runs at a time, so that is the query's job)."""
        for job in self.cluster.listJobs().get():
            if not job.getJobState().isGloballyTerminalState():
                self.cluster.cancelJob(job.getJobId())

    def java_class(self, e):
        j = getattr(e, "java_exception", None)
        try:
            return j.getClass().getName() if j is not None else ""
        except Exception:  # noqa: BLE001 - a JVM that is gone
            return ""

    def jvm_gone(self):
        """Whether the JVM (this worker's only child process) has exited. A
        call after that fails with whatever py4j says (`org does not exist in
        the JVM`, a refused connection), which is a crash, not an error of the
        query."""
        if not self.dead and self.env is not None:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
                self.dead = pid != 0
            except ChildProcessError:
                self.dead = True
        return self.dead

    def classify(self, e):
        if isinstance(e, EngineError):
            return e.cls
        if isinstance(e, TimeoutError):
            return "timeout"
        if self.jvm_gone():
            return "crash"
        kind = type(e).__name__
        msg = self.message(e)
        jc = self.java_class(e)
        if kind in ("Py4JNetworkError", "ConnectionRefusedError", "BrokenPipeError", "EOFError") or (
            "Answer from Java side is empty" in msg or "Py4JNetworkError" in msg
        ):
            return "crash"
        if "OutOfMemoryError" in msg or kind == "MemoryError":
            return "resource"
        if jc.endswith("SqlParserException") or "SQL parse failed" in msg:
            return "parse"
        if jc.endswith("ValidationException") or "SQL validation failed" in msg:
            return "plan"
        if "This is a bug" in msg or "Unexpected" in msg[:80] or "CodeGenException" in msg:
            return "internal"
        if jc.endswith("TableException") or kind == "TableException":
            # The planner refuses the query (e.g. a sort a stream cannot do).
            return "plan"
        return "execution"

    def fatal(self, e):
        return self.tainted or self.classify(e) in ("crash", "resource")

    def message(self, e):
        if isinstance(e, EngineError):
            return f"flink {self.mode} mode: {e.message}"
        if self.jvm_gone():
            return f"flink {self.mode} mode: the JVM exited (killed, or out of memory); a new worker takes the next query"
        msg = str(e)
        j = getattr(e, "java_exception", None)
        if j is not None:
            try:
                seen = 0
                while j.getCause() is not None and seen < 20:
                    j, seen = j.getCause(), seen + 1
                msg = j.toString()
            except Exception:  # noqa: BLE001 - a JVM that is gone
                pass
        msg = msg.split("\n\tat ")[0].split("\nJVM stacktrace:")[0].strip()
        # `org.apache.calcite.sql.validate.SqlValidatorException: ...` reads as
        # `SqlValidatorException: ...` (the package path says nothing to a user).
        msg = _JAVA_PACKAGE.sub("", msg)
        return f"flink {self.mode} mode: {msg}"

    def setting(self, key, value):
        self.settings[key] = value
        if self.env is not None:
            self.env.get_config().set(key, value)

    def table(self, name, path, fmt):
        # The host declares Flink's tables itself (converted CSV files, created
        # by setup statements): a table message means a host that does not.
        raise EngineError("plan", f"table {name}: Flink tables are declared by sqlflight's setup statements")

    def statement(self, sql):
        r = self.tenv().execute_sql(sql)
        if r.get_job_client() is not None:
            r.wait()

    def compile(self, sql):
        text = self.tenv().explain_sql(sql)
        sections = dict(re.findall(r"== (.+?) ==\n(.*?)(?=\n== |\Z)", text, re.S))
        logical = sections.get("Optimized Physical Plan") or text
        physical = sections.get("Optimized Execution Plan")
        lines = lambda t: "\n".join(map(flink_scan_tables, spark_plan_lines(t).splitlines()))  # noqa: E731
        return lines(logical), physical and lines(physical)

    def query(self, sql):
        """The query as a table. pyflink cannot hand a TIMESTAMP_LTZ value to
        Python, so such columns are cast to TIMESTAMP of the same precision, the
        wall-clock time in the session's time zone, as Flink's own SQL client
        prints them."""
        from pyflink.table import DataTypes
        from pyflink.table import types as T
        from pyflink.table.expressions import col

        t = self.tenv().sql_query(sql)
        schema = t.get_schema()
        kinds = schema.get_field_data_types()
        if not any(isinstance(k, T.LocalZonedTimestampType) for k in kinds):
            return t
        cols = [
            col(n).cast(DataTypes.TIMESTAMP(getattr(k, "precision", 3))).alias(n)
            if isinstance(k, T.LocalZonedTimestampType)
            else col(n)
            for n, k in zip(schema.get_field_names(), kinds)
        ]
        return t.select(*cols)

    def execute(self, sql, memory_limit, timeout_ms=None):
        """Runs the query's job and returns its final table as Arrow. Flink's
        own Arrow collection (the one `Table.to_pandas` uses) does the work in
        the JVM: rows become Arrow batches there, and a streaming changelog
        (+I, -U, +U, -D) is folded into its final rows (a multiset: +I/+U add a
        row, -U/-D take one back) before a byte crosses to Python, so a
        changelog of many updates costs no Python call per row."""
        import io
        import threading

        import pyarrow as pa
        from pyflink.java_gateway import get_gateway
        from pyflink.table import types as T

        t = self.query(sql)
        schema = t.get_schema()
        names = list(schema.get_field_names())
        jvm = get_gateway().jvm
        timer = None
        cancelled = []
        if timeout_ms:

            def cancel():
                cancelled.append(True)
                # A call from this thread opens a second py4j connection, served
                # by another Java thread; Flink's planner keeps thread-local
                # state (Calcite metadata providers) that later queries then
                # miss, so the worker is replaced after it.
                self.tainted = True
                try:
                    self.cancel_jobs()
                except Exception:  # noqa: BLE001 - the job ended meanwhile
                    pass

            timer = threading.Timer(cancel_after(timeout_ms), cancel)
            timer.daemon = True
            timer.start()
        chunks = []
        try:
            it = jvm.org.apache.flink.table.runtime.arrow.ArrowUtils.collectAsPandasDataFrame(t._j_table, 4096)
            while it.hasNext():
                chunks.append(bytes(it.next()))
        except Exception as e:
            if cancelled:
                raise TimeoutError(f"job cancelled at the timeout ({timeout_ms} ms)") from None
            if not chunks and "ArrowUtils.isAppendOnlyTable" in str(e):
                # Flink's check whether the result is a changelog plans the query
                # once more, and that planning fails for some queries the
                # planner otherwise runs (a correlated scalar subquery in
                # streaming mode: NullPointerException in
                # FlinkDecorrelateProgram); no job was started: take the
                # row-by-row path.
                if timer is not None:
                    timer.cancel()
                return self.execute_rows(sql, timeout_ms)
            raise
        finally:
            if timer is not None:
                timer.cancel()
        if cancelled:
            raise TimeoutError(f"job cancelled at the timeout ({timeout_ms} ms)")
        if chunks:
            table = pa.ipc.open_stream(io.BytesIO(b"".join(chunks))).read_all()
            return table.schema, table.to_batches()
        # No row: Flink sends no stream at all; the schema from the types.
        try:
            fields = [pa.field(n, T.to_arrow_type(k)) for n, k in zip(names, schema.get_field_data_types())]
        except Exception:  # noqa: BLE001 - a type Arrow has no match for
            fields = [pa.field(n, pa.string()) for n in names]
        return pa.schema(fields), []

    def submit(self, sql):
        """Starts the job of `sql` and returns its result (for `execute_rows`);
        a result with TIMESTAMP_LTZ columns is run again with the casts of
        `query`."""
        from pyflink.table import types as T

        r = self.tenv().execute_sql(sql)
        kinds = r.get_table_schema().get_field_data_types()
        if not any(isinstance(k, T.LocalZonedTimestampType) for k in kinds):
            return r
        client = r.get_job_client()
        if client is not None:
            try:
                client.cancel()
            except Exception:  # noqa: BLE001 - already finished
                pass
        return self.query(sql).execute()

    def execute_rows(self, sql, timeout_ms=None):
        """The row-by-row path, for the queries Flink's Arrow collection cannot
        take: one py4j call per changelog row, folded here."""
        import threading

        import pyarrow as pa
        from pyflink.table import types as T

        r = self.submit(sql)
        schema = r.get_table_schema()
        names = list(schema.get_field_names())
        try:
            types = [T.to_arrow_type(t) for t in schema.get_field_data_types()]
        except Exception:  # noqa: BLE001 - a type Arrow has no match for: inferred from the values
            types = [None] * len(names)
        client = r.get_job_client()
        rows = {}
        if client is not None:
            timer = None
            cancelled = []
            # The timer thread must never hold the last reference to a py4j
            # object: py4j would release it from that thread over a second
            # connection, served by another Java thread, and Flink's planner
            # (whose Calcite metadata providers are thread-local to the thread
            # that built the environment) then fails later queries with
            # `NullPointerException: metadataHandlerProvider`. So the job client
            # is lent through a list the main thread empties.
            lent = [client]
            if timeout_ms:

                def cancel():
                    if lent:
                        cancelled.append(True)
                        # A cancel from this thread opens that second
                        # connection: the worker is replaced after it.
                        self.tainted = True
                        lent[0].cancel()

                timer = threading.Timer(cancel_after(timeout_ms), cancel)
                timer.daemon = True
                timer.start()
            try:
                # The changelog folded into a multiset: +I/+U add a row, -U/-D
                # take one back (a batch job only inserts).
                with r.collect() as it:
                    for row in it:
                        kind = str(row.get_row_kind())
                        key = tuple(row)
                        if kind in ("+I", "+U"):
                            rows[key] = rows.get(key, 0) + 1
                        else:
                            n = rows.get(key, 0) - 1
                            if n > 0:
                                rows[key] = n
                            else:
                                rows.pop(key, None)
            except Exception:
                if cancelled:
                    raise TimeoutError(f"job cancelled at the timeout ({timeout_ms} ms)") from None
                raise
            finally:
                lent.clear()
                if timer is not None:
                    timer.cancel()
        table = [k for k, n in rows.items() for _ in range(n)]
        arrays = []
        for i, (n, t) in enumerate(zip(names, types)):
            values = [row[i] for row in table]
            try:
                arrays.append(pa.array(values, type=t))
            except Exception:  # noqa: BLE001 - values that do not fit the declared type
                arrays.append(pa.array([None if v is None else str(v) for v in values], type=pa.string()))
        batch = pa.RecordBatch.from_arrays(arrays, names=names)
        return batch.schema, [batch] if table else []


def exit_with_host(interval=1.0):
    """Ends this worker, and the processes it started (a JVM), soon after the
    sqlflight process that started it is gone (killed with -9, say): its end of
    the protocol pipe closes, but a worker busy in a long engine call would not
    read it until the call returns, and a JVM would outlive both. A daemon thread
    notices the new parent and kills the children, then this process."""
    import threading
    import time

    host = os.getppid()

    def children():
        pids = []
        try:
            for task in os.listdir("/proc/self/task"):
                with open(f"/proc/self/task/{task}/children") as f:
                    pids.extend(int(p) for p in f.read().split())
        except OSError:
            pass
        return pids

    def watch():
        while os.getppid() == host:
            time.sleep(interval)
        for pid in children():
            try:
                os.kill(pid, 9)
            except OSError:
                pass
        os._exit(3)

    if host > 1:
        threading.Thread(target=watch, name="sqlflight-host-watch", daemon=True).start()


def main():
    exit_with_host()
    args = sys.argv[1:]
    usage = "usage: sqlflight_worker.py duckdb|datafusion|spark [MASTER]|spark-connect URL|flink batch|streaming [PARALLELISM]"
    if not args or args[0] not in ("duckdb", "datafusion", "spark", "spark-connect", "flink"):
        print(usage, file=sys.stderr)
        return 2
    if args[0] == "spark-connect":
        if len(args) != 2:
            print(usage, file=sys.stderr)
            return 2
        return serve(SparkConnect(args[1]))
    if args[0] == "flink":
        if len(args) < 2 or args[1] not in ("batch", "streaming"):
            print(usage, file=sys.stderr)
            return 2
        return serve(Flink(args[1], int(args[2]) if len(args) > 2 else 2))
    if args[0] == "spark":
        return serve(Spark(args[1] if len(args) > 1 else "local[2]"))
    return serve(DuckDB() if args[0] == "duckdb" else DataFusion())


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
                        "capabilities": ["compile", "execute", "settings", "tables"]
                        + (["unordered_results"] if getattr(engine, "mode", None) == "streaming" else []),
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
                schema, batches = engine.execute(msg["sql"], msg.get("memory_limit"), msg.get("timeout_ms"))
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
            message = engine.message(e) if hasattr(engine, "message") else str(e).split("\n\nStack Trace")[0]
            fatal = engine.fatal(e)
            send({"ok": False, "fatal": fatal, "error": {"class": engine.classify(e), "message": message}})
            if fatal:
                # The engine is unusable after this error; the host starts a new worker.
                return 0


if __name__ == "__main__":
    sys.exit(main())
