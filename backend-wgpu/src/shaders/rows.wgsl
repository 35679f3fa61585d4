// Row kernels over a logits matrix [rows, vocab], one workgroup per row. Prepended at build
// time: an element codec (`elem_*.wgsl`: EPW, ELEM_BITS, elem_class, elem_value, encode_elem)
// and `common.wgsl` (WG, Invocation, exp_np).
//
// Every reduction has a fixed order: each invocation walks its strided share of the row in
// order (in blocks of BLOCK, like the CPU's blockwise online maximum), then the 256 partial
// states are combined in a fixed binary tree.

// Elements per invocation between two updates of its running maximum.
const BLOCK: u32 = 8u;
const LOG_RATIO_CLAMP: f32 = 20.0;
const LOW_VAR_KL_CLAMP: f32 = 10.0;

// Record flags.
const FLAG_BAD: u32 = 1u;       // NaN or +inf logit, all -inf row, or -inf target logit
const FLAG_CLIPPED: u32 = 2u;   // pg_clipfrac indicator
const FLAG_LOWER: u32 = 4u;     // pg_clipfrac_lower indicator
const FLAG_ZERO: u32 = 8u;      // gradient row is zero (weight 0 or bad row)

// Status slots (atomicMin of the first offending row; u32::MAX when none).
const ST_TARGET: u32 = 0u;
const ST_OLD: u32 = 1u;
const ST_ADV: u32 = 2u;
const ST_WEIGHT: u32 = 3u;
const ST_REF: u32 = 4u;
const ST_ROW: u32 = 5u;

struct Params {
    row0: u32,        // global index of the chunk's first row
    rows: u32,        // rows in this chunk
    total_rows: u32,  // N
    vocab: u32,       // V
    elem0: u32,       // element offset of row0's first logit in the bound logits window
    _pad0: u32,
    _pad1: u32,
    // The loss settings, laid out like `supo_core::backend::host::LossKernelParams`.
    inv_temp: f32,
    ratio_min: f32,
    ratio_max: f32,
    dual_clip: f32,
    has_dual: u32,
    kl_coef: f32,
    kl_type: u32,     // 0: k1, 1: k2, 2: low_var_kl
    entropy_coef: f32,
    has_ref: u32,
}

