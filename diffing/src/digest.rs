//! Result digests: desensitized fingerprints of a query result, computed from Arrow
//! record batches as they stream, in memory proportional to the number of columns.
//!
//! What a digest holds (and nothing else: no value can be read back from it):
//! - the schema as logical types (`Utf8` and `Utf8View` are both `string`, a
//!   dictionary is its value type), and the row count;
//! - an order-insensitive multiset digest of the rows: the wrapping sum of a strong
//!   hash per row, so equal results in any order give equal digests without a sort.
//!   Float columns are left out of it: they are compared with a tolerance instead;
//! - when the statement fixes the order, an order-sensitive digest over the ORDER BY
//!   key columns only (rows tied on the keys may legally swap);
//! - per column: null count and the wrapping sum of value hashes (so a mismatch
//!   names the columns); for floats also the finite sum (compensated), NaN/+inf/-inf
//!   counts and an exact bit-multiset digest.
//!
//! Values are hashed by their logical value, so physical-only differences
//! (dictionary vs plain, `Utf8` vs `Utf8View`, `List` vs `LargeList`) do not count.
//! Hashes are xxh3 for bytes and a 64-bit finalizer for fixed-width values; floats
//! nested inside lists, structs or maps are hashed exactly.

use std::fmt::Write as _;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::*;
use serde::{Deserialize, Serialize};

const NULL_HASH: u64 = 0x9e37_79b9_7f4a_7c15;

/// The 64-bit finalizer of MurmurHash3: a fast, well-mixing bijection.
#[inline]
pub fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^ (k >> 33)
}

/// The folded 64x64→128 multiply of wyhash/ahash: one `mul`, full avalanche of
/// the low input bits into both halves.
#[inline]
fn fold_mul(a: u64, b: u64) -> u64 {
    let full = u128::from(a).wrapping_mul(u128::from(b));
    (full as u64) ^ ((full >> 64) as u64)
}

#[inline]
fn h64(v: u64) -> u64 {
    fold_mul(v ^ 0x2545_f491_4f6c_dd1d, 0x5851_f42d_4c95_7f2d)
}

#[inline]
fn h128(v: i128) -> u64 {
    fold_mul(
        (v as u64) ^ 0x2545_f491_4f6c_dd1d,
        ((v >> 64) as u64) ^ 0x5851_f42d_4c95_7f2d,
    )
}

/// Bytes: short values (most keys, codes, names) inline with two folded
/// multiplies over overlapping loads that cover every byte; longer ones with xxh3.
#[inline]
fn hbytes(b: &[u8]) -> u64 {
    let n = b.len();
    if n > 16 {
        return xxhash_rust::xxh3::xxh3_64(b);
    }
    let (a, c) = if n >= 8 {
        (le64(&b[..8]), le64(&b[n - 8..]))
    } else if n >= 4 {
        (le32(&b[..4]), le32(&b[n - 4..]))
    } else if n > 0 {
        (
            u64::from(b[0]) | (u64::from(b[n / 2]) << 8) | (u64::from(b[n - 1]) << 16),
            0,
        )
    } else {
        (0, 0)
    };
    fold_mul(
        fold_mul(a ^ 0xa076_1d64_78bd_642f, c ^ 0xe703_7ed1_a0b4_28db) ^ n as u64,
        0x8ebc_6af0_9c88_c6e3,
    )
}

#[inline]
fn le64(b: &[u8]) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(b);
    u64::from_le_bytes(x)
}

#[inline]
fn le32(b: &[u8]) -> u64 {
    let mut x = [0u8; 4];
    x.copy_from_slice(b);
    u64::from(u32::from_le_bytes(x))
}

#[inline]
fn hf64(v: f64) -> u64 {
    // -0.0 equals 0.0; all NaNs are one value.
    let v = if v == 0.0 { 0.0 } else { v };
    if v.is_nan() {
        h64(0x7ff8_0000_0000_0000)
    } else {
        h64(v.to_bits())
    }
}

/// Combines a row's running hash with the next column's value hash (positional).
#[inline]
fn combine(acc: u64, v: u64) -> u64 {
    // Value hashes are already mixed; one multiply keeps the combination
    // positional (rotate + multiply do not commute) and the row hash is
    // finalized with `fmix64` before it is summed.
    (acc.rotate_left(26) ^ v).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// A column as it appears in a digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnSchema {
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
    pub finite: u64,
    pub nan: u64,
    pub pos_inf: u64,
    pub neg_inf: u64,
    /// Exact bit-multiset digest of the values (hex): equal means equal values.
    pub exact: String,
}

