//! Everything `unsafe` of the digest, each with its safety argument: the AVX-512
//! build of the loops (entered only with an [`Avx512`] token, which only
//! `Build::detect` makes, after checking the CPU), the byte-string hashing with
//! unchecked offset reads and its vectorized fold, and the prefetch hint.

#[cfg(target_arch = "x86_64")]
use arrow::array::Array;
#[cfg(not(target_arch = "x86_64"))]
use arrow::array::Array;
use arrow::array::{OffsetSizeTrait, RecordBatch};

use super::columns::{Pump, STEP, Sink};
use super::hash::*;
use super::{Avx512, Build, DigestBuilder};

/// Value hashes with the AVX-512 build of the loops.
pub(super) fn value_hashes_vectorized(_: Avx512, array: &dyn Array, out: &mut Vec<u64>) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: an `Avx512` token exists only when the CPU has these features (`Build::detect`).
    unsafe {
        value_hashes_avx512(array, out)
    }
    #[cfg(not(target_arch = "x86_64"))]
    super::columns::value_hashes_body(array, out, &mut Pump::default(), Build::Portable)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq,avx512vl,avx512bw")]
pub(super) fn value_hashes_avx512(array: &dyn Array, out: &mut Vec<u64>) {
    super::columns::value_hashes_body(array, out, &mut Pump::default(), Build::Avx512(Avx512(())))
}

/// `DigestBuilder::update` with the AVX-512 build of the loops.
pub(super) fn update_vectorized(_: Avx512, builder: &mut DigestBuilder, batch: &RecordBatch) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: an `Avx512` token exists only when the CPU has these features (`Build::detect`).
    unsafe {
        update_avx512(builder, batch)
    }
    #[cfg(not(target_arch = "x86_64"))]
    builder.update_body(batch)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq,avx512vl,avx512bw")]
fn update_avx512(builder: &mut DigestBuilder, batch: &RecordBatch) {
    builder.update_body(batch)
}

/// Hints the CPU to bring the cache line at `line` into L2.
#[inline(always)]
pub(super) fn prefetch(line: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint on a valid address; it reads nothing the program
    // sees and never faults (SSE is baseline on x86-64).
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T1 }>(line.as_ptr().cast())
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = line;
}

/// Hashes each value of an offsets + data layout (nulls are fixed up by the caller).
#[inline(always)]
pub(super) fn offsets_like<O: OffsetSizeTrait>(
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
pub(super) fn bytes_column<'a>(
    rows: usize,
    sink: &mut impl Sink,
    value: impl Fn(usize) -> &'a [u8],
    short_cut: impl Fn(usize, &mut ShortWords) -> bool,
    pump: &mut Pump,
    build: Build,
) {
    #[cfg(target_arch = "x86_64")]
    if let Build::Avx512(_) = build {
        // SAFETY: an `Avx512` token exists only when the CPU has these features
        // (`Build::detect`).
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
pub(super) fn bytes_column_avx512<'a>(
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
pub(super) struct ShortWords<'a> {
    pub(super) a: &'a mut [u64],
    pub(super) c: &'a mut [u64],
    pub(super) len: &'a mut [u64],
}

/// The `short_cut` of layouts without one: every value goes through `short_words`.
pub(super) fn no_short_cut(_: usize, _: &mut ShortWords) -> bool {
    false
}

/// `fold_mul` on eight lanes: the 128-bit product from four 32x32→64 multiplies,
/// its low and high words xored.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq,avx512vl,avx512bw")]
#[inline]
pub(super) fn fold_mul_x8(x: std::arch::x86_64::__m512i, y: std::arch::x86_64::__m512i) -> std::arch::x86_64::__m512i {
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
