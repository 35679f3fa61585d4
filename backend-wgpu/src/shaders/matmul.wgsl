// C = A·B, or C += A·B, on f32 operands addressed through (offset, row stride, column stride):
// A(m, k) = a[a_off + m·a_rs + k·a_cs], B(k, n) = b[b_off + k·b_rs + n·b_cs],
// C(m, n) = c[c_off + m·c_rs + n].
//
// 64×64 output tiles, 16-deep slices of K staged in workgroup memory, 4×4 outputs per
// invocation. Each output is one running sum over k in increasing order (then added to C when
// accumulating), so the result does not depend on scheduling.

const TM: u32 = 64u;
const TN: u32 = 64u;
const TK: u32 = 16u;

struct Params {
    m: u32,
    n: u32,
    k: u32,
    accumulate: u32,
    a_off: u32,
    a_rs: u32,
    a_cs: u32,
    b_off: u32,
    b_rs: u32,
    b_cs: u32,
    c_off: u32,
    c_rs: u32,
    tile_m0: u32,  // first tile row of this dispatch
    tile_n0: u32,  // first tile column of this dispatch
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;

var<workgroup> tile_a: array<f32, 1024>;  // [TK][TM]
var<workgroup> tile_b: array<f32, 1024>;  // [TK][TN]

// Slot `idx` of a staged [TK][width] operand slice as (k, other): consecutive invocations walk
// the operand's unit-stride dimension (k when `k_unit`), so the loads of a tile are contiguous
// (coalesced on a GPU) whichever way it is laid out.
fn tile_slot(idx: u32, k_unit: bool, width: u32) -> vec2<u32> {
    if k_unit {
        return vec2<u32>(idx % TK, idx / TK);
    }
    return vec2<u32>(idx / width, idx % width);
}

@compute @workgroup_size(256)
fn matmul(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let m0 = (P.tile_m0 + wid.y) * TM;
    let n0 = (P.tile_n0 + wid.x) * TN;
    let tx = lid % 16u;
    let ty = lid / 16u;
    // acc[i][j]: output row ty + 16·i, column tx + 16·j.
    var acc: array<vec4<f32>, 4>;
    for (var k0 = 0u; k0 < P.k; k0 += TK) {
        for (var i = 0u; i < 4u; i++) {
            let idx = lid + i * 256u;
            let sa = tile_slot(idx, P.a_cs == 1u, TM);
            let ak = sa.x;
            let am = sa.y;
            var va = 0.0;
            if m0 + am < P.m && k0 + ak < P.k {
                va = a[P.a_off + (m0 + am) * P.a_rs + (k0 + ak) * P.a_cs];
            }
            tile_a[ak * TM + am] = va;
            let sb = tile_slot(idx, P.b_cs != 1u, TN);
            let bk = sb.x;
            let bn = sb.y;
            var vb = 0.0;
            if k0 + bk < P.k && n0 + bn < P.n {
                vb = b[P.b_off + (k0 + bk) * P.b_rs + (n0 + bn) * P.b_cs];
            }
            tile_b[bk * TN + bn] = vb;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TK; kk++) {
            let bo = kk * TN + tx;
            let rb = vec4<f32>(tile_b[bo], tile_b[bo + 16u], tile_b[bo + 32u], tile_b[bo + 48u]);
            let ao = kk * TM + ty;
            acc[0] += tile_a[ao] * rb;
            acc[1] += tile_a[ao + 16u] * rb;
            acc[2] += tile_a[ao + 32u] * rb;
            acc[3] += tile_a[ao + 48u] * rb;
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i++) {
        let row = m0 + ty + 16u * i;
        for (var j = 0u; j < 4u; j++) {
            let col = n0 + tx + 16u * j;
            if row < P.m && col < P.n {
                let at = P.c_off + row * P.c_rs + col;
                var v = acc[i][j];
                if P.accumulate != 0u {
                    v = c[at] + v;
                }
                c[at] = v;
            }
        }
    }
}
