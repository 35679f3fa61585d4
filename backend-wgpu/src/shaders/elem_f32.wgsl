// Element codec for f32 buffers: one element per 32-bit word.

const EPW: u32 = 1u;
const ELEM_BITS: u32 = 32u;

// 0: finite, 1: -inf (masked entry), 2: NaN or +inf.
fn elem_class(bits: u32) -> u32 {
    if bits == 0xff800000u {
        return 1u;
    }
    return select(0u, 2u, (bits & 0x7fffffffu) >= 0x7f800000u);
}

fn elem_value(bits: u32) -> f32 {
    return bitcast<f32>(bits);
}

fn encode_elem(v: f32) -> u32 {
    return bitcast<u32>(v);
}
