// Element codec for f16 buffers: two elements per 32-bit word, element 0 in the low half.
// Conversions are done on the bits (no reliance on the device's half-precision support or its
// handling of subnormals).

const EPW: u32 = 2u;
const ELEM_BITS: u32 = 16u;

// 0: finite, 1: -inf (masked entry), 2: NaN or +inf.
fn elem_class(bits: u32) -> u32 {
    if bits == 0xfc00u {
        return 1u;
    }
    return select(0u, 2u, (bits & 0x7fffu) >= 0x7c00u);
}

// Exact widening of a finite f16.
fn elem_value(bits: u32) -> f32 {
    let sgn = (bits & 0x8000u) << 16u;
    let e = (bits >> 10u) & 0x1fu;
    let m = bits & 0x3ffu;
    if e == 0u {
        // Zero or subnormal: m · 2^-24, exact in f32.
        let mag = f32(m) * 5.9604645e-8;
        return bitcast<f32>(bitcast<u32>(mag) | sgn);
    }
    return bitcast<f32>(sgn | ((e + 112u) << 23u) | (m << 13u));
}

// Round to nearest even, as `half::f16::from_f32` (subnormals included).
fn encode_elem(v: f32) -> u32 {
    let x = bitcast<u32>(v);
    let sgn = (x >> 16u) & 0x8000u;
    let a = x & 0x7fffffffu;
    if a >= 0x7f800000u {
        // Infinity, or a quiet NaN keeping the top of its payload.
        return sgn | 0x7c00u | select(0u, 0x200u | ((a >> 13u) & 0x3ffu), a > 0x7f800000u);
    }
    if a >= 0x477ff000u {
        // Rounds to a magnitude of at least 65520: overflow.
        return sgn | 0x7c00u;
    }
    if a >= 0x38800000u {
        // Normal f16: rebias the exponent, round 13 bits away.
        let r = a - 0x38000000u;
        return sgn | ((r + 0xfffu + ((r >> 13u) & 1u)) >> 13u);
    }
    if a < 0x33000000u {
        // Below 2^-25: rounds to zero.
        return sgn;
    }
    // Subnormal f16 in units of 2^-24.
    let e = a >> 23u;
    let m = (a & 0x7fffffu) | 0x800000u;
    let shift = 126u - e;
    let q = m >> shift;
    let rem = m & ((1u << shift) - 1u);
    let halfway = 1u << (shift - 1u);
    let up = rem > halfway || (rem == halfway && (q & 1u) == 1u);
    return sgn | (q + select(0u, 1u, up));
}
