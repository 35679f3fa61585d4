// supo-cuda: row kernels over logits [N, V], one block of SUPO_THREADS threads per row.
//
// Pass 1 (every kernel): each thread runs an online log-sum-exp over the elements
// j = tid, tid + SUPO_THREADS, ... of the row, keeping (running max m, s = sum exp(z - m),
// sz = sum exp(z - m) * (z - m)); the per-thread states are merged in a fixed tree order, so the
// result is bit-identical from run to run. The entropy accumulator `sz` is kept relative to the
// running max, as in `supo_core::backend::kernel::row_softmax_stats`, so it does not cancel for
// logits of +-1e4.
//
// Pass 2 (`policy_rows_*`): the per-token loss terms (`supo_core::estimator::surrogate`) and
// dL/dlogits, written over the logits in place.

// Statistics of one row of logits / T (`supo_core::backend::kernel::RowStats`).
struct RowStats {
    float max;
    float log_sum;
    float logp;
    float entropy;
};

__device__ __forceinline__ bool stats_finite(const RowStats& s) {
    return is_finite_f32(s.max) && is_finite_f32(s.log_sum) && is_finite_f32(s.logp)
        && is_finite_f32(s.entropy);
}

// Online log-sum-exp state of one thread (or of a merged group of threads).
struct Lse {
    float m;
    float s;
    float sz;
};

__device__ __forceinline__ void lse_push(Lse& a, float z) {
    if (z > a.m) {
        if (a.m > neg_inf()) {
            const float delta = a.m - z;
            const float f = exp_np(delta);
            a.sz = f * (a.sz + delta * a.s);
            a.s = a.s * f;
        }
        a.m = z;
    }
    // -inf logits (masked vocabulary) add nothing; NaN is caught by the caller's flag.
    if (z > neg_inf()) {
        const float d = z - a.m;
        const float e = exp_np(d);
        a.s = a.s + e;
        a.sz = a.sz + ((e > 0.0f) ? e * d : 0.0f);
    }
}

// Merges two states; `a` is always the lower-numbered thread, which fixes the order.
__device__ __forceinline__ Lse lse_merge(const Lse& a, const Lse& b) {
    Lse r;
    r.m = fmaxf(a.m, b.m);
    r.s = 0.0f;
    r.sz = 0.0f;
    if (!(r.m > neg_inf())) {
        return r;
    }
    if (a.m > neg_inf()) {
        const float da = a.m - r.m;
        const float fa = exp_np(da);
        r.s = a.s * fa;
        r.sz = fa * (a.sz + da * a.s);
    }
    if (b.m > neg_inf()) {
        const float db = b.m - r.m;
        const float fb = exp_np(db);
        r.s = r.s + b.s * fb;
        r.sz = r.sz + fb * (b.sz + db * b.s);
    }
    return r;
}

// Softmax statistics of one row, computed by the whole block; every thread gets the result.
// A NaN or +inf logit, an all -inf row or an out-of-range target gives NaN statistics.
template <typename T>
__device__ RowStats block_row_stats(const T* row, i64 vocab, u32 target, float inv_temp) {
    __shared__ float sh_m[SUPO_THREADS];
    __shared__ float sh_s[SUPO_THREADS];
    __shared__ float sh_sz[SUPO_THREADS];
    __shared__ int sh_bad[SUPO_THREADS];
    __shared__ RowStats result;
    const int tid = threadIdx.x;
    Lse acc;
    acc.m = neg_inf();
    acc.s = 0.0f;
    acc.sz = 0.0f;
    int bad = 0;
    for (i64 j = tid; j < vocab; j += SUPO_THREADS) {
        const float z = to_f32(row[j]) * inv_temp;
        if (!(z < pos_inf())) {
            bad = 1;
        }
        lse_push(acc, z);
    }
    sh_m[tid] = acc.m;
    sh_s[tid] = acc.s;
    sh_sz[tid] = acc.sz;
    sh_bad[tid] = bad;
    __syncthreads();
    for (int stride = SUPO_THREADS / 2; stride > 0; stride >>= 1) {
        if (tid < stride) {
            Lse a;
            a.m = sh_m[tid];
            a.s = sh_s[tid];
            a.sz = sh_sz[tid];
            Lse b;
            b.m = sh_m[tid + stride];
            b.s = sh_s[tid + stride];
            b.sz = sh_sz[tid + stride];
            const Lse r = lse_merge(a, b);
            sh_m[tid] = r.m;
            sh_s[tid] = r.s;
            sh_sz[tid] = r.sz;
            sh_bad[tid] = sh_bad[tid] | sh_bad[tid + stride];
        }
        __syncthreads();
    }
    if (tid == 0) {
        RowStats st;
        if (sh_bad[0] != 0 || (i64)target >= vocab) {
            st.max = quiet_nan();
            st.log_sum = quiet_nan();
            st.logp = quiet_nan();
            st.entropy = quiet_nan();
        } else {
            const float m = sh_m[0];
            const float sum = sh_s[0];
            const float log_sum = logf(sum);
            const float picked = to_f32(row[target]) * inv_temp;
            st.max = m;
            st.log_sum = log_sum;
            st.logp = picked - m - log_sum;
            st.entropy = log_sum - sh_sz[0] / sum;
        }
        result = st;
    }
    __syncthreads();
    return result;
}

