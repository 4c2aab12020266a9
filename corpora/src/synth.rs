//! Generated query logs of any length, for benchmarks and sampling tests: a
//! MariaDB slow query log (the format `pt-query-digest` reads too) with a fixed
//! set of statement shapes, users and durations drawn from a seeded generator.

use std::io::{self, Write};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Statement shapes; `{n}`, `{s}` and `{list}` are filled with literals.
const SHAPES: [&str; 12] = [
    "SELECT name, price FROM items WHERE id = {n}",
    "SELECT count(*) FROM orders WHERE customer_id = {n} AND status = '{s}'",
    "SELECT o.id, o.total FROM orders o JOIN customers c ON c.id = o.customer_id WHERE c.region = '{s}' AND o.total > {n}.5 ORDER BY o.total DESC LIMIT 10",
    "SELECT * FROM items WHERE id IN ({list})",
    "UPDATE items SET price = {n}.25 WHERE id = {n}",
    "INSERT INTO audit (user_id, action, at) VALUES ({n}, '{s}', '2024-03-15 10:11:12'), ({n}, '{s}', '2024-03-15 10:11:13')",
    "SELECT region, sum(total) FROM orders WHERE created_at >= '2024-01-01' AND created_at < '2024-02-01' GROUP BY region",
    "DELETE FROM sessions WHERE expires_at < {n}",
    "SELECT c.name FROM customers c WHERE c.email = '{s}@example.com'",
    "SELECT id FROM items WHERE name LIKE '{s}%' AND price BETWEEN {n} AND {n}",
    "SELECT /* report:{s} */ count(DISTINCT customer_id) FROM orders WHERE status IN ('{s}', 'new', 'paid')",
    "SELECT i.id, i.name, COALESCE(s.qty, 0) FROM items i LEFT JOIN stock s ON s.item_id = i.id WHERE i.category = {n} AND s.warehouse = '{s}'",
];

/// Number of distinct statement shapes [`write_slow_log`] produces.
pub const TEMPLATES: usize = SHAPES.len();

/// Tables the statements use (MySQL/MariaDB DDL), for replaying them on a server.
pub const SCHEMA: &str = "CREATE TABLE items (id int PRIMARY KEY, name varchar(40), price decimal(10,2), category int);
CREATE TABLE orders (id int PRIMARY KEY, customer_id int, status varchar(10), total decimal(10,2), region varchar(10), created_at datetime);
CREATE TABLE customers (id int PRIMARY KEY, name varchar(40), email varchar(60), region varchar(10));
CREATE TABLE audit (user_id int, action varchar(20), at datetime);
CREATE TABLE sessions (id int PRIMARY KEY, expires_at int);
CREATE TABLE stock (item_id int, warehouse varchar(10), qty int);
";

/// Generated statements: `(shape, sql, seconds)`, skewed towards the first
/// shapes by count and towards the last by duration.
pub struct Statements {
    rng: ChaCha8Rng,
    cumulative: Vec<f64>,
}

impl Statements {
    /// A generator seeded with `seed` (the same seed, the same statements).
    pub fn new(seed: u64) -> Self {
        let harmonic: f64 = (1..=SHAPES.len()).map(|j| 1.0 / j as f64).sum();
        let mut acc = 0.0;
        let cumulative = (0..SHAPES.len())
            .map(|j| {
                acc += 1.0 / (j + 1) as f64 / harmonic;
                acc
            })
            .collect();
        Statements {
            rng: ChaCha8Rng::seed_from_u64(seed),
            cumulative,
        }
    }
}

impl Iterator for Statements {
    type Item = (usize, String, f64);

    fn next(&mut self) -> Option<Self::Item> {
        let rng = &mut self.rng;
        let r: f64 = rng.random();
        let shape = self.cumulative.iter().position(|&c| r < c).unwrap_or(SHAPES.len() - 1);
        let n: u32 = rng.random_range(1..100_000);
        let s: String = (0..6).map(|_| (b'a' + rng.random_range(0..26u8)) as char).collect();
        let list: Vec<String> = (0..rng.random_range(1..8))
            .map(|_| rng.random_range(1..1000u32).to_string())
            .collect();
        let sql = SHAPES[shape]
            .replace("{n}", &n.to_string())
            .replace("{s}", &s)
            .replace("{list}", &list.join(", "));
        let secs = rng.random_range(0.0001..0.002) * (shape + 1) as f64 * (shape + 1) as f64;
        Some((shape, sql, secs))
    }
}

/// Writes a MariaDB slow log of `entries` statements; returns the bytes written.
pub fn write_slow_log(out: &mut dyn Write, entries: u64, seed: u64) -> io::Result<u64> {
    let mut w = io::BufWriter::with_capacity(1 << 20, out);
    let mut bytes = 0u64;
    let header = "/usr/sbin/mariadbd, Version: 10.11.6-MariaDB-0+deb12u1-log (Debian 12). started with:\n\
                  Tcp port: 3306  Unix socket: /run/mysqld/mysqld.sock\nTime\t\t    Id Command\tArgument\n";
    w.write_all(header.as_bytes())?;
    bytes += header.len() as u64;
    let t0 = 1_700_560_800u64;
    let mut line = String::with_capacity(512);
    for (k, (_, sql, secs)) in Statements::new(seed).take(entries as usize).enumerate() {
        let k = k as u64;
        let ts = t0 + k / 1000;
        line.clear();
        use std::fmt::Write as _;
        let _ = write!(
            line,
            "# Time: {}\n# User@Host: u{}[u{}] @ localhost [127.0.0.1]\n# Thread_id: {}  Schema: shop  QC_hit: No\n\
             # Query_time: {secs:.6}  Lock_time: 0.000010  Rows_sent: 1  Rows_examined: {}\n\
             # Rows_affected: 0  Bytes_sent: 80\nSET timestamp={ts};\n{sql};\n",
            chrono::DateTime::from_timestamp(ts as i64, 0)
                .map(|t| t.format("%y%m%d %H:%M:%S").to_string())
                .unwrap_or_default(),
            k % 7,
            k % 7,
            k % 50,
            k % 1000
        );
        w.write_all(line.as_bytes())?;
        bytes += line.len() as u64;
    }
    w.flush()?;
    Ok(bytes)
}