/// Per-column digest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnDigest {
    pub nulls: u64,
    /// Wrapping sum of value hashes (hex). Empty for float columns.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub values: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub float: Option<FloatStats>,
}

/// The digest of one result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultDigest {
    pub schema: Vec<ColumnSchema>,
    pub rows: u64,
    /// Order-insensitive digest of the rows (non-float columns), hex.
    pub multiset: String,
    /// Order-sensitive digest over the ORDER BY key columns, hex, when the order is fixed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ordered: Option<String>,
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

/// Value hashes of an array, one per row (nulls hash to a fixed value).
pub fn value_hashes(array: &dyn Array, out: &mut Vec<u64>) {
    out.clear();
    // Fast paths for the common types: one pass, no zero-fill.
    macro_rules! fast {
        ($t:ty, $f:expr) => {{
            out.extend(array.as_primitive::<$t>().values().iter().map(|v| $f(*v)));
        }};
    }
    let done = match array.data_type() {
        DataType::Int32 => {
            fast!(Int32Type, |v: i32| h64(v as i64 as u64));
            true
        }
        DataType::Int64 => {
            fast!(Int64Type, |v: i64| h64(v as u64));
            true
        }
        DataType::Float64 => {
            fast!(Float64Type, hf64);
            true
        }
        DataType::Decimal128(..) => {
            fast!(Decimal128Type, h128);
            true
        }
        DataType::Date32 => {
            fast!(Date32Type, |v: i32| h64(v as i64 as u64));
            true
        }
        DataType::Utf8 => {
            let a = array.as_string::<i32>();
            let data = a.value_data();
            out.extend(
                a.value_offsets()
                    .windows(2)
                    .map(|w| hbytes(data.get(w[0] as usize..w[1] as usize).unwrap_or(&[]))),
            );
            true
        }
        DataType::Utf8View => {
            let a = array.as_string_view();
            out.extend((0..a.len()).map(|i| hbytes(a.value(i).as_bytes())));
            true
        }
        _ => false,
    };
    if done {
        if let Some(nulls) = array.logical_nulls() {
            for (i, o) in out.iter_mut().enumerate() {
                if nulls.is_null(i) {
                    *o = NULL_HASH;
                }
            }
        }
        return;
    }
    out.resize(array.len(), 0);
    macro_rules! prim {
        ($t:ty, $f:expr) => {{
            let a = array.as_primitive::<$t>();
            for (o, v) in out.iter_mut().zip(a.values().iter()) {
                *o = $f(*v);
            }
        }};
    }
    match array.data_type() {
        DataType::Null => out.fill(NULL_HASH),
        DataType::Boolean => {
            let a = array.as_boolean();
            for (i, o) in out.iter_mut().enumerate() {
                *o = h64(u64::from(a.value(i)) + 1);
            }
        }
        DataType::Int8 => prim!(Int8Type, |v: i8| h64(v as i64 as u64)),
        DataType::Int16 => prim!(Int16Type, |v: i16| h64(v as i64 as u64)),
        DataType::Int32 => prim!(Int32Type, |v: i32| h64(v as i64 as u64)),
        DataType::Int64 => prim!(Int64Type, |v: i64| h64(v as u64)),
        DataType::UInt8 => prim!(UInt8Type, |v: u8| h64(u64::from(v))),
        DataType::UInt16 => prim!(UInt16Type, |v: u16| h64(u64::from(v))),
        DataType::UInt32 => prim!(UInt32Type, |v: u32| h64(u64::from(v))),
        DataType::UInt64 => prim!(UInt64Type, h64),
        DataType::Float16 => prim!(Float16Type, |v: <Float16Type as ArrowPrimitiveType>::Native| hf64(
            v.to_f64()
        )),
        DataType::Float32 => prim!(Float32Type, |v: f32| hf64(f64::from(v))),
        DataType::Float64 => prim!(Float64Type, hf64),
        DataType::Decimal32(..) => prim!(Decimal32Type, |v: i32| h128(i128::from(v))),
        DataType::Decimal64(..) => prim!(Decimal64Type, |v: i64| h128(i128::from(v))),
        DataType::Decimal128(..) => prim!(Decimal128Type, h128),
        DataType::Decimal256(..) => prim!(Decimal256Type, |v: i256| hbytes(&v.to_le_bytes())),
        DataType::Date32 => prim!(Date32Type, |v: i32| h64(v as i64 as u64)),
        DataType::Date64 => prim!(Date64Type, |v: i64| h64(v as u64)),
        DataType::Time32(TimeUnit::Second) => {
            prim!(Time32SecondType, |v: i32| h64(v as i64 as u64))
        }
        DataType::Time32(_) => prim!(Time32MillisecondType, |v: i32| h64(v as i64 as u64)),
        DataType::Time64(TimeUnit::Microsecond) => {
            prim!(Time64MicrosecondType, |v: i64| h64(v as u64))
        }
        DataType::Time64(_) => prim!(Time64NanosecondType, |v: i64| h64(v as u64)),
        DataType::Timestamp(TimeUnit::Second, _) => {
            prim!(TimestampSecondType, |v: i64| h64(v as u64))
        }
        DataType::Timestamp(TimeUnit::Millisecond, _) => {
            prim!(TimestampMillisecondType, |v: i64| h64(v as u64))
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            prim!(TimestampMicrosecondType, |v: i64| h64(v as u64))
        }
        DataType::Timestamp(TimeUnit::Nanosecond, _) => {
            prim!(TimestampNanosecondType, |v: i64| h64(v as u64))
        }
        DataType::Duration(TimeUnit::Second) => prim!(DurationSecondType, |v: i64| h64(v as u64)),
        DataType::Duration(TimeUnit::Millisecond) => {
            prim!(DurationMillisecondType, |v: i64| h64(v as u64))
        }
        DataType::Duration(TimeUnit::Microsecond) => {
            prim!(DurationMicrosecondType, |v: i64| h64(v as u64))
        }
        DataType::Duration(TimeUnit::Nanosecond) => {
            prim!(DurationNanosecondType, |v: i64| h64(v as u64))
        }
        DataType::Interval(IntervalUnit::YearMonth) => {
            prim!(IntervalYearMonthType, |v: i32| h64(v as i64 as u64))
        }
        DataType::Interval(IntervalUnit::DayTime) => {
            prim!(IntervalDayTimeType, |v: IntervalDayTime| h64(
                ((v.days as u64) << 32) ^ (v.milliseconds as u32 as u64)
            ))
        }
        DataType::Interval(IntervalUnit::MonthDayNano) => {
            prim!(IntervalMonthDayNanoType, |v: IntervalMonthDayNano| {
                fmix64(h64(((v.months as u64) << 32) ^ (v.days as u32 as u64)) ^ h64(v.nanoseconds as u64))
            })
        }
        DataType::Utf8 => {
            let a = array.as_string::<i32>();
            offsets_like(out, a.value_offsets(), a.value_data())
        }
        DataType::LargeUtf8 => {
            let a = array.as_string::<i64>();
            offsets_like(out, a.value_offsets(), a.value_data())
        }
        DataType::Utf8View => bytes_like(out, array.as_string_view().iter().map(|s| s.map(str::as_bytes))),
        DataType::Binary => {
            let a = array.as_binary::<i32>();
            offsets_like(out, a.value_offsets(), a.value_data())
        }
        DataType::LargeBinary => {
            let a = array.as_binary::<i64>();
            offsets_like(out, a.value_offsets(), a.value_data())
        }
        DataType::BinaryView => bytes_like(out, array.as_binary_view().iter()),
        DataType::FixedSizeBinary(_) => bytes_like(out, array.as_fixed_size_binary().iter()),
        DataType::Dictionary(..) => {
            let d = array.as_any_dictionary();
            let mut vals = Vec::new();
            value_hashes(d.values().as_ref(), &mut vals);
            for (o, k) in out.iter_mut().zip(d.normalized_keys()) {
                *o = vals.get(k).copied().unwrap_or(NULL_HASH);
            }
        }
        DataType::List(_) => {
            let a = array.as_list::<i32>();
            nested_seq(
                out,
                a.values().as_ref(),
                a.value_offsets().windows(2).map(|w| (w[0] as usize, w[1] as usize)),
            );
        }
        DataType::LargeList(_) => {
            let a = array.as_list::<i64>();
            nested_seq(
                out,
                a.values().as_ref(),
                a.value_offsets().windows(2).map(|w| (w[0] as usize, w[1] as usize)),
            );
        }
        DataType::FixedSizeList(_, n) => {
            let a = array.as_fixed_size_list();
            let n = *n as usize;
            let start = a.offset() * n;
            nested_seq(
                out,
                a.values().as_ref(),
                (0..a.len()).map(|i| (start + i * n, start + (i + 1) * n)),
            );
        }
        DataType::Struct(_) => {
            let a = array.as_struct();
            out.fill(0x51ab_1e00);
            let mut col = Vec::new();
            for c in a.columns() {
                value_hashes(c.as_ref(), &mut col);
                for (o, v) in out.iter_mut().zip(&col) {
                    *o = combine(*o, *v);
                }
            }
        }
        DataType::Map(..) => {
            let a = array.as_map();
            let mut k = Vec::new();
            let mut v = Vec::new();
            value_hashes(a.keys().as_ref(), &mut k);
            value_hashes(a.values().as_ref(), &mut v);
            for (i, o) in out.iter_mut().enumerate() {
                let (s, e) = (a.value_offsets()[i] as usize, a.value_offsets()[i + 1] as usize);
                // Entries order-insensitively: a sum of entry hashes.
                let mut acc = 0x3a9_u64;
                for j in s..e {
                    acc = acc.wrapping_add(combine(k[j], v[j]));
                }
                *o = h64(acc);
            }
        }
        _ => {
            // Rare types (unions, run-end encoded, views of lists): hash the display
            // form, which arrow defines for every type.
            let opts = arrow::util::display::FormatOptions::default();
            match arrow::util::display::ArrayFormatter::try_new(array, &opts) {
                Ok(f) => {
                    let mut s = String::new();
                    for (i, o) in out.iter_mut().enumerate() {
                        s.clear();
                        let _ = write!(s, "{}", f.value(i));
                        *o = hbytes(s.as_bytes());
                    }
                }
                Err(_) => out.fill(NULL_HASH),
            }
        }
    }
    if let Some(nulls) = array.logical_nulls() {
        for (i, o) in out.iter_mut().enumerate() {
            if nulls.is_null(i) {
                *o = NULL_HASH;
            }
        }
    }
}