// `token_logprobs`: log softmax(logits / T)[target] and the entropy of each row; NaN for both
// when the row is not usable (the host turns that into an error).
template <typename T>
__device__ void row_stats_impl(const T* logits, i64 vocab, const u32* targets, float inv_temp,
                               float* logp, float* entropy) {
    const i64 row = blockIdx.x;
    const RowStats st = block_row_stats(logits + row * vocab, vocab, targets[row], inv_temp);
    if (threadIdx.x == 0) {
        const bool ok = stats_finite(st);
        logp[row] = ok ? st.logp : quiet_nan();
        entropy[row] = ok ? st.entropy : quiet_nan();
    }
}

#define SUPO_ROW_STATS(SUFFIX, T)                                                            \
    extern "C" __global__ void row_stats_##SUFFIX(const T* logits, i64 vocab,                \
                                                  const u32* targets, float inv_temp,        \
                                                  float* logp, float* entropy) {             \
        row_stats_impl(logits, vocab, targets, inv_temp, logp, entropy);                     \
    }
SUPO_FOR_EACH_ELEM(SUPO_ROW_STATS)

// Loss settings, laid out like `supo_core::backend::host::LossKernelParams` (nine 4-byte
// fields).
struct LossParams {
    float inv_temp;
    float ratio_min;
    float ratio_max;
    float dual_clip;
    u32 has_dual;
    float kl_coef;
    u32 kl_type; // 0 = k1, 1 = k2, 2 = low_var_kl
    float entropy_coef;
    u32 has_ref;
};

// Per-token terms (`supo_core::estimator::surrogate::TokenTerms`).
struct Terms {
    float pg;
    float d_pg;
    float kl;
    float d_kl;
    bool clipped;
    bool clipped_lower;
    float approx_kl;
};

// Derivative of max(a, b); ties split the gradient as PyTorch does.
__device__ __forceinline__ float d_max(float a, float b, float da, float db) {
    if (a > b) {
        return da;
    }
    if (a < b) {
        return db;
    }
    return (da + db) / 2.0f;
}

// `surrogate::kl_term`: a KL estimate and its derivative with respect to log pi.
__device__ __forceinline__ void kl_term(float logp, float ref_logp, u32 kl_type, float* kl,
                                        float* d_kl) {
    if (kl_type == 0) {
        *kl = logp - ref_logp;
        *d_kl = 1.0f;
    } else if (kl_type == 1) {
        const float d = logp - ref_logp;
        *kl = d * d / 2.0f;
        *d_kl = d;
    } else {
        const float clamp = 20.0f;
        const float out_clamp = 10.0f;
        const float raw = ref_logp - logp;
        const float x = fminf(fmaxf(raw, -clamp), clamp);
        const float dx = (raw >= -clamp && raw <= clamp) ? -1.0f : 0.0f;
        const float ratio = expf(x);
        const float kld = ratio - x - 1.0f;
        const float d_kld = (ratio - 1.0f) * dx;
        const bool inside = kld >= -out_clamp && kld <= out_clamp;
        *kl = fminf(fmaxf(kld, -out_clamp), out_clamp);
        *d_kl = inside ? d_kld : 0.0f;
    }
}

// `surrogate::token_terms` in f32: clipped surrogate (clip-higher, optional dual clip), KL.
__device__ __forceinline__ Terms token_terms(float logp, float old_logp, float ref_logp,
                                             float advantage, const LossParams& p) {
    const float clamp = 20.0f;
    Terms t;
    const float raw = logp - old_logp;
    const float log_ratio = fminf(fmaxf(raw, -clamp), clamp);
    const float ratio = expf(log_ratio);
    const float d_ratio = (raw >= -clamp && raw <= clamp) ? ratio : 0.0f;

    const float loss1 = -advantage * ratio;
    const float d_loss1 = -advantage * d_ratio;
    const float clipped_ratio = fminf(fmaxf(ratio, p.ratio_min), p.ratio_max);
    const float d_clipped = (ratio >= p.ratio_min && ratio <= p.ratio_max) ? d_ratio : 0.0f;
    const float loss2 = -advantage * clipped_ratio;
    const float d_loss2 = -advantage * d_clipped;
    const float clip1 = fmaxf(loss1, loss2);
    const float d_clip1 = d_max(loss1, loss2, d_loss1, d_loss2);
    t.clipped = loss2 > loss1;

    if (p.has_dual != 0 && advantage < 0.0f) {
        const float loss3 = -advantage * p.dual_clip;
        // min(loss3, clip1) = -max(-loss3, -clip1); loss3 does not depend on log pi.
        t.d_pg = d_max(-loss3, -clip1, 0.0f, d_clip1);
        t.pg = fminf(loss3, clip1);
        t.clipped_lower = clip1 > loss3;
    } else {
        t.pg = clip1;
        t.d_pg = d_clip1;
        t.clipped_lower = false;
    }

    if (p.kl_coef != 0.0f) {
        kl_term(logp, ref_logp, p.kl_type, &t.kl, &t.d_kl);
    } else {
        t.kl = 0.0f;
        t.d_kl = 0.0f;
    }
    t.approx_kl = -log_ratio;
    return t;
}

