//! The scalar hash functions of the digest: value hashes (fixed-width, 128-bit,
//! bytes, floats), the positional row combine and the multiset words. Pure and
//! safe; the column loops ([`super::columns`]) call them so that they vectorize.

pub(super) const NULL_HASH: u64 = 0x9e37_79b9_7f4a_7c15;
pub(super) const ROW_SEED: u64 = 0x005e_ed0f_f11e;

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
pub(super) fn mix(mut k: u64) -> u64 {
    k ^= k >> 32;
    k = k.wrapping_mul(0xd6e8_feb8_6659_fd93);
    k ^= k >> 32;
    k = k.wrapping_mul(0xd6e8_feb8_6659_fd93);
    k ^ (k >> 32)
}

/// The folded 64x64→128 multiply of wyhash: one scalar `mul` mixing 128 input bits.
#[inline(always)]
pub(super) fn fold_mul(a: u64, b: u64) -> u64 {
    let full = u128::from(a).wrapping_mul(u128::from(b));
    (full as u64) ^ ((full >> 64) as u64)
}

#[inline(always)]
pub(super) fn h64(v: u64) -> u64 {
    mix(v ^ 0x2545_f491_4f6c_dd1d)
}

/// 128-bit values (decimals): the high word goes through an odd multiply (a
/// bijection) before it meets the low word, so sign-extended small values of
/// opposite signs cannot cancel out.
#[inline(always)]
pub(super) fn h128(v: i128) -> u64 {
    h128_words(v as u64, (v >> 64) as u64)
}

#[inline(always)]
pub(super) fn h128_words(lo: u64, hi: u64) -> u64 {
    mix(lo ^ hi.wrapping_mul(0x9fb2_1c65_1e98_df25) ^ 0x5851_f42d_4c95_7f2d)
}

/// Bytes: short values (most keys, codes, names) inline with one folded multiply
/// over overlapping loads that cover every byte; longer ones with xxh3.
#[inline(always)]
pub(super) fn hbytes(b: &[u8]) -> u64 {
    if b.len() > 16 {
        return xxhash_rust::xxh3::xxh3_64(b);
    }
    let (a, c) = short_words(b);
    fold_mul(a ^ SHORT_A, (c ^ SHORT_C).wrapping_add(b.len() as u64))
}

pub(super) const SHORT_A: u64 = 0xa076_1d64_78bd_642f;
pub(super) const SHORT_C: u64 = 0xe703_7ed1_a0b4_28db;

/// The two words `hbytes` folds for a value of at most 16 bytes: overlapping
/// loads from both ends that together cover every byte.
#[inline(always)]
pub(super) fn short_words(b: &[u8]) -> (u64, u64) {
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
pub(super) fn le64(b: &[u8]) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(b);
    u64::from_le_bytes(x)
}

#[inline(always)]
pub(super) fn le32(b: &[u8]) -> u64 {
    let mut x = [0u8; 4];
    x.copy_from_slice(b);
    u64::from(u32::from_le_bytes(x))
}

/// The bits a float is hashed by: -0.0 is 0.0 and all NaNs are one value
/// (branch-free, so float loops vectorize).
#[inline(always)]
pub(super) fn float_bits(v: f64) -> u64 {
    let bits = if v == 0.0 { 0 } else { v.to_bits() };
    if v.is_nan() { 0x7ff8_0000_0000_0000 } else { bits }
}

#[inline(always)]
pub(super) fn hf64(v: f64) -> u64 {
    h64(float_bits(v))
}

/// Combines a row's running hash with the next column's value hash (positional).
#[inline(always)]
pub(super) fn combine(acc: u64, v: u64) -> u64 {
    // Value hashes are already mixed; one multiply keeps the combination
    // positional (rotate + multiply do not commute) and the row hash is
    // finalized with `mix` before it is summed.
    (acc.rotate_left(26) ^ v).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// A row hash's contribution to the multiset: two words, summed separately
/// (128 bits); the second is a nonlinear function of the first.
#[inline(always)]
pub(super) fn row_words(r: u64) -> (u64, u64) {
    let lo = mix(r ^ 0xe703_7ed1_a0b4_28db);
    (lo, (lo ^ (lo >> 29)).wrapping_mul(0x1d8e_4e27_c47d_124f))
}