// Per-row results of the fused loss (10 words; read back and reduced on the host).
struct Record {
    shift: f32,       // max + log Σ exp(z − max)
    logp: f32,
    entropy: f32,
    pg: f32,
    kl: f32,
    approx_kl: f32,
    a: f32,           // −weight · dL/dlogπ / T
    b: f32,           // weight · entropy_coef / T
    weight: f32,
    flags: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read_write> logits: array<u32>;
@group(0) @binding(2) var<storage, read> targets: array<u32>;
@group(0) @binding(3) var<storage, read> old_lp: array<u32>;
@group(0) @binding(4) var<storage, read> ref_lp: array<u32>;
@group(0) @binding(5) var<storage, read> adv: array<u32>;
@group(0) @binding(6) var<storage, read> weights: array<u32>;
@group(0) @binding(7) var<storage, read_write> records: array<Record>;
@group(0) @binding(8) var<storage, read_write> status: array<atomic<u32>>;
@group(0) @binding(9) var<storage, read_write> out_logp: array<f32>;
@group(0) @binding(10) var<storage, read_write> out_entropy: array<f32>;

var<workgroup> sh_m: array<f32, WG>;
var<workgroup> sh_s: array<f32, WG>;
var<workgroup> sh_sz: array<f32, WG>;
var<workgroup> sh_bad: array<u32, WG>;

fn logit_bits(e: u32) -> u32 {
    return extractBits(logits[e / EPW], (e % EPW) * ELEM_BITS, ELEM_BITS);
}

fn is_finite_bits(bits: u32) -> bool {
    return (bits & 0x7fffffffu) < 0x7f800000u;
}

// Softmax statistics of one row.
struct Stats {
    maxz: f32,
    log_sum: f32,
    logp: f32,
    entropy: f32,
    bad: bool,
}

// Folds the online log-sum-exp state (m, Σ e, Σ e·(z − m)) of slot j into slot i.
fn combine(i: u32, j: u32) {
    let s2 = sh_s[j];
    sh_bad[i] = sh_bad[i] | sh_bad[j];
    if s2 == 0.0 {
        return;
    }
    let s1 = sh_s[i];
    if s1 == 0.0 {
        sh_m[i] = sh_m[j];
        sh_s[i] = s2;
        sh_sz[i] = sh_sz[j];
        return;
    }
    let m1 = sh_m[i];
    let m2 = sh_m[j];
    let m = max(m1, m2);
    let d1 = m1 - m;
    let d2 = m2 - m;
    let f1 = exp_np(d1);
    let f2 = exp_np(d2);
    sh_m[i] = m;
    sh_s[i] = f1 * s1 + f2 * s2;
    sh_sz[i] = f1 * (sh_sz[i] + d1 * s1) + f2 * (sh_sz[j] + d2 * s2);
}

// One pass over the row of local index `r`; the result is valid in invocation 0.
fn row_stats(r: u32, lid: u32, tgt: u32) -> Stats {
    let base = P.elem0 + r * P.vocab;
    var m = -F32_MAX;
    var s = 0.0;
    var sz = 0.0;
    var bad = 0u;
    // Blocks of BLOCK elements of this invocation's strided share: the block's maximum first,
    // then one rescale (if it grew) and the block's exponentials.
    for (var j0 = lid; j0 < P.vocab; j0 += WG * BLOCK) {
        var zs: array<f32, BLOCK>;
        var bm = -F32_MAX;
        var valid = 0u;
        for (var i = 0u; i < BLOCK; i++) {
            let j = j0 + i * WG;
            if j < P.vocab {
                let bits = logit_bits(base + j);
                let cls = elem_class(bits);
                // -inf (masked vocabulary) adds nothing; NaN and +inf poison the row.
                bad = bad | select(0u, 1u, cls == 2u);
                if cls == 0u {
                    let z = elem_value(bits) * P.inv_temp;
                    zs[i] = z;
                    bm = max(bm, z);
                    valid = valid | (1u << i);
                }
            }
        }
        if valid == 0u {
            continue;
        }
        if bm > m {
            if s > 0.0 {
                let delta = m - bm;
                let f = exp_np(delta);
                sz = f * (sz + delta * s);
                s = s * f;
            }
            m = bm;
        }
        for (var i = 0u; i < BLOCK; i++) {
            if (valid & (1u << i)) != 0u {
                let d = zs[i] - m;
                let e = exp_np(d);
                s += e;
                if e > 0.0 {
                    sz += e * d;
                }
            }
        }
    }
    sh_m[lid] = m;
    sh_s[lid] = s;
    sh_sz[lid] = sz;
    sh_bad[lid] = bad;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride = stride / 2u) {
        if lid < stride {
            combine(lid, lid + stride);
        }
        workgroupBarrier();
    }
    var st: Stats;
    let total = sh_s[0];
    st.maxz = sh_m[0];
    st.log_sum = log(total);
    let t_bits = logit_bits(base + min(tgt, P.vocab - 1u));
    let picked = elem_value(t_bits) * P.inv_temp;
    st.logp = picked - st.maxz - st.log_sum;
    st.entropy = st.log_sum - sh_sz[0] / total;
    // Bit tests, not float compares, so a compiler assuming finite math cannot drop them.
    st.bad = sh_bad[0] != 0u || !(total > 0.0) || elem_class(t_bits) != 0u
        || !is_finite_bits(bitcast<u32>(st.logp)) || !is_finite_bits(bitcast<u32>(st.entropy))
        || !is_finite_bits(bitcast<u32>(st.maxz + st.log_sum));
    return st;
}

// Pass 1 of both `loss_stats` and `logprobs` over row `g` (local index `r`): the softmax
// statistics (valid in invocation 0) and the target checked against the vocabulary.
fn checked_row_stats(r: u32, g: u32, lid: u32) -> Stats {
    let tgt = targets[g];
    let st = row_stats(r, lid, tgt);
    if lid == 0u && tgt >= P.vocab {
        atomicMin(&status[ST_TARGET], g);
    }
    return st;
}

// Derivative of max(a, b) given those of a and b; ties split the gradient as PyTorch does.
fn d_max(a: f32, b: f32, da: f32, db: f32) -> f32 {
    if a > b {
        return da;
    }
    if a < b {
        return db;
    }
    return (da + db) / 2.0;
}

