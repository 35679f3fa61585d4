// Driver of the emulated kernels for `tests/emulated.rs`: `emu COMMAND DTYPE IN OUT` reads the
// inputs of one operation from IN, launches the kernels as `src/ops.rs` does (same arguments,
// strides and chunking) and writes the outputs to OUT. DTYPE: 0 f32, 1 f16, 2 bf16.
// `kernels.inc` (written by the test) is shim.h followed by the kernel sources.
#include "kernels.inc"

#include <cstdio>
#include <cstdlib>
#include <string>

namespace {

struct Reader {
    FILE* f;
    template <class T> T one() {
        T v;
        if (fread(&v, sizeof v, 1, f) != 1) {
            perror("read");
            exit(1);
        }
        return v;
    }
    template <class T> std::vector<T> many(size_t n) {
        std::vector<T> v(n);
        if (n != 0 && fread(v.data(), sizeof(T), n, f) != n) {
            perror("read");
            exit(1);
        }
        return v;
    }
};

template <class T> void put(FILE* f, const std::vector<T>& v) {
    fwrite(v.data(), sizeof(T), v.size(), f);
}

// The per-token inputs of the fused losses, in file order.
struct Tokens {
    std::vector<u32> targets;
    std::vector<float> old, ref, adv, weights;
    Tokens(Reader& r, i64 n)
        : targets(r.many<u32>(n)), old(r.many<float>(n)), ref(r.many<float>(n)),
          adv(r.many<float>(n)), weights(r.many<float>(n)) {}
};

// Tiles of the matmul grid: (columns, rows) of 64.
unsigned tiles(i64 x) { return (unsigned)((x + 63) / 64); }

template <class T>
using PolicyRows = void (*)(T*, i64, u64, const u32*, const float*, const float*, const float*,
                            const float*, LossParams, float*);

// `policy_loss`: one block per row, in place.
template <class T> void policy(Reader& r, FILE* out, PolicyRows<T> kernel) {
    const i64 n = r.one<i64>(), v = r.one<i64>();
    const LossParams p = r.one<LossParams>();
    auto logits = r.many<T>(n * v);
    const Tokens t(r, n);
    std::vector<float> rows(n * 8);
    launch(n, 1, [&] {
        kernel(logits.data(), v, 0, t.targets.data(), t.old.data(), t.ref.data(), t.adv.data(),
               t.weights.data(), p, rows.data());
    });
    put(out, logits);
    put(out, rows);
}

// `token_logprobs`.
template <class T>
void stats(Reader& r, FILE* out, void (*kernel)(const T*, i64, const u32*, float, float*, float*)) {
    const i64 n = r.one<i64>(), v = r.one<i64>();
    const float inv_temp = r.one<float>();
    auto logits = r.many<T>(n * v);
    auto targets = r.many<u32>(n);
    std::vector<float> lp(n), h(n);
    launch(n, 1, [&] { kernel(logits.data(), v, targets.data(), inv_temp, lp.data(), h.data()); });
    put(out, lp);
    put(out, h);
}

template <class TA, class TB>
using Gemm = void (*)(i64, i64, i64, const TA*, i64, i64, const TB*, i64, i64, float*, i64, int);

// `linear_policy_loss`: the chunk loop of src/ops.rs.
template <class T>
void linear(Reader& r, FILE* out, Gemm<T, T> gemm_tt, Gemm<float, T> gemm_ft) {
    const i64 n = r.one<i64>(), d = r.one<i64>(), v = r.one<i64>(), chunk = r.one<i64>();
    const LossParams p = r.one<LossParams>();
    auto hidden = r.many<T>(n * d);
    auto weight = r.many<T>(v * d);
    const Tokens t(r, n);
    std::vector<float> gh(n * d), gw(v * d), rows(n * 8);
    std::vector<float> logits((chunk < n ? chunk : n) * v);
    for (i64 start = 0; start < n; start += chunk) {
        const i64 c = chunk < n - start ? chunk : n - start;
        const T* h = hidden.data() + start * d;
        // z = h . W^T
        launch(tiles(v), tiles(c), [&] {
            gemm_tt(c, v, d, h, d, 1, weight.data(), 1, d, logits.data(), v, 0);
        });
        launch(c, 1, [&] {
            policy_rows_f32(logits.data(), v, start, t.targets.data(), t.old.data(),
                            t.ref.data(), t.adv.data(), t.weights.data(), p, rows.data());
        });
        // dH = G . W
        launch(tiles(d), tiles(c), [&] {
            gemm_ft(c, d, v, logits.data(), v, 1, weight.data(), d, 1, gh.data() + start * d, d,
                    0);
        });
        // dW += G^T . h
        launch(tiles(d), tiles(v), [&] {
            gemm_ft(v, d, c, logits.data(), 1, v, h, d, 1, gw.data(), d, 1);
        });
    }
    put(out, gh);
    put(out, gw);
    put(out, rows);
}

// `group_advantages`, then `scatter_to_tokens` of the result (checked here).
int advantages(Reader& r, FILE* out) {
    const u32 n = r.one<u32>();
    const int norm = r.one<int>();
    const float eps = r.one<float>();
    const int masked_in_stats = r.one<int>();
    auto rewards = r.many<float>(n);
    auto groups = r.many<u32>(n);
    auto masked = r.many<u32>(n);
    u32 n_groups = 0;
    for (u32 g : groups) n_groups = g + 1 > n_groups ? g + 1 : n_groups;
    std::vector<float> mean(n_groups), sd(n_groups), adv(n);
    launch((n_groups + 255) / 256, 1, [&] {
        group_stats(rewards.data(), groups.data(), masked.data(), n, n_groups, masked_in_stats,
                    mean.data(), sd.data());
    });
    launch((n + 255) / 256, 1, [&] {
        apply_group_advantages(rewards.data(), groups.data(), masked.data(), n, masked_in_stats,
                               norm, eps, mean.data(), sd.data(), adv.data());
    });
    std::vector<u32> index(3 * n);
    for (u32 i = 0; i < 3 * n; ++i) index[i] = (i * 7) % n;
    std::vector<float> tokens(3 * n);
    launch(1, 1, [&] { scatter_to_tokens(adv.data(), index.data(), 3 * n, tokens.data()); });
    for (u32 i = 0; i < 3 * n; ++i) {
        if (tokens[i] != adv[index[i]]) {
            fprintf(stderr, "scatter_to_tokens: token %u wrong\n", i);
            return 3;
        }
    }
    put(out, adv);
    return 0;
}

u64 smallest(const std::vector<u64>& v) {
    u64 best = ~0ull;
    for (u64 x : v) best = x < best ? x : best;
    return best;
}

// The validation kernels on inputs with known answers.
int checks() {
    std::vector<float> x(5000, 1.0f);
    x[4321] = NAN;
    x[4999] = INFINITY;
    std::vector<u64> o1(3);
    launch(3, 1, [&] { first_nonfinite_f32(x.data(), x.size(), o1.data()); });
    std::vector<u32> ids(3000, 2);
    ids[2500] = 9;
    ids[77] = 10;
    std::vector<u64> o2(2);
    launch(2, 1, [&] { first_out_of_range_u32(ids.data(), ids.size(), 9, o2.data()); });
    std::vector<bf16_t> hb(10);
    for (auto& h : hb) h.bits = 0x3f80;
    hb[6].bits = 0x7f80;
    std::vector<u64> o3(1);
    launch(1, 1, [&] { first_nonfinite_bf16(hb.data(), hb.size(), o3.data()); });
    std::vector<float> clean(300, 2.0f);
    std::vector<u64> o4(2);
    launch(2, 1, [&] { first_nonfinite_f32(clean.data(), clean.size(), o4.data()); });
    const bool ok = smallest(o1) == 4321 && smallest(o2) == 77 && smallest(o3) == 6 &&
                    smallest(o4) == ~0ull;
    if (!ok) fprintf(stderr, "validation kernels: wrong first index\n");
    return ok ? 0 : 4;
}

} // namespace