/// Hashes each value of an offsets + data layout (nulls are fixed up by the caller).
fn offsets_like<O: Copy + TryInto<usize>>(out: &mut [u64], offsets: &[O], data: &[u8]) {
    let at = |o: O| o.try_into().unwrap_or(0);
    for (o, w) in out.iter_mut().zip(offsets.windows(2)) {
        *o = hbytes(data.get(at(w[0])..at(w[1])).unwrap_or(&[]));
    }
}

fn bytes_like<'a>(out: &mut [u64], it: impl Iterator<Item = Option<&'a [u8]>>) {
    for (o, v) in out.iter_mut().zip(it) {
        *o = v.map_or(NULL_HASH, hbytes);
    }
}

fn nested_seq(out: &mut [u64], child: &dyn Array, ranges: impl Iterator<Item = (usize, usize)>) {
    let mut ch = Vec::new();
    value_hashes(child, &mut ch);
    for (o, (s, e)) in out.iter_mut().zip(ranges) {
        let mut acc = h64((e - s) as u64);
        for v in &ch[s..e] {
            acc = combine(acc, *v);
        }
        *o = acc;
    }
}

/// Neumaier compensated sum.
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
    values: u128,
    float: bool,
    fsum: Neumaier,
    finite: u64,
    nan: u64,
    pos_inf: u64,
    neg_inf: u64,
    exact: u128,
}

