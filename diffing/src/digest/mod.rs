//! Result digests: desensitized fingerprints of a query result, computed from Arrow
//! record batches as they stream, in memory proportional to the number of columns.
//!
//! What a digest holds (and nothing else: no value can be read back from it):
//! - the schema as logical types (`Utf8` and `Utf8View` are both `string`, a
//!   dictionary is its value type), and the row count;
//! - an order-insensitive multiset digest of the rows: two wrapping sums of a
//!   strong hash per row (128 bits), so equal results in any order give equal
//!   digests without a sort. Float columns are left out of it: they are compared
//!   with a tolerance instead;
//! - when the statement fixes the order, an order-sensitive digest over the ORDER BY
//!   key columns only (rows tied on the keys may legally swap);
//! - per column: null count and the wrapping sum of value hashes (so a mismatch
//!   names the columns); for floats also the finite sum (compensated), NaN/+inf/-inf
//!   counts and an exact bit-multiset digest.
//!
//! Values are hashed by their logical value, so physical-only differences
//! (dictionary vs plain, `Utf8` vs `Utf8View`, `List` vs `LargeList`) do not count.
//! Fixed-width values are hashed with a xorshift-multiply mixer, short strings with
//! one folded multiply over overlapping loads, longer ones with xxh3; floats nested
//! inside lists, structs or maps are hashed exactly.
//!
//! Speed: every per-row step is written as a plain loop over a column (hash a
//! column, fold it into the row hashes, sum it), so the compiler vectorizes it. On
//! x86-64 CPUs with AVX-512 (64-bit vector multiplies) the same code is compiled a
//! second time for those features and chosen at run time; both builds compute the
//! same digest bit for bit (integer arithmetic, and float sums whose lane structure
//! is fixed by the code), which `portable_and_vectorized_builds_agree` checks. Short
//! byte values, whose folded 64x64→128 multiply no compiler vectorizes, have one
//! hand-written AVX-512 path (`bytes_column_avx512`) computing the same hashes.
//! The hash loops hand their hashes to a `Sink` 64 rows at a time: null-free
//! columns (not order keys) are folded into the row hashes straight from that
//! L1-resident chunk, so no per-column hash buffer is written and read back.
//!
//! Stored values are sealed: every aggregate a digest keeps (row multiset, order
//! digest, column sums, float bit digests) is written as a BLAKE3 hash of the
//! aggregate, its kind and its column, keyed with the run's [`DigestKey`] when one is
//! set. The per-value hashes are fast bijections, so an unsealed one-row digest
//! could be inverted to the value; a sealed one cannot, and with a key it cannot
//! be brute-forced either (without one, a low-entropy value — a flag, a small
//! number — can still be guessed by hashing candidates).
//!
//! The hash functions are versioned ([`DIGEST_VERSION`]): digests of different
//! versions must never be compared, so run manifests record the version and a
//! snapshot or resume across versions is refused.

mod columns;
mod compare;
mod hash;
mod raw;

use arrow::array::{Array, RecordBatch};
use arrow::datatypes::*;
use serde::{Deserialize, Serialize};

pub use columns::value_hashes;
use columns::*;
pub use compare::{DigestComparison, FloatTolerance, compare_digests};
pub use hash::fmix64;
use hash::*;

/// The version of the digest functions. Bump it whenever any digest value changes
/// (`digests_are_pinned` fails when they do). Version 1 (until 2026-11) used
/// folded 64x64→128 multiplies per value and 128-bit sums.
pub const DIGEST_VERSION: u32 = 2;

/// A column as it appears in a digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnSchema {
    /// The column's name.
    pub name: String,
    /// Logical type: physical-only variants are folded together.
    pub logical_type: String,
}

/// Float statistics of one column.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct FloatStats {
    /// Sum of the finite values. Kept in memory for the comparison and never
    /// written: for a one-row result it would be the value itself.
    #[serde(skip)]
    pub sum: f64,
    /// Finite values.
    pub finite: u64,
    /// NaN values.
    pub nan: u64,
    /// +inf values.
    pub pos_inf: u64,
    /// -inf values.
    pub neg_inf: u64,
    /// Exact bit-multiset digest of the values (hex): equal means equal values.
    pub exact: String,
}

/// Per-column digest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnDigest {
    /// Null values.
    pub nulls: u64,
    /// Wrapping sum of value hashes (hex). Empty for float columns.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub values: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// Float statistics (float columns only; their values are compared within a tolerance).
    pub float: Option<FloatStats>,
}

/// The digest of one result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultDigest {
    /// The columns' names and logical types.
    pub schema: Vec<ColumnSchema>,
    /// Rows in the result.
    pub rows: u64,
    /// Order-insensitive digest of the rows (non-float columns), hex.
    pub multiset: String,
    /// Order-sensitive digest over the ORDER BY key columns, hex, when the order is fixed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ordered: Option<String>,
    /// One digest per column, in schema order.
    pub columns: Vec<ColumnDigest>,
}

impl ResultDigest {
    /// One hash of the whole digest, for quick equality and display.
    pub fn short(&self) -> String {
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        h.update(self.multiset.as_bytes());
        h.update(&self.rows.to_le_bytes());
        for c in &self.columns {
            h.update(c.values.as_bytes());
            if let Some(f) = &c.float {
                h.update(f.exact.as_bytes());
            }
        }
        format!("{:016x}", h.digest())
    }
}

