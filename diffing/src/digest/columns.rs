//! The column loops of the digest: value hashes of a whole column (the hot
//! fixed-width and byte types in one vectorizable pass each, every other type
//! by value), folding them into row hashes, float statistics in lanes, and the
//! prefetch pump that overlaps the next column's memory with this one's work.

use std::fmt::Write as _;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::buffer::NullBuffer;
use arrow::datatypes::*;

use super::hash::*;
use super::raw::{bytes_column, no_short_cut, offsets_like};
use super::{Build, ColAcc};

/// Value hashes of an array, one per row (nulls hash to a fixed value).
pub fn value_hashes(array: &dyn Array, out: &mut Vec<u64>) {
    match Build::detect() {
        Build::Avx512(token) => super::raw::value_hashes_vectorized(token, array, out),
        Build::Portable => value_hashes_body(array, out, &mut Pump::default(), Build::Portable),
    }
}

/// `build` names the build this body is compiled into: the AVX-512 one also
/// calls the explicitly vectorized string hashing.
#[inline(always)]
pub(super) fn value_hashes_body(array: &dyn Array, out: &mut Vec<u64>, pump: &mut Pump, build: Build) {
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
pub(super) fn for_each_null(nulls: &NullBuffer, mut f: impl FnMut(usize)) {
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
pub(super) trait Sink {
    /// The slots for the hashes of rows `start..start + len`.
    fn chunk(&mut self, start: usize, len: usize) -> &mut [u64];
    /// The slots `chunk` gave for rows `start..start + len` are filled.
    fn done(&mut self, start: usize, len: usize);
}

/// Keeps a column's value hashes, one per row.
pub(super) struct Keep<'a>(&'a mut [u64]);

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
pub(super) struct Fold<'a> {
    pub(super) rows: &'a mut [u64],
    pub(super) first: bool,
    pub(super) sum: u64,
    pub(super) buf: [u64; STEP],
}

impl<'a> Fold<'a> {
    pub(super) fn new(rows: &'a mut [u64], first: bool) -> Self {
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
pub(super) fn fixed_and_bytes(array: &dyn Array, sink: &mut impl Sink, pump: &mut Pump, build: Build) -> bool {
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

/// Every other type: booleans, half floats, wide decimals, intervals with parts,
/// dictionaries (by value), lists, structs, maps, and the display form of the rest.
// Long by design: one arm per Arrow type (the fast paths are elsewhere).
pub(super) fn value_hashes_general(array: &dyn Array, out: &mut Vec<u64>) {
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

pub(super) fn nested_seq(out: &mut [u64], child: &dyn Array, ranges: impl Iterator<Item = (usize, usize)>) {
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

/// Rows per step of the hot loops; the prefetch pump runs once per step.
pub(super) const STEP: usize = 64;

/// Prefetches the next column's bytes into L2 a few cache lines per step of the
/// current column's loops, so memory and arithmetic overlap. A batch's columns
/// are separate allocations, each a short stream the hardware prefetcher picks up
/// late; prefetching a whole column at once would stall on the line-fill buffers.
#[derive(Default)]
pub(super) struct Pump {
    ranges: [Option<(arrow::buffer::Buffer, usize, usize)>; 2],
    which: usize,
    at: usize,
    per_step: usize,
}

impl Pump {
    /// A pump for `next`, spread over the steps of a column of `rows` rows. Only
    /// the bytes the next column's hot loop reads: fixed-width values, offsets
    /// and the used part of byte data, string views (not the shared data buffers).
    pub(super) fn new(next: Option<&dyn Array>, rows: usize) -> Pump {
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
    pub(super) fn step(&mut self) {
        for _ in 0..self.per_step {
            let Some(Some((buf, _, end))) = self.ranges.get(self.which) else {
                return;
            };
            if self.at >= *end {
                self.which += 1;
                self.at = self.ranges.get(self.which).and_then(|r| r.as_ref()).map_or(0, |r| r.1);
                continue;
            }
            if let Some(line) = buf.as_slice().get(self.at..) {
                super::raw::prefetch(line);
            }
            self.at += 64;
        }
    }
}

/// Folds a column's value hashes into the row hashes; returns their sum.
#[inline(always)]
pub(super) fn fold_column(rows: &mut [u64], vals: &[u64], first: bool) -> u64 {
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
pub(super) fn float_column(
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
pub(super) struct FloatLanes {
    pub(super) sum: [f64; 8],
    pub(super) comp: [f64; 8],
    pub(super) exact: u64,
    pub(super) nan: u64,
    pub(super) pos_inf: u64,
    pub(super) neg_inf: u64,
}

/// The lanes of a batch's float column. Most batches hold finite values only, so a
/// first pass assumes that (no NaN/infinity counting, no masking of non-finite
/// values) and only counts the values that are not finite; a batch with any is
/// summed again by the full pass. Both give the same lanes for finite values.
#[inline(always)]
pub(super) fn float_lanes(values: &[f64], pump: &mut Pump) -> FloatLanes {
    float_lanes_finite(values, pump).unwrap_or_else(|| float_lanes_full(values))
}

/// `float_lanes` of a batch of finite values; `None` if any value is not finite.
#[inline(always)]
pub(super) fn float_lanes_finite(values: &[f64], pump: &mut Pump) -> Option<FloatLanes> {
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
pub(super) fn float_lanes_full(values: &[f64]) -> FloatLanes {
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
pub(super) fn for_each_lane(values: &[f64], pump: &mut Pump, mut add: impl FnMut(usize, f64)) {
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
pub(super) fn two_sum(sum: &mut f64, comp: &mut f64, y: f64) {
    let s = *sum + y;
    let b = s - *sum;
    *comp += (*sum - (s - b)) + (y - b);
    *sum = s;
}

#[inline(always)]
pub(super) fn lane_total(v: [u64; 8]) -> u64 {
    v.iter().fold(0u64, |s, x| s.wrapping_add(*x))
}