int main(int argc, char** argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: emu COMMAND DTYPE IN OUT\n");
        return 2;
    }
    const std::string cmd = argv[1];
    const int dt = atoi(argv[2]);
    Reader r{fopen(argv[3], "rb")};
    FILE* out = fopen(argv[4], "wb");
    if (r.f == nullptr || out == nullptr) {
        perror("open");
        return 2;
    }
    int rc = 0;
    if (cmd == "policy") {
        if (dt == 0) policy<float>(r, out, policy_rows_f32);
        if (dt == 1) policy<f16_t>(r, out, policy_rows_f16);
        if (dt == 2) policy<bf16_t>(r, out, policy_rows_bf16);
    } else if (cmd == "stats") {
        if (dt == 0) stats<float>(r, out, row_stats_f32);
        if (dt == 1) stats<f16_t>(r, out, row_stats_f16);
        if (dt == 2) stats<bf16_t>(r, out, row_stats_bf16);
    } else if (cmd == "linear") {
        if (dt == 0) linear<float>(r, out, gemm_f32_f32, gemm_f32_f32);
        if (dt == 1) linear<f16_t>(r, out, gemm_f16_f16, gemm_f32_f16);
        if (dt == 2) linear<bf16_t>(r, out, gemm_bf16_bf16, gemm_f32_bf16);
    } else if (cmd == "adv") {
        rc = advantages(r, out);
    } else if (cmd == "check") {
        rc = checks();
    } else {
        fprintf(stderr, "unknown command %s\n", cmd.c_str());
        rc = 2;
    }
    fclose(out);
    fclose(r.f);
    return rc;
}
