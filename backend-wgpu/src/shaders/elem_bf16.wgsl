// Element codec for bf16 buffers: two elements per 32-bit word, element 0 in the low half.

const EPW: u32 = 2u;
const ELEM_BITS: u32 = 16u;

// 0: finite, 1: -inf (masked entry), 2: NaN or +inf.
fn elem_class(bits: u32) -> u32 {
    if bits == 0xff80u {
        return 1u;
    }
    return select(0u, 2u, (bits & 0x7fffu) >= 0x7f80u);
}

// Exact widening: bf16 is the upper half of an f32.
fn elem_value(bits: u32) -> f32 {
    return bitcast<f32>(bits << 16u);
}

// Round to nearest even, as `half::bf16::from_f32`.
fn encode_elem(v: f32) -> u32 {
    let x = bitcast<u32>(v);
    if (x & 0x7fffffffu) > 0x7f800000u {
        return (x >> 16u) | 0x40u;
    }
    let round_bit = 0x8000u;
    if (x & round_bit) != 0u && (x & (3u * round_bit - 1u)) != 0u {
        return (x >> 16u) + 1u;
    }
    return x >> 16u;
}