/// Builds a [`ResultDigest`] batch by batch.
pub struct DigestBuilder {
    schema: Vec<ColumnSchema>,
    cols: Vec<ColAcc>,
    order_keys: Option<Vec<usize>>,
    rows: u64,
    multiset: u128,
    ordered: u64,
    row: Vec<u64>,
    key: Vec<u64>,
    vals: Vec<u64>,
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
            multiset: 0,
            ordered: 0x0de7_e5ed,
            row: Vec::new(),
            key: Vec::new(),
            vals: Vec::new(),
        }
    }

    /// Adds one batch. Batches whose column count differs from the schema's are
    /// digested as far as their columns go (engines do not produce them).
    pub fn update(&mut self, batch: &RecordBatch) {
        let n = batch.num_rows();
        self.rows += n as u64;
        self.row.clear();
        self.row.resize(n, 0x005e_ed0f_f11e);
        let keyed = self.order_keys.is_some();
        if keyed {
            self.key.clear();
            self.key.resize(n, 0x0de7);
        }
        for (ci, (col, acc)) in batch.columns().iter().zip(self.cols.iter_mut()).enumerate() {
            acc.nulls += col.logical_null_count() as u64;
            value_hashes(col.as_ref(), &mut self.vals);
            if acc.float {
                float_stats(col, acc);
                for v in &self.vals {
                    acc.exact = acc.exact.wrapping_add(u128::from(*v));
                }
            } else {
                let mut s = 0u128;
                for (r, v) in self.row.iter_mut().zip(&self.vals) {
                    *r = combine(*r, *v);
                    s = s.wrapping_add(u128::from(*v));
                }
                acc.values = acc.values.wrapping_add(s);
            }
            if self.order_keys.as_ref().is_some_and(|keys| keys.contains(&ci)) {
                for (k, v) in self.key.iter_mut().zip(&self.vals) {
                    *k = combine(*k, *v);
                }
            }
        }
        for r in &self.row {
            let lo = fold_mul(*r ^ 0xe703_7ed1_a0b4_28db, 0x8ebc_6af0_9c88_c6e3);
            let hi = (lo ^ 0x5899_65cc_7537_4cc3)
                .wrapping_mul(0x1d8e_4e27_c47d_124f)
                .rotate_left(29);
            self.multiset = self.multiset.wrapping_add((u128::from(hi) << 64) | u128::from(lo));
        }
        if keyed {
            for k in &self.key {
                self.ordered = combine(self.ordered, *k);
            }
        }
    }

    pub fn finish(self) -> ResultDigest {
        let ordered = self.order_keys.as_ref().map(|_| format!("{:016x}", self.ordered));
        ResultDigest {
            schema: self.schema,
            rows: self.rows,
            multiset: format!("{:032x}", self.multiset),
            ordered,
            columns: self
                .cols
                .into_iter()
                .map(|c| ColumnDigest {
                    nulls: c.nulls,
                    values: if c.float {
                        String::new()
                    } else {
                        format!("{:032x}", c.values)
                    },
                    float: c.float.then(|| FloatStats {
                        sum: c.fsum.value(),
                        finite: c.finite,
                        nan: c.nan,
                        pos_inf: c.pos_inf,
                        neg_inf: c.neg_inf,
                        exact: format!("{:032x}", c.exact),
                    }),
                })
                .collect(),
        }
    }
}

