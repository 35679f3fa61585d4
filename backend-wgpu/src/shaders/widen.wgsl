// Widens an element buffer to f32 and records the first non-finite element (-inf included).
// Prepended at build time: an element codec (`elem_*.wgsl`) and `common.wgsl`.

struct Params {
    count: u32,  // elements to convert
    slot: u32,   // status slot that receives the first non-finite index
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;
@group(0) @binding(3) var<storage, read_write> status: array<atomic<u32>>;

@compute @workgroup_size(256)
fn widen(inv: Invocation) {
    let i = flat_index(inv);
    if i >= P.count {
        return;
    }
    let bits = extractBits(src[i / EPW], (i % EPW) * ELEM_BITS, ELEM_BITS);
    if elem_class(bits) != 0u {
        atomicMin(&status[P.slot], i);
        dst[i] = 0.0;
    } else {
        dst[i] = elem_value(bits);
    }
}
