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

use std::fmt::Write as _;

use arrow::array::{Array, ArrayRef, AsArray, OffsetSizeTrait, RecordBatch};
use arrow::buffer::NullBuffer;
use arrow::datatypes::*;
use serde::{Deserialize, Serialize};

/// The version of the digest functions. Bump it whenever any digest value changes
/// (`digests_are_pinned` fails when they do). Version 1 (until 2026-11) used
/// folded 64x64→128 multiplies per value and 128-bit sums.
pub const DIGEST_VERSION: u32 = 2;

const NULL_HASH: u64 = 0x9e37_79b9_7f4a_7c15;
const ROW_SEED: u64 = 0x005e_ed0f_f11e;

/// The 64-bit finalizer of MurmurHash3: a fast, well-mixing bijection.
#[inline]
pub fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^ (k >> 33)
}

/// A xorshift-multiply bijection (two rounds) with full avalanche; made of 64-bit
/// shifts, xors and low multiplies only, so it vectorizes (AVX-512 `vpmullq`).
#[inline(always)]
fn mix(mut k: u64) -> u64 {
    k ^= k >> 32;
    k = k.wrapping_mul(0xd6e8_feb8_6659_fd93);
    k ^= k >> 32;
    k = k.wrapping_mul(0xd6e8_feb8_6659_fd93);
    k ^ (k >> 32)
}

/// The folded 64x64→128 multiply of wyhash: one scalar `mul` mixing 128 input bits.
#[inline(always)]
fn fold_mul(a: u64, b: u64) -> u64 {
    let full = u128::from(a).wrapping_mul(u128::from(b));
    (full as u64) ^ ((full >> 64) as u64)
}

#[inline(always)]
fn h64(v: u64) -> u64 {
    mix(v ^ 0x2545_f491_4f6c_dd1d)
}

/// 128-bit values (decimals): the high word goes through an odd multiply (a
/// bijection) before it meets the low word, so sign-extended small values of
/// opposite signs cannot cancel out.
#[inline(always)]
fn h128(v: i128) -> u64 {
    h128_words(v as u64, (v >> 64) as u64)
}

#[inline(always)]
fn h128_words(lo: u64, hi: u64) -> u64 {
    mix(lo ^ hi.wrapping_mul(0x9fb2_1c65_1e98_df25) ^ 0x5851_f42d_4c95_7f2d)
}

/// Bytes: short values (most keys, codes, names) inline with one folded multiply
/// over overlapping loads that cover every byte; longer ones with xxh3.
#[inline(always)]
fn hbytes(b: &[u8]) -> u64 {
    if b.len() > 16 {
        return xxhash_rust::xxh3::xxh3_64(b);
    }
    let (a, c) = short_words(b);
    fold_mul(a ^ SHORT_A, (c ^ SHORT_C).wrapping_add(b.len() as u64))
}

const SHORT_A: u64 = 0xa076_1d64_78bd_642f;
const SHORT_C: u64 = 0xe703_7ed1_a0b4_28db;

/// The two words `hbytes` folds for a value of at most 16 bytes: overlapping
/// loads from both ends that together cover every byte.
#[inline(always)]
fn short_words(b: &[u8]) -> (u64, u64) {
    let n = b.len();
    if n >= 8 {
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
    }
}

#[inline(always)]
fn le64(b: &[u8]) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(b);
    u64::from_le_bytes(x)
}

#[inline(always)]
fn le32(b: &[u8]) -> u64 {
    let mut x = [0u8; 4];
    x.copy_from_slice(b);
    u64::from(u32::from_le_bytes(x))
}

/// The bits a float is hashed by: -0.0 is 0.0 and all NaNs are one value
/// (branch-free, so float loops vectorize).
#[inline(always)]
fn float_bits(v: f64) -> u64 {
    let bits = if v == 0.0 { 0 } else { v.to_bits() };
    if v.is_nan() { 0x7ff8_0000_0000_0000 } else { bits }
}

#[inline(always)]
fn hf64(v: f64) -> u64 {
    h64(float_bits(v))
}