// Floats per row in the `rows_out` record the host reduces (`ROW_RECORD` in src/abi.rs):
// weight, pg, kl, entropy, approx_kl, clipped, clipped_lower, finite.
#define ROW_RECORD 8

// Fused policy loss over `gridDim.x` rows starting at token `row0`: statistics, loss terms and
// dL/dlogits in place. `logits` points at the first of these rows; the per-token inputs and
// `rows_out` are indexed by token (`row0 + blockIdx.x`).
template <typename T>
__device__ void policy_rows_impl(T* logits, i64 vocab, u64 row0, const u32* targets,
                                 const float* old_logp, const float* ref_logp,
                                 const float* advantages, const float* weights, LossParams p,
                                 float* rows_out) {
    const i64 local = blockIdx.x;
    const u64 tok = row0 + (u64)local;
    T* row = logits + local * vocab;
    const u32 target = targets[tok];
    const float weight = weights[tok];
    const RowStats st = block_row_stats(row, vocab, target, p.inv_temp);
    const bool finite = stats_finite(st);
    const float ref = (p.has_ref != 0) ? ref_logp[tok] : 0.0f;
    // Every thread evaluates the (cheap, deterministic) terms; no broadcast needed.
    const Terms terms = token_terms(st.logp, old_logp[tok], ref, advantages[tok], p);
    const int tid = threadIdx.x;
    if (tid == 0) {
        float* rec = rows_out + tok * ROW_RECORD;
        rec[0] = weight;
        rec[1] = terms.pg;
        rec[2] = terms.kl;
        rec[3] = st.entropy;
        rec[4] = terms.approx_kl;
        rec[5] = terms.clipped ? 1.0f : 0.0f;
        rec[6] = terms.clipped_lower ? 1.0f : 0.0f;
        rec[7] = finite ? 1.0f : 0.0f;
    }
    if (weight == 0.0f || !finite) {
        const T zero = from_f32<T>(0.0f);
        for (i64 j = tid; j < vocab; j += SUPO_THREADS) {
            row[j] = zero;
        }
        return;
    }
    // `kernel::row_gradient`: scale * [g * (onehot - p) + eta * p * (log p + H)] / T.
    const float g = terms.d_pg + p.kl_coef * terms.d_kl;
    const float shift = st.max + st.log_sum;
    const float a = -weight * g * p.inv_temp;
    const float b = weight * p.entropy_coef * p.inv_temp;
    const float h = st.entropy;
    const float lp_y = st.logp;
    const float p_y = exp_np(lp_y);
    const float entropy_y = (p.entropy_coef == 0.0f)
        ? 0.0f
        : weight * p.entropy_coef * p.inv_temp * p_y * (lp_y + st.entropy);
    const float target_value = a * (p_y - 1.0f) + entropy_y;
    for (i64 j = tid; j < vocab; j += SUPO_THREADS) {
        float v;
        if (j == (i64)target) {
            v = target_value;
        } else {
            const float lp = to_f32(row[j]) * p.inv_temp - shift;
            const float pj = exp_np(lp);
            // A -inf logit (masked vocabulary) has p = 0 and gets a zero gradient; without the
            // guard the entropy term would be 0 * -inf = NaN.
            v = (p.entropy_coef == 0.0f || !(pj > 0.0f)) ? a * pj : a * pj + b * pj * (lp + h);
        }
        row[j] = from_f32<T>(v);
    }
}

#define SUPO_POLICY_ROWS(SUFFIX, T)                                                          \
    extern "C" __global__ void policy_rows_##SUFFIX(                                         \
        T* logits, i64 vocab, u64 row0, const u32* targets, const float* old_logp,           \
        const float* ref_logp, const float* advantages, const float* weights, LossParams p,  \
        float* rows_out) {                                                                   \
        policy_rows_impl(logits, vocab, row0, targets, old_logp, ref_logp, advantages,       \
                         weights, p, rows_out);                                              \
    }
SUPO_FOR_EACH_ELEM(SUPO_POLICY_ROWS)