struct Terms {
    pg: f32,
    d_pg: f32,
    kl: f32,
    d_kl: f32,
    clipped: bool,
    clipped_lower: bool,
    approx_kl: f32,
}

// `supo_core::estimator::surrogate::token_terms` in f32.
fn token_terms(logp: f32, old: f32, reference: f32, advantage: f32) -> Terms {
    var t: Terms;
    let raw = logp - old;
    let log_ratio = min(max(raw, -LOG_RATIO_CLAMP), LOG_RATIO_CLAMP);
    let ratio = exp(log_ratio);
    let d_ratio = select(0.0, ratio, raw >= -LOG_RATIO_CLAMP && raw <= LOG_RATIO_CLAMP);

    let loss1 = -advantage * ratio;
    let d_loss1 = -advantage * d_ratio;
    let clipped_ratio = min(max(ratio, P.ratio_min), P.ratio_max);
    let d_clipped = select(0.0, d_ratio, ratio >= P.ratio_min && ratio <= P.ratio_max);
    let loss2 = -advantage * clipped_ratio;
    let d_loss2 = -advantage * d_clipped;
    let clip1 = max(loss1, loss2);
    let d_clip1 = d_max(loss1, loss2, d_loss1, d_loss2);
    t.clipped = loss2 > loss1;

    if P.has_dual != 0u && advantage < 0.0 {
        let loss3 = -advantage * P.dual_clip;
        t.d_pg = d_max(-loss3, -clip1, 0.0, d_clip1);
        t.pg = min(loss3, clip1);
        t.clipped_lower = clip1 > loss3;
    } else {
        t.pg = clip1;
        t.d_pg = d_clip1;
        t.clipped_lower = false;
    }

    t.kl = 0.0;
    t.d_kl = 0.0;
    if P.kl_coef != 0.0 {
        if P.kl_type == 0u {
            t.kl = logp - reference;
            t.d_kl = 1.0;
        } else if P.kl_type == 1u {
            let d = logp - reference;
            t.kl = d * d / 2.0;
            t.d_kl = d;
        } else {
            let raw_k = reference - logp;
            let x = min(max(raw_k, -LOG_RATIO_CLAMP), LOG_RATIO_CLAMP);
            let dx = select(0.0, -1.0, raw_k >= -LOG_RATIO_CLAMP && raw_k <= LOG_RATIO_CLAMP);
            let r = exp(x);
            let kld = r - x - 1.0;
            let d_kld = (r - 1.0) * dx;
            let inside = kld >= -LOW_VAR_KL_CLAMP && kld <= LOW_VAR_KL_CLAMP;
            t.kl = min(max(kld, -LOW_VAR_KL_CLAMP), LOW_VAR_KL_CLAMP);
            t.d_kl = select(0.0, d_kld, inside);
        }
    }
    t.approx_kl = -log_ratio;
    return t;
}

// Pass 1 of the fused loss: statistics, loss terms and the row's gradient coefficients.
@compute @workgroup_size(256)
fn loss_stats(inv: Invocation) {
    let lid = inv.lid;
    let r = workgroup_index(inv);
    if r >= P.rows {
        return;
    }
    let g = P.row0 + r;
    let st = checked_row_stats(r, g, lid);
    if lid != 0u {
        return;
    }
    let old_bits = old_lp[g];
    let adv_bits = adv[g];
    let w_bits = weights[g];
    let ref_bits = select(0u, ref_lp[g], P.has_ref != 0u);
    if !is_finite_bits(old_bits) {
        atomicMin(&status[ST_OLD], g);
    }
    if !is_finite_bits(adv_bits) {
        atomicMin(&status[ST_ADV], g);
    }
    if !is_finite_bits(w_bits) {
        atomicMin(&status[ST_WEIGHT], g);
    }
    if !is_finite_bits(ref_bits) {
        atomicMin(&status[ST_REF], g);
    }
    let weight = bitcast<f32>(w_bits);
    let t = token_terms(st.logp, bitcast<f32>(old_bits), bitcast<f32>(ref_bits), bitcast<f32>(adv_bits));
    let d_logp = t.d_pg + P.kl_coef * t.d_kl;
    var rec: Record;
    rec.shift = st.maxz + st.log_sum;
    rec.logp = st.logp;
    rec.entropy = st.entropy;
    rec.pg = t.pg;
    rec.kl = t.kl;
    rec.approx_kl = t.approx_kl;
    rec.a = -weight * d_logp * P.inv_temp;
    rec.b = weight * P.entropy_coef * P.inv_temp;
    rec.weight = weight;
    var flags = select(0u, FLAG_CLIPPED, t.clipped) | select(0u, FLAG_LOWER, t.clipped_lower);
    if st.bad {
        flags = flags | FLAG_BAD;
    }
    if st.bad || weight == 0.0 {
        flags = flags | FLAG_ZERO;
    }
    rec.flags = flags;
    records[g] = rec;
}

