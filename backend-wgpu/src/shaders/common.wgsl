// Helpers shared by every kernel module except the matmul (prepended at build time): where an
// invocation is in the grid, and the CPU reference's exp for non-positive arguments.

// Invocations per workgroup of every kernel.
const WG: u32 = 256u;
const F32_MAX: f32 = 3.40282347e38;

// The builtins of a kernel's invocation: its workgroup in a 2-D grid (one dimension may not
// hold them all) and its index in the workgroup.
struct Invocation {
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
}

// The workgroup's index in the grid (row kernels: its row in the chunk).
fn workgroup_index(inv: Invocation) -> u32 {
    return inv.wid.y * inv.nwg.x + inv.wid.x;
}

// The invocation's index in the grid (element-wise kernels: its element).
fn flat_index(inv: Invocation) -> u32 {
    return workgroup_index(inv) * WG + inv.lid;
}

// exp(x) for x <= 0: the Cephes polynomial of `supo_core::backend::kernel::exp_nonpositive`
// (within 2 ulp of the exact value; 0 below -87.3), so both backends round the same way.
fn exp_np(x: f32) -> f32 {
    let LOG2E = 1.44269504;
    let LN2_HI = 0.693359375;
    let LN2_LO = -2.12194440e-4;
    let xc = max(x, -87.3);
    // Round half to even, as the reference's 1.5·2²³ trick does.
    let n = round(xc * LOG2E);
    let r = xc - n * LN2_HI - n * LN2_LO;
    var p = 1.9875691e-4;
    p = p * r + 1.3981999e-3;
    p = p * r + 8.3334520e-3;
    p = p * r + 4.1665796e-2;
    p = p * r + 1.6666665e-1;
    p = p * r + 5.0000000e-1;
    let e = p * r * r + r + 1.0;
    let scale = bitcast<f32>(u32(i32(n) + 127) << 23u);
    return select(e * scale, 0.0, x < -87.3);
}