/// Combines a row's running hash with the next column's value hash (positional).
#[inline(always)]
fn combine(acc: u64, v: u64) -> u64 {
    // Value hashes are already mixed; one multiply keeps the combination
    // positional (rotate + multiply do not commute) and the row hash is
    // finalized with `mix` before it is summed.
    (acc.rotate_left(26) ^ v).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// A row hash's contribution to the multiset: two words, summed separately
/// (128 bits); the second is a nonlinear function of the first.
#[inline(always)]
fn row_words(r: u64) -> (u64, u64) {
    let lo = mix(r ^ 0xe703_7ed1_a0b4_28db);
    (lo, (lo ^ (lo >> 29)).wrapping_mul(0x1d8e_4e27_c47d_124f))
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

/// Which build of the digest loops runs: the portable one, or the same code
/// compiled for AVX-512 (chosen at run time; both compute the same digest).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
enum Build {
    Portable,
    Avx512,
}

impl Build {
    fn detect() -> Build {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512dq")
            && std::arch::is_x86_feature_detected!("avx512vl")
            && std::arch::is_x86_feature_detected!("avx512bw")
        {
            return Build::Avx512;
        }
        Build::Portable
    }
}

/// Value hashes of an array, one per row (nulls hash to a fixed value).
pub fn value_hashes(array: &dyn Array, out: &mut Vec<u64>) {
    match Build::detect() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Build::Avx512` is only chosen when the CPU has these features.
        Build::Avx512 => unsafe { value_hashes_avx512(array, out) },
        _ => value_hashes_body(array, out, &mut Pump::default(), Build::Portable),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq,avx512vl,avx512bw")]
fn value_hashes_avx512(array: &dyn Array, out: &mut Vec<u64>) {
    value_hashes_body(array, out, &mut Pump::default(), Build::Avx512)
}

/// `build` names the build this body is compiled into: the AVX-512 one also
/// calls the explicitly vectorized string hashing.
#[inline(always)]
fn value_hashes_body(array: &dyn Array, out: &mut Vec<u64>, pump: &mut Pump, build: Build) {
    // Every path writes every slot, so the buffer is only resized, not cleared.
    out.resize(array.len(), 0);
    if fixed_and_bytes(array, &mut Keep(out), pump, build) {
        if let Some(nulls) = array.logical_nulls() {
            for_each_null(&nulls, |i| out[i] = NULL_HASH);
        }
    } else {
        value_hashes_general(array, out);
    }
}

/// Calls `f` with the index of every null slot (word by word over the bitmap).
#[inline(always)]
fn for_each_null(nulls: &NullBuffer, mut f: impl FnMut(usize)) {
    if nulls.null_count() == 0 {
        return;
    }
    let len = nulls.len();
    for (w, word) in nulls.inner().bit_chunks().iter_padded().enumerate() {
        let mut missing = !word;
        while missing != 0 {
            let i = w * 64 + missing.trailing_zeros() as usize;
            if i >= len {
                break;
            }
            f(i);
            missing &= missing - 1;
        }
    }
}

/// Where the hot hash loops put a column's value hashes, one chunk of at most
/// `STEP` rows at a time.
trait Sink {
    /// The slots for the hashes of rows `start..start + len`.
    fn chunk(&mut self, start: usize, len: usize) -> &mut [u64];
    /// The slots `chunk` gave for rows `start..start + len` are filled.
    fn done(&mut self, start: usize, len: usize);
}

/// Keeps a column's value hashes, one per row.
struct Keep<'a>(&'a mut [u64]);

impl Sink for Keep<'_> {
    #[inline(always)]
    fn chunk(&mut self, start: usize, len: usize) -> &mut [u64] {
        &mut self.0[start..start + len]
    }

    #[inline(always)]
    fn done(&mut self, _: usize, _: usize) {}
}

/// Folds each chunk of a column's value hashes into the row hashes and their sum
/// while the chunk is still in L1: the column's hashes are never written out and
/// read back (what `Keep` + `fold_column` would do, with the same results).
struct Fold<'a> {
    rows: &'a mut [u64],
    first: bool,
    sum: u64,
    buf: [u64; STEP],
}

impl<'a> Fold<'a> {
    fn new(rows: &'a mut [u64], first: bool) -> Self {
        Fold {
            rows,
            first,
            sum: 0,
            buf: [0; STEP],
        }
    }
}

impl Sink for Fold<'_> {
    #[inline(always)]
    fn chunk(&mut self, _: usize, len: usize) -> &mut [u64] {
        &mut self.buf[..len]
    }

    #[inline(always)]
    fn done(&mut self, start: usize, len: usize) {
        let rows = &mut self.rows[start..start + len];
        self.sum = self.sum.wrapping_add(fold_column(rows, &self.buf[..len], self.first));
    }
}

/// The hot types: fixed-width values and byte strings, one vectorizable pass
/// each (nulls are fixed up by the caller). `false` for every other type, before
/// touching the sink.
#[inline(always)]
fn fixed_and_bytes(array: &dyn Array, sink: &mut impl Sink, pump: &mut Pump, build: Build) -> bool {
    // Plain zipped loops over each chunk (no iterator adapters that might not be
    // inlined into the vectorized build).
    macro_rules! prim {
        ($t:ty, $f:expr) => {{
            let src = array.as_primitive::<$t>().values();
            for (ci, v) in src.chunks(STEP).enumerate() {
                pump.step();
                for (o, v) in sink.chunk(ci * STEP, v.len()).iter_mut().zip(v) {
                    *o = $f(*v);
                }
                sink.done(ci * STEP, v.len());
            }
        }};
    }
    macro_rules! int {
        ($t:ty) => {
            prim!($t, |v| h64(v as i64 as u64))
        };
    }
    macro_rules! uint {
        ($t:ty) => {
            prim!($t, |v| h64(u64::from(v)))
        };
    }
    match array.data_type() {
        DataType::Int8 => int!(Int8Type),
        DataType::Int16 => int!(Int16Type),
        DataType::Int32 => int!(Int32Type),
        DataType::Int64 => int!(Int64Type),
        DataType::UInt8 => uint!(UInt8Type),
        DataType::UInt16 => uint!(UInt16Type),
        DataType::UInt32 => uint!(UInt32Type),
        DataType::UInt64 => uint!(UInt64Type),
        DataType::Float32 => prim!(Float32Type, |v: f32| hf64(f64::from(v))),
        DataType::Float64 => prim!(Float64Type, hf64),
        DataType::Decimal32(..) => prim!(Decimal32Type, |v: i32| h128(i128::from(v))),
        DataType::Decimal64(..) => prim!(Decimal64Type, |v: i64| h128(i128::from(v))),
        DataType::Decimal128(..) => {
            // As pairs of words: the compiler splits the halves with two permutes
            // instead of loading each value's halves one by one.
            let src = array.as_primitive::<Decimal128Type>().values();
            if src.inner().as_ptr().align_offset(std::mem::align_of::<u64>()) == 0 {
                let words: &[u64] = src.inner().typed_data();
                for (ci, w) in words.chunks(2 * STEP).enumerate() {
                    pump.step();
                    let len = w.len() / 2;
                    for (o, w) in sink.chunk(ci * STEP, len).iter_mut().zip(w.chunks_exact(2)) {
                        *o = h128_words(w[0], w[1]);
                    }
                    sink.done(ci * STEP, len);
                }
            } else {
                prim!(Decimal128Type, h128)
            }
        }
        DataType::Date32 => int!(Date32Type),
        DataType::Date64 => int!(Date64Type),
        DataType::Time32(TimeUnit::Second) => int!(Time32SecondType),
        DataType::Time32(_) => int!(Time32MillisecondType),
        DataType::Time64(TimeUnit::Microsecond) => int!(Time64MicrosecondType),
        DataType::Time64(_) => int!(Time64NanosecondType),
        DataType::Timestamp(TimeUnit::Second, _) => int!(TimestampSecondType),
        DataType::Timestamp(TimeUnit::Millisecond, _) => int!(TimestampMillisecondType),
        DataType::Timestamp(TimeUnit::Microsecond, _) => int!(TimestampMicrosecondType),
        DataType::Timestamp(TimeUnit::Nanosecond, _) => int!(TimestampNanosecondType),
        DataType::Duration(TimeUnit::Second) => int!(DurationSecondType),
        DataType::Duration(TimeUnit::Millisecond) => int!(DurationMillisecondType),
        DataType::Duration(TimeUnit::Microsecond) => int!(DurationMicrosecondType),
        DataType::Duration(TimeUnit::Nanosecond) => int!(DurationNanosecondType),
        DataType::Interval(IntervalUnit::YearMonth) => int!(IntervalYearMonthType),
        DataType::Utf8 => {
            let a = array.as_string::<i32>();
            offsets_like(array.len(), sink, a.value_offsets(), a.value_data(), pump, build)
        }
        DataType::LargeUtf8 => {
            let a = array.as_string::<i64>();
            offsets_like(array.len(), sink, a.value_offsets(), a.value_data(), pump, build)
        }
        DataType::Binary => {
            let a = array.as_binary::<i32>();
            offsets_like(array.len(), sink, a.value_offsets(), a.value_data(), pump, build)
        }
        DataType::LargeBinary => {
            let a = array.as_binary::<i64>();
            offsets_like(array.len(), sink, a.value_offsets(), a.value_data(), pump, build)
        }
        DataType::Utf8View => {
            let a = array.as_string_view();
            bytes_column(array.len(), sink, |i| a.value(i).as_bytes(), no_short_cut, pump, build)
        }
        DataType::BinaryView => {
            let a = array.as_binary_view();
            bytes_column(array.len(), sink, |i| a.value(i), no_short_cut, pump, build)
        }
        _ => return false,
    }
    true
}

/// Hashes each value of an offsets + data layout (nulls are fixed up by the caller).
#[inline(always)]
fn offsets_like<O: OffsetSizeTrait>(
    rows: usize,
    sink: &mut impl Sink,
    offsets: &[O],
    data: &[u8],
    pump: &mut Pump,
    build: Build,
) {
    // Offsets are monotone, so when the first and the last are inside the data,
    // every value is.
    let first = offsets.first().and_then(|o| o.to_usize());
    let last = offsets.get(rows).and_then(|o| o.to_usize());
    if matches!((first, last), (Some(f), Some(l)) if f <= l && l <= data.len()) {
        bytes_column(
            rows,
            sink,
            // SAFETY: i < rows, so offsets[i + 1] exists, and the value lies in data[first..last].
            |i| unsafe {
                let (s, e) = (
                    offsets.get_unchecked(i).as_usize(),
                    offsets.get_unchecked(i + 1).as_usize(),
                );
                data.get_unchecked(s..e)
            },
            |start: usize, words: &mut ShortWords| {
                // Lengths first (a vectorizable pass); when every value of the step
                // is 8 to 16 bytes long, each one's words are two plain loads.
                let n = words.len.len();
                let Some(o) = offsets.get(start..start + n + 1) else {
                    return false;
                };
                let mut mid = true;
                for (l, w) in words.len.iter_mut().zip(o.windows(2)) {
                    let len = w[1].as_usize().wrapping_sub(w[0].as_usize());
                    mid &= len.wrapping_sub(8) <= 8;
                    *l = len as u64;
                }
                if !mid {
                    return false;
                }
                for ((a, c), w) in words.a.iter_mut().zip(words.c.iter_mut()).zip(o.windows(2)) {
                    let (s, e) = (w[0].as_usize(), w[1].as_usize());
                    // SAFETY: data[s..e] is a value (monotone offsets inside the data,
                    // checked above) and 8 <= e - s, so both 8-byte loads are inside it.
                    unsafe {
                        *a = u64::from_le(data.as_ptr().add(s).cast::<u64>().read_unaligned());
                        *c = u64::from_le(data.as_ptr().add(e - 8).cast::<u64>().read_unaligned());
                    }
                }
                true
            },
            pump,
            build,
        )
    } else {
        let at = |o: &O| o.to_usize().unwrap_or(0);
        let value = |i: usize| match (offsets.get(i), offsets.get(i + 1)) {
            (Some(s), Some(e)) => data.get(at(s)..at(e)).unwrap_or(&[]),
            _ => &[],
        };
        bytes_column(rows, sink, value, no_short_cut, pump, build)
    }
}

/// `hbytes` of every value of a byte column, `value(i)` giving row i's bytes.
#[inline(always)]
fn bytes_column<'a>(
    rows: usize,
    sink: &mut impl Sink,
    value: impl Fn(usize) -> &'a [u8],
    short_cut: impl Fn(usize, &mut ShortWords) -> bool,
    pump: &mut Pump,
    build: Build,
) {
    #[cfg(target_arch = "x86_64")]
    if build == Build::Avx512 {
        // SAFETY: `Build::Avx512` is only chosen when the CPU has these features.
        unsafe { bytes_column_avx512(rows, sink, value, short_cut, pump) };
        return;
    }
    let _ = (build, short_cut);
    for start in (0..rows).step_by(STEP) {
        pump.step();
        let len = STEP.min(rows - start);
        for (k, o) in sink.chunk(start, len).iter_mut().enumerate() {
            *o = hbytes(value(start + k));
        }
        sink.done(start, len);
    }
}

/// `bytes_column` with the folded multiplies eight at a time, bit for bit the same
/// hashes: per step, a scalar pass gathers each short value's two words (loads
/// and a predictable branch on the length), then AVX-512 folds them eight lanes
/// at a time, building the 64x64→128 multiply from four 32x32→64 ones (AVX-512
/// has no vector high multiply). Values over 16 bytes go to xxh3 one by one.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq,avx512vl,avx512bw")]
fn bytes_column_avx512<'a>(
    rows: usize,
    sink: &mut impl Sink,
    value: impl Fn(usize) -> &'a [u8],
    short_cut: impl Fn(usize, &mut ShortWords) -> bool,
    pump: &mut Pump,
) {
    use std::arch::x86_64::*;
    let (ka, kc) = (_mm512_set1_epi64(SHORT_A as i64), _mm512_set1_epi64(SHORT_C as i64));
    // Slots of values over 16 bytes keep stale words; their hashes are overwritten.
    let (mut words_a, mut words_c, mut lens) = ([0u64; STEP], [0u64; STEP], [0u64; STEP]);
    for start in (0..rows).step_by(STEP) {
        pump.step();
        let chunk = sink.chunk(start, STEP.min(rows - start));
        let n = chunk.len();
        let mut long = 0u64;
        let mut words = ShortWords {
            a: &mut words_a[..n],
            c: &mut words_c[..n],
            len: &mut lens[..n],
        };
        if !short_cut(start, &mut words) {
            for k in 0..n {
                let b = value(start + k);
                if b.len() > 16 {
                    long |= 1 << k;
                } else {
                    (words_a[k], words_c[k]) = short_words(b);
                    lens[k] = b.len() as u64;
                }
            }
        }
        for q in 0..chunk.len().div_ceil(8) {
            let lanes = (chunk.len() - 8 * q).min(8);
            // SAFETY: q * 8 + 8 <= STEP for the word arrays; the store writes only
            // the `lanes` slots chunk[8q..8q + lanes] holds (masked store).
            unsafe {
                let a = _mm512_loadu_si512(words_a.as_ptr().add(8 * q).cast());
                let c = _mm512_loadu_si512(words_c.as_ptr().add(8 * q).cast());
                let n = _mm512_loadu_si512(lens.as_ptr().add(8 * q).cast());
                let h = fold_mul_x8(_mm512_xor_si512(a, ka), _mm512_add_epi64(_mm512_xor_si512(c, kc), n));
                _mm512_mask_storeu_epi64(
                    chunk.as_mut_ptr().add(8 * q).cast(),
                    (1u16 << lanes).wrapping_sub(1) as u8,
                    h,
                );
            }
        }
        while long != 0 {
            let k = long.trailing_zeros() as usize;
            chunk[k] = hbytes(value(start + k));
            long &= long - 1;
        }
        sink.done(start, n);
    }
}

/// A step's short values as `hbytes` folds them: the two words and the length.
struct ShortWords<'a> {
    a: &'a mut [u64],
    c: &'a mut [u64],
    len: &'a mut [u64],
}

/// The `short_cut` of layouts without one: every value goes through `short_words`.
fn no_short_cut(_: usize, _: &mut ShortWords) -> bool {
    false
}

/// `fold_mul` on eight lanes: the 128-bit product from four 32x32→64 multiplies,
/// its low and high words xored.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq,avx512vl,avx512bw")]
#[inline]
fn fold_mul_x8(x: std::arch::x86_64::__m512i, y: std::arch::x86_64::__m512i) -> std::arch::x86_64::__m512i {
    use std::arch::x86_64::*;
    let low32 = _mm512_set1_epi64(0xffff_ffff);
    let (xh, yh) = (_mm512_srli_epi64::<32>(x), _mm512_srli_epi64::<32>(y));
    let p00 = _mm512_mul_epu32(x, y);
    let p01 = _mm512_mul_epu32(x, yh);
    let p10 = _mm512_mul_epu32(xh, y);
    let p11 = _mm512_mul_epu32(xh, yh);
    // The middle 32-bit column with its carries; it also gives the low word's top half.
    let mid = _mm512_add_epi64(
        _mm512_srli_epi64::<32>(p00),
        _mm512_add_epi64(_mm512_and_si512(p01, low32), _mm512_and_si512(p10, low32)),
    );
    let lo = _mm512_or_si512(_mm512_slli_epi64::<32>(mid), _mm512_and_si512(p00, low32));
    let hi = _mm512_add_epi64(
        _mm512_add_epi64(p11, _mm512_srli_epi64::<32>(p01)),
        _mm512_add_epi64(_mm512_srli_epi64::<32>(p10), _mm512_srli_epi64::<32>(mid)),
    );
    _mm512_xor_si512(lo, hi)
}

/// Every other type: booleans, half floats, wide decimals, intervals with parts,
/// dictionaries (by value), lists, structs, maps, and the display form of the rest.
// Long by design: one arm per Arrow type (the fast paths are elsewhere).
fn value_hashes_general(array: &dyn Array, out: &mut Vec<u64>) {
    out.clear();
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
        DataType::Float16 => prim!(Float16Type, |v: <Float16Type as ArrowPrimitiveType>::Native| hf64(
            v.to_f64()
        )),
        DataType::Decimal256(..) => prim!(Decimal256Type, |v: i256| hbytes(&v.to_le_bytes())),
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
        DataType::FixedSizeBinary(_) => {
            for (o, v) in out.iter_mut().zip(array.as_fixed_size_binary().iter()) {
                *o = v.map_or(NULL_HASH, hbytes);
            }
        }
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
        for_each_null(&nulls, |i| out[i] = NULL_HASH);
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
            Build::Avx512 => "avx512",
        }
    }

    /// Adds one batch. Batches whose column count differs from the schema's are
    /// digested as far as their columns go (engines do not produce them).
    pub fn update(&mut self, batch: &RecordBatch) {
        match self.build {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Build::Avx512` is only chosen when the CPU has these features.
            Build::Avx512 => unsafe { self.update_avx512(batch) },
            _ => self.update_body(batch),
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512dq,avx512vl,avx512bw")]
    fn update_avx512(&mut self, batch: &RecordBatch) {
        self.update_body(batch)
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

/// Rows per step of the hot loops; the prefetch pump runs once per step.
const STEP: usize = 64;

/// Prefetches the next column's bytes into L2 a few cache lines per step of the
/// current column's loops, so memory and arithmetic overlap. A batch's columns
/// are separate allocations, each a short stream the hardware prefetcher picks up
/// late; prefetching a whole column at once would stall on the line-fill buffers.
#[derive(Default)]
struct Pump {
    ranges: [Option<(arrow::buffer::Buffer, usize, usize)>; 2],
    which: usize,
    at: usize,
    per_step: usize,
}

impl Pump {
    /// A pump for `next`, spread over the steps of a column of `rows` rows. Only
    /// the bytes the next column's hot loop reads: fixed-width values, offsets
    /// and the used part of byte data, string views (not the shared data buffers).
    fn new(next: Option<&dyn Array>, rows: usize) -> Pump {
        let Some(a) = next else {
            return Pump::default();
        };
        fn bytes<O: arrow::array::OffsetSizeTrait>(
            o: &arrow::buffer::OffsetBuffer<O>,
            data: &arrow::buffer::Buffer,
        ) -> [Option<(arrow::buffer::Buffer, usize, usize)>; 2] {
            let (first, last) = (
                o.first().and_then(|x| x.to_usize()),
                o.last().and_then(|x| x.to_usize()),
            );
            let offsets = o.inner().inner().clone();
            let len = offsets.len();
            [
                Some((offsets, 0, len)),
                first.zip(last).map(|(f, l)| (data.clone(), f, l.min(data.len()))),
            ]
        }
        let ranges = match a.data_type() {
            DataType::Utf8 => {
                let s = a.as_string::<i32>();
                bytes(s.offsets(), s.values())
            }
            DataType::LargeUtf8 => {
                let s = a.as_string::<i64>();
                bytes(s.offsets(), s.values())
            }
            DataType::Binary => {
                let s = a.as_binary::<i32>();
                bytes(s.offsets(), s.values())
            }
            DataType::LargeBinary => {
                let s = a.as_binary::<i64>();
                bytes(s.offsets(), s.values())
            }
            DataType::Utf8View => {
                let v = a.as_string_view().views().inner().clone();
                let len = v.len();
                [Some((v, 0, len)), None]
            }
            // The values buffer without building an `ArrayData` (this runs per
            // column per batch).
            _ => arrow::array::downcast_primitive_array!(
                a => {
                    let b = a.values().inner().clone();
                    let len = b.len();
                    [Some((b, 0, len)), None]
                }
                _ => [None, None]
            ),
        };
        let lines: usize = ranges
            .iter()
            .flatten()
            .map(|(_, s, e)| e.saturating_sub(*s).div_ceil(64))
            .sum();
        let at = ranges[0].as_ref().map_or(0, |r| r.1);
        Pump {
            ranges,
            which: 0,
            at,
            per_step: lines.div_ceil(rows.div_ceil(STEP).max(1)),
        }
    }

    #[inline(always)]
    fn step(&mut self) {
        for _ in 0..self.per_step {
            let Some(Some((buf, _, end))) = self.ranges.get(self.which) else {
                return;
            };
            if self.at >= *end {
                self.which += 1;
                self.at = self.ranges.get(self.which).and_then(|r| r.as_ref()).map_or(0, |r| r.1);
                continue;
            }
            #[cfg(target_arch = "x86_64")]
            if let Some(line) = buf.as_slice().get(self.at..) {
                // SAFETY: a prefetch is a hint on a valid address; it reads nothing
                // the program sees and never faults (SSE is baseline on x86-64).
                unsafe { std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T1 }>(line.as_ptr().cast()) };
            }
            #[cfg(not(target_arch = "x86_64"))]
            let _ = buf;
            self.at += 64;
        }
    }
}

/// Folds a column's value hashes into the row hashes; returns their sum.
#[inline(always)]
fn fold_column(rows: &mut [u64], vals: &[u64], first: bool) -> u64 {
    let mut s = 0u64;
    if first {
        for (r, v) in rows.iter_mut().zip(vals) {
            *r = combine(ROW_SEED, *v);
            s = s.wrapping_add(*v);
        }
    } else {
        for (r, v) in rows.iter_mut().zip(vals) {
            *r = combine(*r, *v);
            s = s.wrapping_add(*v);
        }
    }
    s
}

/// A float column's statistics and exact digest in one pass over its values.
#[inline(always)]
fn float_column(
    col: &ArrayRef,
    acc: &mut ColAcc,
    scratch: &mut Vec<f64>,
    vals: &mut Vec<u64>,
    pump: &mut Pump,
    build: Build,
) {
    let cast;
    let a = match col.data_type() {
        DataType::Float64 => col.as_primitive::<Float64Type>(),
        _ => match arrow::compute::cast(col, &DataType::Float64) {
            Ok(c) => {
                cast = c;
                cast.as_primitive::<Float64Type>()
            }
            Err(_) => {
                // Not representable as f64 (no engine type does this): exact digest only.
                value_hashes_body(col.as_ref(), vals, pump, build);
                acc.exact = vals.iter().fold(acc.exact, |s, v| s.wrapping_add(*v));
                return;
            }
        },
    };
    // Null slots count as 0.0 in the lanes and are corrected for afterwards: a
    // null is not finite, and its exact hash is NULL_HASH, not the hash of 0.0.
    let nulls = a.logical_nulls().map_or(0, |n| n.null_count());
    let values: &[f64] = match a.logical_nulls() {
        Some(nb) if nb.null_count() > 0 => {
            scratch.clear();
            scratch.extend_from_slice(a.values());
            for_each_null(&nb, |i| scratch[i] = 0.0);
            scratch
        }
        _ => a.values(),
    };
    let l = float_lanes(values, pump);
    let n = nulls as u64;
    acc.exact = acc
        .exact
        .wrapping_add(l.exact)
        .wrapping_add(n.wrapping_mul(NULL_HASH.wrapping_sub(hf64(0.0))));
    acc.nan += l.nan;
    acc.pos_inf += l.pos_inf;
    acc.neg_inf += l.neg_inf;
    acc.finite += values.len() as u64 - l.nan - l.pos_inf - l.neg_inf - n;
    for (s, c) in l.sum.iter().zip(&l.comp) {
        acc.fsum.add(*s);
        acc.fsum.add(*c);
    }
}

/// Eight independent lanes: one running sum would serialize every addition on the
/// previous one's latency, eight fill a vector register.
struct FloatLanes {
    sum: [f64; 8],
    comp: [f64; 8],
    exact: u64,
    nan: u64,
    pos_inf: u64,
    neg_inf: u64,
}

/// The lanes of a batch's float column. Most batches hold finite values only, so a
/// first pass assumes that (no NaN/infinity counting, no masking of non-finite
/// values) and only counts the values that are not finite; a batch with any is
/// summed again by the full pass. Both give the same lanes for finite values.
#[inline(always)]
fn float_lanes(values: &[f64], pump: &mut Pump) -> FloatLanes {
    float_lanes_finite(values, pump).unwrap_or_else(|| float_lanes_full(values))
}

/// `float_lanes` of a batch of finite values; `None` if any value is not finite.
#[inline(always)]
fn float_lanes_finite(values: &[f64], pump: &mut Pump) -> Option<FloatLanes> {
    const EXP: u64 = 0x7ff0_0000_0000_0000;
    let mut sum = [0f64; 8];
    let mut comp = [0f64; 8];
    let mut exact = [0u64; 8];
    let mut other = [0u64; 8];
    for_each_lane(values, pump, |i, x| {
        // For finite x, `float_bits` only has to fold -0.0 into 0.0.
        let bits = if x == 0.0 { 0 } else { x.to_bits() };
        exact[i] = exact[i].wrapping_add(h64(bits));
        other[i] += u64::from(x.to_bits() & EXP == EXP);
        two_sum(&mut sum[i], &mut comp[i], x);
    });
    (lane_total(other) == 0).then(|| FloatLanes {
        sum,
        comp,
        exact: lane_total(exact),
        nan: 0,
        pos_inf: 0,
        neg_inf: 0,
    })
}

/// `float_lanes` for a batch with NaN or infinite values (rare: not inlined).
#[inline(never)]
fn float_lanes_full(values: &[f64]) -> FloatLanes {
    let mut sum = [0f64; 8];
    let mut comp = [0f64; 8];
    let mut exact = [0u64; 8];
    let mut nan = [0u64; 8];
    let mut pos_inf = [0u64; 8];
    let mut neg_inf = [0u64; 8];
    for_each_lane(values, &mut Pump::default(), |i, x| {
        exact[i] = exact[i].wrapping_add(hf64(x));
        nan[i] += u64::from(x.is_nan());
        pos_inf[i] += u64::from(x == f64::INFINITY);
        neg_inf[i] += u64::from(x == f64::NEG_INFINITY);
        two_sum(&mut sum[i], &mut comp[i], if x.is_finite() { x } else { 0.0 });
    });
    FloatLanes {
        sum,
        comp,
        exact: lane_total(exact),
        nan: lane_total(nan),
        pos_inf: lane_total(pos_inf),
        neg_inf: lane_total(neg_inf),
    }
}

/// Calls `add(lane, value)` for every value, value i in lane i % 8, stepping the
/// pump once per `STEP` values.
#[inline(always)]
fn for_each_lane(values: &[f64], pump: &mut Pump, mut add: impl FnMut(usize, f64)) {
    let mut chunks = values.chunks_exact(8);
    for (k, ch) in (&mut chunks).enumerate() {
        if k % (STEP / 8) == 0 {
            pump.step();
        }
        for (i, x) in ch.iter().enumerate() {
            add(i, *x);
        }
    }
    for (i, x) in chunks.remainder().iter().enumerate() {
        add(i, *x);
    }
}

/// Adds `y` to a lane's sum, keeping the exact rounding error in `comp` (TwoSum,
/// Knuth; branch-free).
#[inline(always)]
fn two_sum(sum: &mut f64, comp: &mut f64, y: f64) {
    let s = *sum + y;
    let b = s - *sum;
    *comp += (*sum - (s - b)) + (y - b);
    *sum = s;
}

#[inline(always)]
fn lane_total(v: [u64; 8]) -> u64 {
    v.iter().fold(0u64, |s, x| s.wrapping_add(*x))
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