fn float_stats(col: &ArrayRef, acc: &mut ColAcc) {
    let values: ArrayRef = match col.data_type() {
        DataType::Float64 => col.clone(),
        _ => match arrow::compute::cast(col, &DataType::Float64) {
            Ok(a) => a,
            Err(_) => return,
        },
    };
    let a = values.as_primitive::<Float64Type>();
    // Four independent compensated sums: one would serialize every addition on
    // the previous one's latency.
    let mut lanes = [Neumaier::default(); 4];
    let mut finite = [0u64; 4];
    let mut add = |k: usize, v: f64| {
        if v.is_finite() {
            finite[k] += 1;
            lanes[k].add(v);
        } else if v.is_nan() {
            acc.nan += 1;
        } else if v > 0.0 {
            acc.pos_inf += 1;
        } else {
            acc.neg_inf += 1;
        }
    };
    match a.logical_nulls() {
        None => {
            for (i, v) in a.values().iter().enumerate() {
                add(i & 3, *v);
            }
        }
        Some(_) => {
            for (i, v) in a.iter().enumerate() {
                if let Some(v) = v {
                    add(i & 3, v);
                }
            }
        }
    }
    for (lane, n) in lanes.iter().zip(finite) {
        acc.fsum.add(lane.sum);
        acc.fsum.add(lane.c);
        acc.finite += n;
    }
}

/// Tolerances for float columns (defaults as Presto Verifier).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FloatTolerance {
    pub relative: f64,
    pub absolute: f64,
}