/// The logical type name of an Arrow type.
pub fn logical_type(dt: &DataType) -> String {
    match dt {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "string".into(),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "binary".into(),
        DataType::Dictionary(_, v) => logical_type(v),
        DataType::RunEndEncoded(_, v) => logical_type(v.data_type()),
        DataType::List(f) | DataType::LargeList(f) | DataType::ListView(f) | DataType::LargeListView(f) => {
            format!("list<{}>", logical_type(f.data_type()))
        }
        DataType::FixedSizeList(f, n) => format!("list<{}>[{n}]", logical_type(f.data_type())),
        DataType::Struct(fields) => {
            let inner: Vec<String> = fields
                .iter()
                .map(|f| format!("{}: {}", f.name(), logical_type(f.data_type())))
                .collect();
            format!("struct<{}>", inner.join(", "))
        }
        DataType::Map(f, _) => match f.data_type() {
            DataType::Struct(kv) if kv.len() == 2 => {
                format!(
                    "map<{}, {}>",
                    logical_type(kv[0].data_type()),
                    logical_type(kv[1].data_type())
                )
            }
            other => format!("map<{}>", logical_type(other)),
        },
        other => other.to_string(),
    }
}

fn is_float(dt: &DataType) -> bool {
    matches!(dt, DataType::Float16 | DataType::Float32 | DataType::Float64)
        || matches!(dt, DataType::Dictionary(_, v) if is_float(v))
}

/// Which build of the digest loops runs: the portable one, or the same code
/// compiled for AVX-512 (chosen at run time; both compute the same digest).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
enum Build {
    Portable,
    Avx512(Avx512),
}

/// Proof that this CPU runs the AVX-512 build: only [`Build::detect`] makes one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Avx512(());

impl Build {
    fn detect() -> Build {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512dq")
            && std::arch::is_x86_feature_detected!("avx512vl")
            && std::arch::is_x86_feature_detected!("avx512bw")
        {
            return Build::Avx512(Avx512(()));
        }
        Build::Portable
    }
}

/// Neumaier compensated sum (combines the lane sums of a column).
#[derive(Debug, Clone, Copy, Default)]
struct Neumaier {
    sum: f64,
    c: f64,
}

impl Neumaier {
    fn add(&mut self, x: f64) {
        let t = self.sum + x;
        if self.sum.abs() >= x.abs() {
            self.c += (self.sum - t) + x;
        } else {
            self.c += (x - t) + self.sum;
        }
        self.sum = t;
    }
    fn value(&self) -> f64 {
        self.sum + self.c
    }
}

#[derive(Debug, Clone, Default)]
struct ColAcc {
    nulls: u64,
    values: u64,
    float: bool,
    fsum: Neumaier,
    finite: u64,
    nan: u64,
    pos_inf: u64,
    neg_inf: u64,
    exact: u64,
}

/// The secret that seals a run's digests. Derived from secret material (the
/// `SQLFLIGHT_DIGEST_KEY` environment variable or `flight.digest_key_file`); only
/// its [`DigestKey::id`] is ever written, and it never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct DigestKey([u8; 32]);

impl DigestKey {
    /// A key derived from secret material (BLAKE3 key derivation).
    pub fn derive(secret: &[u8]) -> DigestKey {
        DigestKey(blake3::derive_key("sqlflight 2026-11-21 result digest key", secret))
    }

    /// A public name for the key: equal keys have equal ids; the id reveals
    /// nothing of the key. Recorded in run manifests.
    pub fn id(&self) -> String {
        blake3::keyed_hash(&self.0, b"sqlflight digest key id").to_hex()[..16].to_string()
    }
}

impl std::fmt::Debug for DigestKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DigestKey({})", self.id())
    }
}

/// Seals an aggregate for storage: BLAKE3 (keyed when the run has a key) of the
/// version, the kind of aggregate, its column and its words, as many bytes (in hex)
/// as the words hold.
fn seal(key: Option<&DigestKey>, kind: &str, column: usize, words: &[u64]) -> String {
    let mut h = match key {
        Some(k) => blake3::Hasher::new_keyed(&k.0),
        None => blake3::Hasher::new(),
    };
    h.update(&DIGEST_VERSION.to_le_bytes());
    h.update(kind.as_bytes());
    h.update(&(column as u64).to_le_bytes());
    for w in words {
        h.update(&w.to_le_bytes());
    }
    let hex = h.finalize().to_hex();
    hex[..(16 * words.len()).min(hex.len())].to_string()
}

/// Builds a [`ResultDigest`] batch by batch.
pub struct DigestBuilder {
    schema: Vec<ColumnSchema>,
    cols: Vec<ColAcc>,
    order_keys: Option<Vec<usize>>,
    rows: u64,
    multiset: (u64, u64),
    ordered: u64,
    row: Vec<u64>,
    key: Vec<u64>,
    vals: Vec<u64>,
    floats: Vec<f64>,
    build: Build,
    seal_key: Option<DigestKey>,
}

impl DigestBuilder {
    /// `order_keys`: output column indices of the ORDER BY keys, when the
    /// statement fixes the order.
    pub fn new(schema: &Schema, order_keys: Option<Vec<usize>>) -> Self {
        let cols = schema
            .fields()
            .iter()
            .map(|f| ColAcc {
                float: is_float(f.data_type()),
                ..Default::default()
            })
            .collect();
        let order_keys = order_keys.filter(|k| !k.is_empty() && k.iter().all(|&i| i < schema.fields().len()));
        DigestBuilder {
            schema: schema
                .fields()
                .iter()
                .map(|f| ColumnSchema {
                    name: f.name().clone(),
                    logical_type: logical_type(f.data_type()),
                })
                .collect(),
            cols,
            order_keys,
            rows: 0,
            multiset: (0, 0),
            ordered: 0x0de7_e5ed,
            row: Vec::new(),
            key: Vec::new(),
            vals: Vec::new(),
            floats: Vec::new(),
            build: Build::detect(),
            seal_key: None,
        }
    }

