// Per-trajectory and per-token kernels: group-relative advantages and their broadcast to tokens.
// Prepended at build time: `common.wgsl` (Invocation, flat_index).

struct Params {
    count: u32,            // samples (advantages) or tokens (scatter)
    norm_by_std: u32,
    masked_in_stats: u32,
    eps: f32,
    values_len: u32,       // scatter: number of values
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

// Status slots.
const ST_REWARD: u32 = 0u;   // first non-finite reward (atomicMin)
const ST_GROUP: u32 = 1u;    // largest group id (atomicMax)
const ST_INDEX: u32 = 0u;    // scatter: first token with an out-of-range index (atomicMin)

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> rewards: array<f32>;
@group(0) @binding(2) var<storage, read> groups: array<u32>;
@group(0) @binding(3) var<storage, read> masked: array<u32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<storage, read_write> status: array<atomic<u32>>;
@group(0) @binding(6) var<storage, read> values: array<f32>;
@group(0) @binding(7) var<storage, read> index: array<u32>;

fn counts(j: u32) -> bool {
    return P.masked_in_stats != 0u || masked[j] == 0u;
}

// A_i = (R_i − mean_g) / (std_g + ε) with the Bessel-corrected std, both over the members of
// i's group taken in index order (so every member of a group computes the same statistics).
@compute @workgroup_size(256)
fn group_advantages(inv: Invocation) {
    let i = flat_index(inv);
    if i >= P.count {
        return;
    }
    if (bitcast<u32>(rewards[i]) & 0x7fffffffu) >= 0x7f800000u {
        atomicMin(&status[ST_REWARD], i);
    }
    let g = groups[i];
    atomicMax(&status[ST_GROUP], g);
    if !counts(i) {
        out[i] = 0.0;
        return;
    }
    var n = 0u;
    var sum = 0.0;
    for (var j = 0u; j < P.count; j++) {
        if groups[j] == g && counts(j) {
            n += 1u;
            sum += rewards[j];
        }
    }
    var mean = 0.0;
    var sd = 1.0;
    if n > 1u {
        mean = sum / f32(n);
        var sq = 0.0;
        for (var j = 0u; j < P.count; j++) {
            if groups[j] == g && counts(j) {
                let d = rewards[j] - mean;
                sq += d * d;
            }
        }
        sd = sqrt(sq / f32(n - 1u));
    }
    let centred = rewards[i] - mean;
    if P.norm_by_std != 0u {
        out[i] = centred / (sd + P.eps);
    } else {
        out[i] = centred;
    }
}

// out[t] = values[index[t]].
@compute @workgroup_size(256)
fn scatter(inv: Invocation) {
    let t = flat_index(inv);
    if t >= P.count {
        return;
    }
    let j = index[t];
    if j >= P.values_len {
        atomicMin(&status[ST_INDEX], t);
        out[t] = 0.0;
    } else {
        out[t] = values[j];
    }
}