impl Default for FloatTolerance {
    fn default() -> Self {
        FloatTolerance {
            relative: 1e-4,
            absolute: 1e-12,
        }
    }
}

/// How two digests compare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DigestComparison {
    Match,
    /// Equal but for float columns whose sums differ within the tolerance.
    MatchWithinTolerance(Vec<String>),
    /// Which part differs: `schema`, `row_count`, `columns:[a,b]`, `rows` (the rows
    /// differ but no single column does), or `order`.
    Mismatch(String),
}

/// Compares two digests (baseline, candidate).
pub fn compare_digests(b: &ResultDigest, c: &ResultDigest, tol: FloatTolerance) -> DigestComparison {
    if b.schema.len() != c.schema.len()
        || b.schema
            .iter()
            .zip(&c.schema)
            .any(|(x, y)| x.logical_type != y.logical_type || !x.name.eq_ignore_ascii_case(&y.name))
    {
        return DigestComparison::Mismatch("schema".into());
    }
    if b.rows != c.rows {
        return DigestComparison::Mismatch("row_count".into());
    }
    let mut differing = Vec::new();
    let mut tolerated = Vec::new();
    for ((x, y), s) in b.columns.iter().zip(&c.columns).zip(&b.schema) {
        let same = x.nulls == y.nulls
            && x.values == y.values
            && match (&x.float, &y.float) {
                (Some(fx), Some(fy)) => {
                    if fx.exact == fy.exact {
                        true
                    } else if floats_close(fx, fy, tol) {
                        tolerated.push(s.name.clone());
                        true
                    } else {
                        false
                    }
                }
                (None, None) => true,
                _ => false,
            };
        if !same {
            differing.push(s.name.clone());
        }
    }
    if !differing.is_empty() {
        return DigestComparison::Mismatch(format!("columns:[{}]", differing.join(",")));
    }
    if b.multiset != c.multiset {
        return DigestComparison::Mismatch("rows".into());
    }
    if let (Some(x), Some(y)) = (&b.ordered, &c.ordered)
        && x != y
    {
        return DigestComparison::Mismatch("order".into());
    }
    if tolerated.is_empty() {
        DigestComparison::Match
    } else {
        DigestComparison::MatchWithinTolerance(tolerated)
    }
}

fn floats_close(a: &FloatStats, b: &FloatStats, tol: FloatTolerance) -> bool {
    if (a.finite, a.nan, a.pos_inf, a.neg_inf) != (b.finite, b.nan, b.pos_inf, b.neg_inf) {
        return false;
    }
    let n = a.finite.max(1) as f64;
    let (x, y) = (a.sum, b.sum);
    if (x / n).abs() < tol.absolute && (y / n).abs() < tol.absolute {
        return true;
    }
    let denom = (x.abs() + y.abs()) / 2.0;
    denom == 0.0 || (x - y).abs() / denom < tol.relative
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
        let mut b = DigestBuilder::new(&batches[0].schema(), keys);
        for x in batches {
            b.update(x);
        }
        b.finish()
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

    /// Digests land in run journals (and `--resume` continues a journal): their
    /// values must not change when the code is made faster. Pinned from the
    /// implementation that first wrote runs.
    #[test]
    fn digests_are_pinned() {
        for (nulls, want) in [
            (
                false,
                "d1a61df1baa13f709dd076ab0f71720a 0/00000000000001eef1af95febf8a56c2/ 0/00000000000001da48ee5d47525209ca/ 0//00000000000001f5eded379d84080c1a:40fdc13000000000:1000 0/00000000000001f058e1d6e48beb0843/ 0/00000000000001f4d9aa18cec99dc40d/ 0/00000000000001fbb312044aa573fee0/ 0/00000000000001ed265f909b4426d778/",
            ),
            (
                true,
                "883bded589c062767594756af2b5738a 143/00000000000001fa664ee16aa182c0b6/ 143/00000000000001f2b59e32c7378bf78c/ 143//0000000000000206d770efb1d130d03b:40f97ed000000000:857 143/00000000000002039308e4d8c0f81d46/ 143/00000000000002028ee833e8b06920cc/ 143/000000000000020af7e9d29b20342bc9/ 143/000000000000020045082e5b965f2187/",
            ),
        ] {
            let d = digest(&[mixed(nulls)], None);
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