    /// Seals the digest with `key` (see the module docs); `None`: unkeyed.
    pub fn keyed(mut self, key: Option<&DigestKey>) -> Self {
        self.seal_key = key.cloned();
        self
    }

    /// Uses the portable build of the digest loops even where the AVX-512 build
    /// would run (benchmarks; both compute the same digest).
    #[cfg(feature = "bench")]
    pub fn portable(mut self) -> Self {
        self.build = Build::Portable;
        self
    }

    /// Which build of the digest loops runs: `portable` or `avx512`.
    pub fn build_name(&self) -> &'static str {
        match self.build {
            Build::Portable => "portable",
            Build::Avx512(_) => "avx512",
        }
    }

    /// Adds one batch. Batches whose column count differs from the schema's are
    /// digested as far as their columns go (engines do not produce them).
    pub fn update(&mut self, batch: &RecordBatch) {
        match self.build {
            Build::Avx512(token) => raw::update_vectorized(token, self, batch),
            Build::Portable => self.update_body(batch),
        }
    }

    #[inline(always)]
    fn update_body(&mut self, batch: &RecordBatch) {
        let n = batch.num_rows();
        self.rows += n as u64;
        // The first folded column overwrites every row hash (from the seed), so
        // the buffer is only resized here.
        self.row.resize(n, ROW_SEED);
        let mut seeded = false;
        let keyed = self.order_keys.is_some();
        if keyed {
            self.key.clear();
            self.key.resize(n, 0x0de7);
        }
        for (ci, (col, acc)) in batch.columns().iter().zip(self.cols.iter_mut()).enumerate() {
            let mut pump = Pump::new(batch.columns().get(ci + 1).map(|c| c.as_ref()), n);
            let nulls = col.logical_null_count();
            acc.nulls += nulls as u64;
            let is_key = self.order_keys.as_ref().is_some_and(|keys| keys.contains(&ci));
            if acc.float {
                float_column(col, acc, &mut self.floats, &mut self.vals, &mut pump, self.build);
                if is_key {
                    value_hashes_body(col.as_ref(), &mut self.vals, &mut pump, self.build);
                }
            } else {
                // Hot types without nulls hash and fold in one pass; the rest
                // (and order keys, whose hashes are needed twice) keep their hashes.
                let mut fold = Fold::new(&mut self.row, !seeded);
                if nulls == 0 && !is_key && fixed_and_bytes(col.as_ref(), &mut fold, &mut pump, self.build) {
                    acc.values = acc.values.wrapping_add(fold.sum);
                } else {
                    value_hashes_body(col.as_ref(), &mut self.vals, &mut pump, self.build);
                    acc.values = acc.values.wrapping_add(fold_column(&mut self.row, &self.vals, !seeded));
                }
                seeded = true;
            }
            if is_key {
                fold_column(&mut self.key, &self.vals, false);
            }
        }
        if !seeded {
            self.row.fill(ROW_SEED);
        }
        let (mut lo, mut hi) = (0u64, 0u64);
        for r in &self.row {
            let (x, y) = row_words(*r);
            lo = lo.wrapping_add(x);
            hi = hi.wrapping_add(y);
        }
        self.multiset = (self.multiset.0.wrapping_add(lo), self.multiset.1.wrapping_add(hi));
        if keyed {
            for k in &self.key {
                self.ordered = combine(self.ordered, *k);
            }
        }
    }

    /// The digest of every batch added; only sealed aggregates are kept.
    pub fn finish(self) -> ResultDigest {
        let key = self.seal_key.as_ref();
        let ordered = self
            .order_keys
            .as_ref()
            .map(|_| seal(key, "ordered", 0, &[self.ordered]));
        ResultDigest {
            schema: self.schema,
            rows: self.rows,
            multiset: seal(key, "multiset", 0, &[self.multiset.0, self.multiset.1]),
            ordered,
            columns: self
                .cols
                .into_iter()
                .enumerate()
                .map(|(i, c)| ColumnDigest {
                    nulls: c.nulls,
                    values: if c.float {
                        String::new()
                    } else {
                        seal(key, "values", i, &[c.values])
                    },
                    float: c.float.then(|| FloatStats {
                        sum: c.fsum.value(),
                        finite: c.finite,
                        nan: c.nan,
                        pos_inf: c.pos_inf,
                        neg_inf: c.neg_inf,
                        exact: seal(key, "exact", i, &[c.exact]),
                    }),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::*;
    use proptest::prelude::*;

    use super::*;

    fn batch(ids: &[i64], names: &[Option<&str>], xs: &[f64]) -> RecordBatch {
        RecordBatch::try_from_iter(vec![
            ("id", Arc::new(Int64Array::from(ids.to_vec())) as ArrayRef),
            ("name", Arc::new(StringArray::from(names.to_vec())) as ArrayRef),
            ("x", Arc::new(Float64Array::from(xs.to_vec())) as ArrayRef),
        ])
        .unwrap()
    }

    fn digest(batches: &[RecordBatch], keys: Option<Vec<usize>>) -> ResultDigest {
        digest_on(Build::detect(), batches, keys)
    }

    /// A fixed result with the common types, with and without nulls.
    fn mixed(nulls: bool) -> RecordBatch {
        let n = 1000usize;
        let opt = |i: usize| !(nulls && i % 7 == 3);
        fn arr(a: impl Array + 'static) -> ArrayRef {
            Arc::new(a)
        }
        let dec = Decimal128Array::from_iter((0..n).map(|i| opt(i).then_some(i as i128 * 100 + 7)));
        RecordBatch::try_from_iter(vec![
            (
                "i32",
                arr(Int32Array::from_iter(
                    (0..n).map(|i| opt(i).then_some(i as i32 * 3 - 500)),
                )),
            ),
            (
                "i64",
                arr(Int64Array::from_iter(
                    (0..n).map(|i| opt(i).then_some((i as i64).wrapping_mul(2654435761))),
                )),
            ),
            (
                "f64",
                arr(Float64Array::from_iter(
                    (0..n).map(|i| opt(i).then_some(i as f64 * 0.25 - 3.0)),
                )),
            ),
            ("dec", arr(dec.with_precision_and_scale(15, 2).unwrap())),
            (
                "day",
                arr(Date32Array::from_iter(
                    (0..n).map(|i| opt(i).then_some((i % 3650) as i32)),
                )),
            ),
            (
                "s",
                arr(StringArray::from_iter(
                    (0..n).map(|i| opt(i).then(|| "x".repeat(i % 40))),
                )),
            ),
            (
                "v",
                arr(StringViewArray::from_iter(
                    (0..n).map(|i| opt(i).then(|| format!("customer#{i:07}"))),
                )),
            ),
        ])
        .unwrap()
    }

    /// Digests land in run journals and snapshots (a later candidate is compared
    /// against a recorded baseline): their values must not change when the code
    /// is made faster. If they must change, bump `DIGEST_VERSION` and re-pin.
    #[test]
    fn digests_are_pinned() {
        assert_eq!(DIGEST_VERSION, 2, "re-pin the values below for the new version");
        for (batch, want) in [
            (
                mixed(false),
                "d5c8c8b6377111179b5b4d8da6f70847 0/bb5b06ed94be52c3/ 0/41f2bbd82b3d42d2/ 0//2bfcb9ef187e1551:40fdc13000000000:1000 0/3626dc3bed7c3b40/ 0/8d50d4b3d1dfb402/ 0/e5a5a7ff02cbaf25/ 0/28b1e39d5d2e1e0f/",
            ),
            (
                mixed(true),
                "7fcc9767cf38d694cb9c5370d891e607 143/d183164b5c04169a/ 143/743945e5948bbdde/ 143//04a06c8a4c6017c1:40f97ed000000000:857 143/095262dbaa2c2313/ 143/041b7c762d576653/ 143/bc7c127bc0eb6256/ 143/00673dac8110938b/",
            ),
            (
                wide(true),
                "739cee25faec9232e460cc1361ebfb07 60/82187bd63865efb7/ 60/d8c389796e3a18d3/ 60//bb407438079cb054:0:90 60//070dedd26473759b:7e85a6d6db406a95:119 60/ba159c108220a920/ 60/a6e10389fdc88aa0/ 60/e96ea5881d4c6681/ 60/7b23f646594c6e07/ 60/73aea46a5b1294cc/ 60/2ad277f00210b47d/ 60/9e998705c49fa5ab/",
            ),
        ] {
            let d = digest(&[batch], None);
            let got = format!(
                "{} {}",
                d.multiset,
                d.columns
                    .iter()
                    .map(|c| format!(
                        "{}/{}/{}",
                        c.nulls,
                        c.values,
                        c.float.as_ref().map_or(String::new(), |f| format!(
                            "{}:{:x}:{}",
                            f.exact,
                            f.sum.to_bits(),
                            f.finite
                        ))
                    ))
                    .collect::<Vec<_>>()
                    .join(" ")
            );
            assert_eq!(got, want);
        }
    }

    fn digest_on(build: Build, batches: &[RecordBatch], keys: Option<Vec<usize>>) -> ResultDigest {
        let mut b = DigestBuilder::new(&batches[0].schema(), keys);
        b.build = build;
        for x in batches {
            b.update(x);
        }
        b.finish()
    }

    /// The types the hot paths do not cover, and float edge values.
    fn wide(nulls: bool) -> RecordBatch {
        let n = 300usize;
        let opt = |i: usize| !(nulls && i % 5 == 1);
        fn arr(a: impl Array + 'static) -> ArrayRef {
            Arc::new(a)
        }
        let special = [
            0.0,
            -0.0,
            f64::NAN,
            -f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            1e300,
            -1e-308,
        ];
        let list = ListArray::from_iter_primitive::<Int32Type, _, _>(
            (0..n).map(|i| opt(i).then(|| (0..i % 4).map(|j| Some(j as i32 * i as i32)).collect::<Vec<_>>())),
        );
        let dict: DictionaryArray<Int32Type> = (0..n).map(|i| opt(i).then(|| ["a", "b", "c"][i % 3])).collect();
        RecordBatch::try_from_iter(vec![
            (
                "i8",
                arr(Int8Array::from_iter((0..n).map(|i| opt(i).then_some(i as i8)))),
            ),
            (
                "u64",
                arr(UInt64Array::from_iter(
                    (0..n).map(|i| opt(i).then_some(u64::MAX - i as u64)),
                )),
            ),
            (
                "f32",
                arr(Float32Array::from_iter(
                    (0..n).map(|i| opt(i).then_some(special[i % 8] as f32)),
                )),
            ),
            (
                "f64",
                arr(Float64Array::from_iter(
                    (0..n).map(|i| opt(i).then_some(special[i % 8])),
                )),
            ),
            (
                "ts",
                arr(
                    TimestampMicrosecondArray::from_iter((0..n).map(|i| opt(i).then_some(i as i64 * 1_000_003)))
                        .with_timezone("UTC"),
                ),
            ),
            (
                "t",
                arr(Time64NanosecondArray::from_iter(
                    (0..n).map(|i| opt(i).then_some(i as i64)),
                )),
            ),
            (
                "b",
                arr(BooleanArray::from_iter((0..n).map(|i| opt(i).then_some(i % 3 == 0)))),
            ),
            (
                "ls",
                arr(LargeStringArray::from_iter(
                    (0..n).map(|i| opt(i).then(|| "é".repeat(i % 30))),
                )),
            ),
            (
                "bin",
                arr(BinaryViewArray::from_iter(
                    (0..n).map(|i| opt(i).then(|| vec![i as u8; i % 20])),
                )),
            ),
            ("list", arr(list)),
            ("dict", arr(dict)),
        ])
        .unwrap()
    }

    /// The AVX-512 build and the portable build are the same code compiled twice;
    /// they must give the same digest bit for bit (on a CPU without AVX-512 only
    /// the portable build exists, and this says so).
    #[test]
    fn portable_and_vectorized_builds_agree() {
        let detected = Build::detect();
        if detected == Build::Portable {
            eprintln!("no AVX-512 on this CPU: only the portable build runs here");
        }
        for batch in [mixed(false), mixed(true), wide(false), wide(true)] {
            let n = batch.num_columns();
            for keys in [None, Some((0..n).collect::<Vec<_>>())] {
                let p = digest_on(Build::Portable, std::slice::from_ref(&batch), keys.clone());
                let v = digest_on(detected, std::slice::from_ref(&batch), keys);
                assert_eq!(p, v);
            }
        }
    }

    /// Sliced arrays (offsets into shared buffers and null bitmaps) digest like
    /// fresh copies of the same rows.
    #[test]
    fn sliced_batches_digest_like_fresh_copies() {
        for batch in [mixed(true), wide(true)] {
            for (start, len) in [(0, 1), (3, 200), (61, 130), (1, batch.num_rows() - 1)] {
                let sliced = batch.slice(start, len);
                let fresh = arrow::compute::concat_batches(&batch.schema(), [&sliced]).unwrap();
                assert_eq!(digest(&[sliced], None), digest(&[fresh], None), "slice {start}+{len}");
            }
        }
    }

    /// The inverse of `mix` (xorshift by 32 is its own inverse; odd multipliers
    /// have inverses mod 2^64): what an attacker holding a digest would apply.
    fn unmix(mut k: u64) -> u64 {
        let inv = |a: u64| {
            let mut x = a;
            for _ in 0..6 {
                x = x.wrapping_mul(2u64.wrapping_sub(a.wrapping_mul(x)));
            }
            x
        };
        let m = inv(0xd6e8_feb8_6659_fd93);
        k ^= k >> 32;
        k = k.wrapping_mul(m);
        k ^= k >> 32;
        k = k.wrapping_mul(m);
        k ^ (k >> 32)
    }

    /// The value hashes are bijections, so a stored per-column sum of a one-row
    /// result would give the value back; stored digests are sealed instead.
    #[test]
    fn one_row_digests_cannot_be_inverted_to_the_value() {
        let secret = 0x5ec2_e7c0_ffee_1234_u64 as i64;
        assert_eq!(
            unmix(h64(secret as u64)) ^ 0x2545_f491_4f6c_dd1d,
            secret as u64,
            "the attack works on raw hashes"
        );
        let b = RecordBatch::try_from_iter(vec![("v", Arc::new(Int64Array::from(vec![secret])) as ArrayRef)]).unwrap();
        let d = digest(&[b], Some(vec![0]));
        let stored: Vec<&str> = [d.multiset.as_str(), d.columns[0].values.as_str()]
            .into_iter()
            .chain(d.ordered.as_deref())
            .collect();
        for hex in stored {
            for chunk in hex.as_bytes().chunks(16) {
                let w = u64::from_str_radix(std::str::from_utf8(chunk).unwrap(), 16).unwrap();
                assert_ne!(unmix(w) ^ 0x2545_f491_4f6c_dd1d, secret as u64);
                assert_ne!(w, h64(secret as u64));
            }
        }
    }

    #[test]
    fn digests_are_sealed_with_the_run_key() {
        let rows = || batch(&[1, 2, 3], &[Some("a"), None, Some("c")], &[1.0, 2.0, 3.0]);
        let with = |key: Option<&DigestKey>| {
            let mut b = DigestBuilder::new(&rows().schema(), Some(vec![0])).keyed(key);
            b.update(&rows());
            b.finish()
        };
        let (a, b) = (DigestKey::derive(b"alpha"), DigestKey::derive(b"beta"));
        assert_eq!(a, DigestKey::derive(b"alpha"));
        assert_eq!(a.id(), DigestKey::derive(b"alpha").id());
        assert_ne!(a.id(), b.id());
        assert!(!format!("{a:?}").contains("alpha"));
        let (none, ka, kb) = (with(None), with(Some(&a)), with(Some(&b)));
        assert_eq!(
            compare_digests(&ka, &with(Some(&a)), FloatTolerance::default()),
            DigestComparison::Match
        );
        for (x, y) in [(&none, &ka), (&ka, &kb), (&none, &kb)] {
            assert_ne!(x.multiset, y.multiset);
            assert_ne!(x.ordered, y.ordered);
            assert_ne!(x.columns[0].values, y.columns[0].values);
            assert_ne!(
                x.columns[2].float.as_ref().unwrap().exact,
                y.columns[2].float.as_ref().unwrap().exact
            );
        }
    }

    #[test]
    fn names_the_differing_column_and_tolerates_float_noise() {
        let a = digest(
            &[batch(&[1, 2, 3], &[Some("a"), None, Some("c")], &[1.0, 2.0, 3.0])],
            None,
        );
        let same_other_order = digest(
            &[
                batch(&[3, 1], &[Some("c"), Some("a")], &[3.0, 1.0]),
                batch(&[2], &[None], &[2.0]),
            ],
            None,
        );
        assert_eq!(
            compare_digests(&a, &same_other_order, FloatTolerance::default()),
            DigestComparison::Match
        );
        let changed = digest(
            &[batch(&[1, 2, 3], &[Some("a"), None, Some("X")], &[1.0, 2.0, 3.0])],
            None,
        );
        assert_eq!(
            compare_digests(&a, &changed, FloatTolerance::default()),
            DigestComparison::Mismatch("columns:[name]".into())
        );
        let noisy = digest(
            &[batch(
                &[1, 2, 3],
                &[Some("a"), None, Some("c")],
                &[1.0, 2.0 + 1e-9, 3.0],
            )],
            None,
        );
        assert_eq!(
            compare_digests(&a, &noisy, FloatTolerance::default()),
            DigestComparison::MatchWithinTolerance(vec!["x".into()])
        );
        let off = digest(
            &[batch(&[1, 2, 3], &[Some("a"), None, Some("c")], &[1.0, 2.5, 3.0])],
            None,
        );
        assert_eq!(
            compare_digests(&a, &off, FloatTolerance::default()),
            DigestComparison::Mismatch("columns:[x]".into())
        );
        let fewer = digest(&[batch(&[1, 2], &[Some("a"), None], &[1.0, 2.0])], None);
        assert_eq!(
            compare_digests(&a, &fewer, FloatTolerance::default()),
            DigestComparison::Mismatch("row_count".into())
        );
        // Values swapped between rows: every column sum is the same, the rows are not.
        let swapped = digest(
            &[batch(&[1, 2, 3], &[Some("c"), None, Some("a")], &[1.0, 2.0, 3.0])],
            None,
        );
        assert_eq!(
            compare_digests(&a, &swapped, FloatTolerance::default()),
            DigestComparison::Mismatch("rows".into())
        );
    }

    #[test]
    fn order_is_checked_on_the_keys_only() {
        let k = Some(vec![0]);
        let a = digest(
            &[batch(&[1, 2, 2], &[Some("a"), Some("b"), Some("c")], &[0.0; 3])],
            k.clone(),
        );
        let ties_swapped = digest(
            &[batch(&[1, 2, 2], &[Some("a"), Some("c"), Some("b")], &[0.0; 3])],
            k.clone(),
        );
        assert_eq!(
            compare_digests(&a, &ties_swapped, FloatTolerance::default()),
            DigestComparison::Match
        );
        let reordered = digest(&[batch(&[2, 1, 2], &[Some("b"), Some("a"), Some("c")], &[0.0; 3])], k);
        assert_eq!(
            compare_digests(&a, &reordered, FloatTolerance::default()),
            DigestComparison::Mismatch("order".into())
        );
    }

    #[test]
    fn physical_only_differences_do_not_count() {
        let plain = RecordBatch::try_from_iter(vec![(
            "s",
            Arc::new(StringArray::from(vec!["x", "y", "x"])) as ArrayRef,
        )])
        .unwrap();
        let view = RecordBatch::try_from_iter(vec![(
            "s",
            Arc::new(StringViewArray::from(vec!["x", "y", "x"])) as ArrayRef,
        )])
        .unwrap();
        let dict: DictionaryArray<Int32Type> = vec!["x", "y", "x"].into_iter().collect();
        let dict = RecordBatch::try_from_iter(vec![("s", Arc::new(dict) as ArrayRef)]).unwrap();
        let d = |b: &RecordBatch| digest(std::slice::from_ref(b), None);
        assert_eq!(
            compare_digests(&d(&plain), &d(&view), FloatTolerance::default()),
            DigestComparison::Match
        );
        assert_eq!(
            compare_digests(&d(&plain), &d(&dict), FloatTolerance::default()),
            DigestComparison::Match
        );
        let ints =
            RecordBatch::try_from_iter(vec![("s", Arc::new(Int32Array::from(vec![1, 2, 1])) as ArrayRef)]).unwrap();
        assert_eq!(
            compare_digests(&d(&plain), &d(&ints), FloatTolerance::default()),
            DigestComparison::Mismatch("schema".into())
        );
    }

    #[test]
    fn nested_types_hash_by_value() {
        let l1 =
            ListArray::from_iter_primitive::<Int32Type, _, _>(vec![Some(vec![Some(1), Some(2)]), None, Some(vec![])]);
        let l2 = LargeListArray::from_iter_primitive::<Int32Type, _, _>(vec![
            Some(vec![Some(1), Some(2)]),
            None,
            Some(vec![]),
        ]);
        let l3 =
            ListArray::from_iter_primitive::<Int32Type, _, _>(vec![Some(vec![Some(2), Some(1)]), None, Some(vec![])]);
        let mut a = Vec::new();
        let mut b = Vec::new();
        let mut c = Vec::new();
        value_hashes(&l1, &mut a);
        value_hashes(&l2, &mut b);
        value_hashes(&l3, &mut c);
        assert_eq!(a, b);
        assert_ne!(a[0], c[0]);
        assert_eq!(a[1], NULL_HASH);
        assert_ne!(a[2], NULL_HASH);
    }

    proptest! {
        #[test]
        fn permuting_rows_never_changes_the_multiset(rows in proptest::collection::vec((any::<i64>(), "[a-z]{0,6}", -1e6f64..1e6), 1..60), seed in any::<u64>()) {
            let ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
            let names: Vec<Option<&str>> = rows.iter().map(|r| Some(r.1.as_str())).collect();
            let xs: Vec<f64> = rows.iter().map(|r| r.2).collect();
            let a = digest(&[batch(&ids, &names, &xs)], None);
            let mut idx: Vec<usize> = (0..rows.len()).collect();
            let mut s = seed;
            for i in (1..idx.len()).rev() {
                s = fmix64(s.wrapping_add(i as u64));
                idx.swap(i, (s % (i as u64 + 1)) as usize);
            }
            let pids: Vec<i64> = idx.iter().map(|&i| ids[i]).collect();
            let pnames: Vec<Option<&str>> = idx.iter().map(|&i| names[i]).collect();
            let pxs: Vec<f64> = idx.iter().map(|&i| xs[i]).collect();
            let split = idx.len() / 2;
            let b = if split > 0 {
                digest(&[batch(&pids[..split], &pnames[..split], &pxs[..split]), batch(&pids[split..], &pnames[split..], &pxs[split..])], None)
            } else {
                digest(&[batch(&pids, &pnames, &pxs)], None)
            };
            prop_assert_eq!(&a.multiset, &b.multiset);
            let cmp = compare_digests(&a, &b, FloatTolerance::default());
            prop_assert!(matches!(cmp, DigestComparison::Match | DigestComparison::MatchWithinTolerance(_)));
        }

        #[test]
        fn changing_any_single_value_is_detected(rows in proptest::collection::vec((any::<i64>(), "[a-z]{1,6}"), 1..40), pick in any::<usize>(), delta in 1i64..1000) {
            let ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
            let names: Vec<Option<&str>> = rows.iter().map(|r| Some(r.1.as_str())).collect();
            let xs = vec![1.0; rows.len()];
            let a = digest(&[batch(&ids, &names, &xs)], None);
            let i = pick % rows.len();
            let mut ids2 = ids.clone();
            ids2[i] = ids2[i].wrapping_add(delta);
            let b = digest(&[batch(&ids2, &names, &xs)], None);
            prop_assert_eq!(compare_digests(&a, &b, FloatTolerance::default()), DigestComparison::Mismatch("columns:[id]".into()));
            let changed = format!("{}!", rows[i].1);
            let mut names2 = names.clone();
            names2[i] = Some(changed.as_str());
            let c = digest(&[batch(&ids, &names2, &xs)], None);
            prop_assert_eq!(compare_digests(&a, &c, FloatTolerance::default()), DigestComparison::Mismatch("columns:[name]".into()));
        }

        #[test]
        fn both_builds_agree_on_random_batches(
            rows in proptest::collection::vec((
                proptest::option::of(any::<i64>()),
                proptest::option::of("\\PC{0,24}"),
                proptest::option::of(any::<f64>()),
                proptest::option::of(proptest::collection::vec(any::<u8>(), 0..24)),
            ), 1..300),
            mid in proptest::collection::vec("[ -~]{8,16}", 1..300),
            cut in any::<usize>(),
        ) {
            let ids: Vec<Option<i64>> = rows.iter().map(|r| r.0).collect();
            let names: Vec<Option<&str>> = rows.iter().map(|r| r.1.as_deref()).collect();
            let xs: Vec<Option<f64>> = rows.iter().map(|r| r.2).collect();
            let bytes: Vec<Option<&[u8]>> = rows.iter().map(|r| r.3.as_deref()).collect();
            // Values of 8 to 16 bytes only, so whole steps take the offsets
            // layout's short cut.
            let mid: Vec<&str> = (0..rows.len()).map(|i| mid[i % mid.len()].as_str()).collect();
            // Every byte length 0..24 (each load width, the xxh3 cut-over at 16) in
            // the offsets and the view layouts.
            let b = RecordBatch::try_from_iter(vec![
                ("id", Arc::new(Int64Array::from(ids)) as ArrayRef),
                ("name", Arc::new(StringArray::from(names.clone())) as ArrayRef),
                ("x", Arc::new(Float64Array::from(xs)) as ArrayRef),
                ("bytes", Arc::new(BinaryArray::from(bytes.clone())) as ArrayRef),
                ("large", Arc::new(LargeBinaryArray::from(bytes.clone())) as ArrayRef),
                ("view", Arc::new(BinaryViewArray::from(bytes)) as ArrayRef),
                ("sview", Arc::new(StringViewArray::from(names)) as ArrayRef),
                ("mid", Arc::new(StringArray::from(mid.clone())) as ArrayRef),
                ("lmid", Arc::new(LargeStringArray::from(mid)) as ArrayRef),
            ])
            .unwrap();
            // Also from an offset into the buffers: sliced arrays take other paths.
            let start = cut % b.num_rows();
            for batch in [b.clone(), b.slice(start, b.num_rows() - start)] {
                let keys = Some((0..batch.num_columns()).collect::<Vec<_>>());
                let p = digest_on(Build::Portable, std::slice::from_ref(&batch), keys.clone());
                let v = digest_on(Build::detect(), std::slice::from_ref(&batch), keys);
                prop_assert_eq!(&p.multiset, &v.multiset);
                prop_assert_eq!(&p.ordered, &v.ordered);
                // Float sums compared by their bits (a NaN sum equals itself).
                let columns = |d: &ResultDigest| d.columns.iter().map(|c| (c.nulls, c.values.clone(), c.float.as_ref().map(|f| (f.exact.clone(), f.sum.to_bits(), f.finite, f.nan, f.pos_inf, f.neg_inf)))).collect::<Vec<_>>();
                prop_assert_eq!(columns(&p), columns(&v));
            }
        }

        /// Null-free hot columns that are not order keys are hashed and folded in
        /// one pass (`Fold`); order keys keep their hashes (`Keep` + `fold_column`).
        /// Both must give the same multiset and column sums, in both builds.
        #[test]
        fn fused_and_kept_hashes_digest_alike(
            rows in proptest::collection::vec((
                any::<i64>(),
                any::<i32>(),
                any::<i128>(),
                "\\PC{0,24}",
                proptest::collection::vec(any::<u8>(), 0..24),
                "[ -~]{8,16}",
            ), 1..300),
            cut in any::<usize>(),
        ) {
            let b = RecordBatch::try_from_iter(vec![
                ("id", Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))) as ArrayRef),
                ("day", Arc::new(Date32Array::from_iter_values(rows.iter().map(|r| r.1))) as ArrayRef),
                ("amount", Arc::new(Decimal128Array::from_iter_values(rows.iter().map(|r| r.2))) as ArrayRef),
                ("name", Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.3.as_str()))) as ArrayRef),
                ("bytes", Arc::new(BinaryArray::from_iter_values(rows.iter().map(|r| r.4.as_slice()))) as ArrayRef),
                ("sview", Arc::new(StringViewArray::from_iter_values(rows.iter().map(|r| r.3.as_str()))) as ArrayRef),
                ("mid", Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.5.as_str()))) as ArrayRef),
            ])
            .unwrap();
            let start = cut % b.num_rows();
            for batch in [b.clone(), b.slice(start, b.num_rows() - start)] {
                let all = Some((0..batch.num_columns()).collect::<Vec<_>>());
                let kept = digest_on(Build::Portable, std::slice::from_ref(&batch), all);
                for build in [Build::Portable, Build::detect()] {
                    let fused = digest_on(build, std::slice::from_ref(&batch), None);
                    prop_assert_eq!(&fused.multiset, &kept.multiset);
                    prop_assert_eq!(&fused.columns, &kept.columns);
                }
            }
        }

        /// The pass for batches of finite floats gives the same lanes, bit for bit,
        /// as the full pass it stands in for.
        #[test]
        fn finite_float_pass_matches_the_full_pass(xs in proptest::collection::vec(-1e300f64..1e300, 0..100), zeros in any::<u8>()) {
            let mut xs = xs;
            // Signed zeros are the one value the finite pass normalizes itself.
            for (i, x) in xs.iter_mut().enumerate() {
                if zeros & (1 << (i % 8)) != 0 && i % 3 == 0 {
                    *x = if i % 2 == 0 { 0.0 } else { -0.0 };
                }
            }
            let bits = |l: &FloatLanes| (l.sum.map(f64::to_bits), l.comp.map(f64::to_bits), l.exact, l.nan, l.pos_inf, l.neg_inf);
            let fast = float_lanes_finite(&xs, &mut Pump::default()).map(|l| bits(&l));
            prop_assert_eq!(fast, Some(bits(&float_lanes_full(&xs))));
            let mut with_inf = xs.clone();
            with_inf.push(f64::INFINITY);
            prop_assert!(float_lanes_finite(&with_inf, &mut Pump::default()).is_none());
            prop_assert_eq!(float_lanes(&with_inf, &mut Pump::default()).pos_inf, 1);
        }

        #[test]
        fn float_noise_within_margin_is_tolerated_and_beyond_is_not(xs in proptest::collection::vec(1.0f64..1e6, 1..30), i in any::<usize>()) {
            let n = xs.len();
            let ids: Vec<i64> = (0..n as i64).collect();
            let names = vec![Some("a"); n];
            let a = digest(&[batch(&ids, &names, &xs)], None);
            let k = i % n;
            let total: f64 = xs.iter().sum();
            let mut small = xs.clone();
            small[k] += total * 1e-7;
            let b = digest(&[batch(&ids, &names, &small)], None);
            prop_assert_eq!(compare_digests(&a, &b, FloatTolerance::default()), DigestComparison::MatchWithinTolerance(vec!["x".into()]));
            let mut big = xs.clone();
            big[k] += total * 1e-2;
            let c = digest(&[batch(&ids, &names, &big)], None);
            prop_assert_eq!(compare_digests(&a, &c, FloatTolerance::default()), DigestComparison::Mismatch("columns:[x]".into()));
        }
    }
}