// The gradient coefficients of one row.
struct RowGrad {
    zero: bool,      // the whole row is zero (weight 0 or bad row)
    tgt: u32,
    at_target: f32,  // the target's entry, from the statistics
    a: f32,
    b: f32,
    shift: f32,
    entropy: f32,
}

fn row_grad(g: u32) -> RowGrad {
    let rec = records[g];
    var rg: RowGrad;
    rg.zero = (rec.flags & FLAG_ZERO) != 0u;
    rg.tgt = targets[g];
    // The target's entry: a · (p_y − 1) + entropy term.
    let p_y = exp_np(rec.logp);
    var entropy_term = 0.0;
    if P.entropy_coef != 0.0 {
        entropy_term = rec.b * p_y * (rec.logp + rec.entropy);
    }
    rg.at_target = rec.a * (p_y - 1.0) + entropy_term;
    rg.a = rec.a;
    rg.b = rec.b;
    rg.shift = rec.shift;
    rg.entropy = rec.entropy;
    return rg;
}

// dL/dz of one logit (raw bits `bits`, column `c`) of a row.
fn grad_elem(rg: RowGrad, c: u32, bits: u32) -> f32 {
    let lp = elem_value(bits) * P.inv_temp - rg.shift;
    let p = exp_np(lp);
    var v = rg.a * p;
    if P.entropy_coef != 0.0 {
        v = rg.a * p + rg.b * p * (lp + rg.entropy);
    }
    // A -inf logit has probability 0.
    v = select(v, 0.0, elem_class(bits) != 0u);
    v = select(v, rg.at_target, c == rg.tgt);
    return select(v, 0.0, rg.zero);
}

// Pass 2 of the fused loss: overwrites each row with dL/dlogits, one workgroup per row and one
// 32-bit word per step. A row owns the words whose first element is in it, so a packed word
// shared with the next row is written once, by this row's workgroup, with both halves.
@compute @workgroup_size(256)
fn loss_grad(inv: Invocation) {
    let lid = inv.lid;
    let r = workgroup_index(inv);
    if r >= P.rows {
        return;
    }
    let g = P.row0 + r;
    let cur = row_grad(g);
    let start = P.elem0 + r * P.vocab;
    let end = start + P.vocab;
    let has_next = EPW > 1u && g + 1u < P.total_rows;
    var next = cur;
    if has_next {
        next = row_grad(g + 1u);
    }
    let w_end = (end + EPW - 1u) / EPW;
    for (var w = (start + EPW - 1u) / EPW + lid; w < w_end; w += WG) {
        var word = logits[w];
        for (var k = 0u; k < EPW; k++) {
            let e = w * EPW + k;
            let bits = extractBits(word, k * ELEM_BITS, ELEM_BITS);
            var v = 0.0;
            if e < end {
                v = grad_elem(cur, e - start, bits);
            } else if has_next {
                v = grad_elem(next, e - end, bits);
            }
            word = insertBits(word, encode_elem(v), k * ELEM_BITS, ELEM_BITS);
        }
        logits[w] = word;
    }
}

// log softmax(z / T)[target] and the entropy of each row.
@compute @workgroup_size(256)
fn logprobs(inv: Invocation) {
    let lid = inv.lid;
    let r = workgroup_index(inv);
    if r >= P.rows {
        return;
    }
    let g = P.row0 + r;
    let st = checked_row_stats(r, g, lid);
    if lid != 0u {
        return;
    }
    if st.bad {
        atomicMin(&status[ST_ROW], g);
    }
    out_logp[g] = st.logp;
    out_entropy[g] = st.entropy;
}
