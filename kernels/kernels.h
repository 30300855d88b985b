/* kernels/kernels.h — the kernel interface: raw buffers, shapes and strides; no tensors, no graphs.
 *
 * Every kernel has the same shape:  void kernel(const ARGS *args, int ith, int nth)
 * The engine runs it on `nth` threads at once (ith = 0..nth-1, ith 0 is the calling thread); each call
 * does its own share of the work and must not depend on the others (no barriers). With nth = 1 a kernel
 * does everything. Buffers are of the table's dtype (float for f32 tables, double for f64 tables) except
 * where a field says int32_t. All indices and strides are in elements, row-major, int64_t.
 *
 * Outputs named "accumulate" are added to (+=), never overwritten; everything else is overwritten.
 *
 * bf16 tables (kd_kernels_ref_bf16, kd_kernels_cpu_bf16, the CUDA bf16 table) store activations in bf16
 * (kernels/bf16.h: the upper half of an IEEE f32, rounded to nearest even) and compute in f32 or wider:
 * each output element is formed from the f32 values of its inputs and rounded to bf16 once (an
 * "accumulate" output: round(f32(out) + value)). Sums over k in GEMM, over rows in reductions and in
 * the attention backward are carried in f32 or wider, never in bf16. These fields stay f32 in bf16
 * tables: LayerNorm's gamma, beta, mean, rstd, dgamma, dbeta; attention's mask and lse. bf16 tables have
 * no embedding, cross-entropy, KL or AdamW entries (NULL): those run in f32 on the f32 master weights
 * and logits.
 */
#ifndef KD_KERNELS_H
#define KD_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#define KD_KMAX_DIMS 8

/* C[b] = alpha * op(A[b]) op(B[b]) + beta * C[b] (+ bias), b = 0..batch-1.
 * op(A) is m x k (A stored m x k with row stride lda, or k x m when trans_a), op(B) is k x n.
 * beta == 0 means C is not read (garbage, NaN included, is overwritten). bias, when not NULL, holds n
 * values added to every row of C after the product.
 * b_packed, when not NULL, is op(B) (of B[0]; stride_b must be 0 or batch 1) already packed by the same
 * table's gemm_pack_b: the table's gemm reads it instead of packing B (a weight used by many products
 * packs once). b and its layout are still given: a table without a packed form reads them. */
typedef struct kd_gemm_args {
    int trans_a, trans_b;
    int64_t m, n, k, batch;
    const void *a; int64_t lda, stride_a;
    const void *b; int64_t ldb, stride_b;
    void *c;       int64_t ldc, stride_c;
    const void *bias;
    double alpha, beta;
    const void *b_packed;
} kd_gemm_args;

/* Pack op(B) (k x n: B stored k x n with row stride ldb, or n x k when trans_b) into the layout the table's
 * gemm reads from kd_gemm_args.b_packed: dst holds gemm_packed_b_size(k, n) bytes, 64-byte aligned. The
 * packed values are the ones the gemm would pack itself, so a product on packed B is bit-identical to one
 * that packs B as it goes. */
typedef struct kd_gemm_pack_args {
    int trans_b;
    int64_t k, n;
    const void *b; int64_t ldb;
    void *dst;
} kd_gemm_pack_args;

/* Element-wise maps over an n-d strided index space `shape` (broadcasting = stride 0 on an input).
 * out = f(a) or f(a, b); with accumulate, out += f(...). Outputs must not alias inputs unless their
 * strides are identical. */
typedef enum kd_unop {
    KD_UN_COPY,      /* a */
    KD_UN_SCALE,     /* alpha * a */
    KD_UN_GELU,      /* a * Phi(a), erf form */
    KD_UN_TANH,      /* tanh(a) */
    KD_UN_EXP,       /* exp(a) */
    KD_UN_LOG,       /* log(a) */
    KD_UN_NEG,       /* -a */
    KD_UN_SQUARE,    /* a * a */
    KD_UN_ADD_SCALAR, /* a + alpha */
    KD_UN_SQRT,      /* sqrt(a) */
    KD_UN_CLIP_COEF  /* gradient clipping from a = sum of squares: alpha / (sqrt(a) + 1e-6) when alpha > 0 and
                        sqrt(a) > alpha, else 1; 0 when a is NaN or Inf (the update then changes nothing) */
} kd_unop;

typedef enum kd_binop {
    KD_BIN_ADD,      /* a + b */
    KD_BIN_SUB,      /* a - b */
    KD_BIN_MUL,      /* a * b */
    KD_BIN_DIV,      /* a / b */
    KD_BIN_GELU_BWD, /* b * GELU'(a)        (a = x, b = upstream gradient) */
    KD_BIN_TANH_BWD  /* b * (1 - a * a)     (a = tanh(x), b = upstream gradient) */
} kd_binop;

typedef struct kd_map_args {
    int op;            /* kd_unop or kd_binop */
    int accumulate;
    int ndim;
    int64_t shape[KD_KMAX_DIMS];
    void *out;       int64_t out_stride[KD_KMAX_DIMS];
    const void *a;   int64_t a_stride[KD_KMAX_DIMS];
    const void *b;   int64_t b_stride[KD_KMAX_DIMS];   /* unused by unary maps */
    double alpha;
} kd_map_args;

/* Sum reduction by broadcasting the output: for every index i of `shape`, out[i . out_stride] +=
 * alpha * a[i . a_stride]; reduced dims have out_stride 0. Always accumulates (the engine zeroes out). */
typedef kd_map_args kd_reduce_args;

/* Softmax over the last dim of a rows x cols matrix (contiguous rows). log != 0: log-softmax. */
typedef struct kd_softmax_args {
    int log;
    int64_t rows, cols;
    const void *x;
    void *y;
} kd_softmax_args;

/* Backward: dx += y * (dy - sum(dy * y))          (softmax, y = softmax(x))
 *           dx += dy - exp(y) * sum(dy)            (log-softmax, y = log_softmax(x)) */
typedef struct kd_softmax_bwd_args {
    int log;
    int64_t rows, cols;
    const void *y, *dy;
    void *dx;        /* accumulate */
} kd_softmax_bwd_args;

/* LayerNorm over the last dim: y = (x - mean) * rstd * gamma + beta, rstd = 1/sqrt(var + eps), var
 * biased. mean and rstd (rows values each) are written for the backward. */
typedef struct kd_layernorm_args {
    int64_t rows, cols;
    double eps;
    const void *x, *gamma, *beta;
    void *y, *mean, *rstd;
} kd_layernorm_args;

/* dx += rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dy * gamma;  dgamma += sum_rows dy * xhat;
 * dbeta += sum_rows dy. Any of dx, dgamma, dbeta may be NULL (not wanted). A thread handles a slice of
 * rows for dx and a slice of columns for dgamma/dbeta, so no two threads write the same element. */
typedef struct kd_layernorm_bwd_args {
    int64_t rows, cols;
    const void *x, *mean, *rstd, *gamma, *dy;
    void *dx, *dgamma, *dbeta;   /* accumulate */
} kd_layernorm_bwd_args;

/* out[i, :] = table[ids[i], :]; ids are checked by the engine before the call (on the host, or by a
 * device-side check reported at the next sync). rows is the table's row count: device kernels skip an id
 * outside [0, rows) (zeros out, no gradient) rather than read past the table. */
typedef struct kd_embedding_args {
    int64_t n, dim, rows;
    const int32_t *ids;
    const void *table;
    void *out;
    void *dtable;      /* backward: dtable[ids[i], :] += dout[i, :]  (accumulate) */
    const void *dout;
} kd_embedding_args;

/* Inverted dropout: keep element i with probability 1-p, drawn from the counter-based RNG at counter
 * (offset + i) under seed (kernels/rng.h); out = keep ? x / (1-p) : 0. The backward is the same call on
 * the upstream gradient with the same seed and offset. */
typedef struct kd_dropout_args {
    int64_t n;
    double p;
    uint64_t seed, offset;
    int accumulate;
    const void *x;
    void *out;
} kd_dropout_args;

/* Scaled dot-product attention, per batch b and head h:
 *   S = scale * Q K^T + mask[b] (additive, per key; NULL for none),  P = softmax(S) (rows),
 *   P' = dropout(P) (counter-based, counter = offset + ((b*heads + h)*tq + i)*tk + j),  O = P' V.
 * Q is [batch, tq, heads, dim] addressed by strides (q_sb, q_st, q_sh; the dim stride is 1), K and V are
 * [batch, tk, heads, dim], O is [batch, tq, heads, dim]. lse[(b*heads + h)*tq + i] = logsumexp of row i of S
 * is written for the backward. A row whose keys are all masked with -inf gives O = 0. */
typedef struct kd_attention_args {
    int64_t batch, heads, tq, tk, dim;
    const void *q; int64_t q_sb, q_st, q_sh;
    const void *k; int64_t k_sb, k_st, k_sh;
    const void *v; int64_t v_sb, v_st, v_sh;
    void *o;       int64_t o_sb, o_st, o_sh;
    const void *mask; int64_t mask_sb;
    double scale, dropout_p;
    uint64_t seed, offset;
    void *lse;
    /* backward only: o and lse hold the forward's output and log-sum-exp (valid: the engine saves
     * them), do has o's strides; dq, dk, dv have q's, k's, v's strides (accumulate) */
    const void *d_o;
    void *dq, *dk, *dv;
} kd_attention_args;

/* Cross-entropy with class-index targets over rows x cols logits:
 *   forward:  loss[i] = logsumexp(z[i]) - z[i, t[i]],  lse[i] saved
 *   backward: dz[i, j] += scale * u * (softmax(z[i])[j] - [j == t[i]])
 * where u = *upstream (one value of the table's dtype, in the kernel's memory) or 1 when upstream is NULL:
 * the gradient arriving at the loss is read by the kernel, so a device never sends it to the host. */
typedef struct kd_cross_entropy_args {
    int64_t rows, cols;
    const void *logits;
    const int32_t *targets;
    void *loss, *lse;
    double scale;
    const void *upstream;
    void *dlogits;   /* accumulate */
} kd_cross_entropy_args;

/* KL divergence as PyTorch's kl_div(input = log q, target = p):
 *   forward:  out[i] = sum_j p[i,j] * (log p[i,j] - logq[i,j]), terms with p = 0 are 0
 *   backward: dlogq += s * (-p);  dp += s * (log p + 1 - logq) where p > 0 (either may be NULL),
 *             s = scale * (*upstream), or scale when upstream is NULL (as for cross-entropy) */
typedef struct kd_kl_div_args {
    int64_t rows, cols;
    const void *logq, *p;
    void *out;
    double scale;
    const void *upstream;
    void *dlogq, *dp;   /* accumulate */
} kd_kl_div_args;

/* AdamW, one step over n parameters (PyTorch's torch.optim.AdamW):
 *   param *= 1 - lr * weight_decay
 *   m = beta1 m + (1-beta1) g;  v = beta2 v + (1-beta2) g^2
 *   param -= lr * (m / bias1) / (sqrt(v / bias2) + eps),  bias1 = 1 - beta1^t, bias2 = 1 - beta2^t */
typedef struct kd_adamw_args {
    int64_t n;
    void *param;
    const void *grad;
    void *m, *v;
    double lr, beta1, beta2, eps, weight_decay, bias1, bias2;
} kd_adamw_args;

/* Conversion between f32 and bf16 over n contiguous elements; an entry of the f32 tables only.
 *   to_bf16:  y (bf16) = round(x (f32))      accumulate: y = round(f32(y) + x)
 *   else:     y (f32)  = f32(x (bf16))       accumulate: y += f32(x)
 * Rounding is to nearest, ties to even; NaN stays NaN (quiet), and values beyond bf16's range become Inf. */
typedef struct kd_convert_args {
    int64_t n;
    int to_bf16, accumulate;
    const void *x;
    void *y;
} kd_convert_args;

/* Int8 linear for inference (kernels/ref/gemm_s8_ref.c defines it; f32 tables only):
 *   C[i, j] = fma((float)S[i, j], sa[i] * sw[j], bias[j]),   S[i, j] = sum_p qa[i, p] qw[j, p]  (int32, exact)
 * qw: the s8 weights [n, k], symmetric per output channel in [-127, 127] (weight ~ sw[j] * qw[j, p]), handed
 *     over packed by the same table's gemm_s8_pack (each kernel has its own layout).
 * qa: the f32 input A [m, k] (row stride lda), quantized per row as the kernel packs it, in f32 arithmetic:
 *     sa[i] = act_scale when act_scale > 0 (static, one scale for the tensor), else max_p |A[i, p]| / 127
 *     (dynamic, per row; 1 for a row of zeros);  qa[i, p] = round_half_even(clamp(A[i, p] * (1 / sa[i]), -127, 127)).
 * Both operands stay in [-127, 127], so every fast kernel computes S exactly (kernels/cpu/gemm_s8_*.c say
 * how) and matches the reference bit for bit. A must be finite. bias may be NULL (0). */
typedef struct kd_gemm_s8_args {
    int64_t m, n, k;
    const float *a; int64_t lda;
    float act_scale;
    const void *w;            /* packed by gemm_s8_pack */
    const float *w_scale;     /* [n] */
    const float *bias;        /* [n] or NULL */
    float *c; int64_t ldc;
} kd_gemm_s8_args;

/* Pack the s8 weights w [n, k] (row-major) for gemm_s8 into dst; returns the bytes needed (dst NULL: only
 * the size). */
typedef size_t (*kd_gemm_s8_pack_fn)(int64_t n, int64_t k, const int8_t *w, void *dst);

/* Symmetric int8 quantization of rows x cols values (row stride ld), one scale per row: scale[r] =
 * max_c |x[r, c]| / 127 (1 for a row of zeros), q[r, c] = kd_quantize_s8(x[r, c], 1 / scale[r]). The
 * weights' per-channel quantization and the activations' dynamic per-row one are this function. */
void kd_quantize_s8_rows(int64_t rows, int64_t cols, const float *x, int64_t ld, int8_t *q, float *scale);
/* One value quantized with a given scale, as every gemm_s8 kernel does it. */
static inline int8_t kd_quantize_s8(float x, float inv_scale)
{
    float v = x * inv_scale;
    v = v < -127.0f ? -127.0f : v > 127.0f ? 127.0f : v;
    return (int8_t)__builtin_rintf(v);   /* the current rounding mode: to nearest, ties to even */
}

typedef struct kd_kernels {
    const char *name;   /* "ref", "avx2", "avx512", ... */
    void (*gemm)(const kd_gemm_args *, int ith, int nth);
    void (*unary)(const kd_map_args *, int ith, int nth);
    void (*binary)(const kd_map_args *, int ith, int nth);
    void (*reduce)(const kd_reduce_args *, int ith, int nth);
    void (*softmax)(const kd_softmax_args *, int ith, int nth);
    void (*softmax_bwd)(const kd_softmax_bwd_args *, int ith, int nth);
    void (*layernorm)(const kd_layernorm_args *, int ith, int nth);
    void (*layernorm_bwd)(const kd_layernorm_bwd_args *, int ith, int nth);
    void (*embedding)(const kd_embedding_args *, int ith, int nth);
    void (*embedding_bwd)(const kd_embedding_args *, int ith, int nth);
    void (*dropout)(const kd_dropout_args *, int ith, int nth);
    void (*attention)(const kd_attention_args *, int ith, int nth);
    void (*attention_bwd)(const kd_attention_args *, int ith, int nth);
    void (*cross_entropy)(const kd_cross_entropy_args *, int ith, int nth);
    void (*cross_entropy_bwd)(const kd_cross_entropy_args *, int ith, int nth);
    void (*kl_div)(const kd_kl_div_args *, int ith, int nth);
    void (*kl_div_bwd)(const kd_kl_div_args *, int ith, int nth);
    void (*adamw)(const kd_adamw_args *, int ith, int nth);
    void (*convert)(const kd_convert_args *, int ith, int nth);   /* f32 tables only */
    void (*gemm_s8)(const kd_gemm_s8_args *, int ith, int nth);    /* f32 CPU tables only */
    kd_gemm_s8_pack_fn gemm_s8_pack;                               /* its weight layout */
    /* Prepacked B (NULL in tables whose gemm has no packed form: ref, CUDA). */
    size_t (*gemm_packed_b_size)(int64_t k, int64_t n);
    void (*gemm_pack_b)(const kd_gemm_pack_args *, int ith, int nth);
} kd_kernels;

/* The reference int8 linear and its weight layout (the f32 reference table's gemm_s8 entries). */
void kd_gemm_s8_ref(const kd_gemm_s8_args *g, int ith, int nth);
size_t kd_gemm_s8_pack_ref(int64_t n, int64_t k, const int8_t *w, void *dst);

/* The scalar reference tables: the source of truth every fast kernel is tested against. */
const kd_kernels *kd_kernels_ref_f32(void);
const kd_kernels *kd_kernels_ref_f64(void);
const kd_kernels *kd_kernels_ref_bf16(void);

/* CPU features, read once from CPUID. */
typedef struct kd_cpu_features {
    int avx2, fma, avx512f, avx512bw, avx512vl, avx512dq, avx512bf16, avx512vnni;
} kd_cpu_features;
kd_cpu_features kd_cpu_detect(void);

/* The fastest f32 CPU table this machine supports: AVX-512, then AVX2+FMA, then the reference.
 * `prefer` ("ref", "avx2", "avx512" or NULL for the best) restricts the choice; a table the CPU cannot
 * run is never returned (NULL then). Entries without a fast variant point at the reference. */
const kd_kernels *kd_kernels_cpu_f32(const char *prefer);
/* The same choice for bf16 storage (the reference bf16 table when no fast one runs here). */
const kd_kernels *kd_kernels_cpu_bf16(const char *prefer);

/* Split [0, n) into nth nearly equal parts; part ith is [*lo, *hi). */
static inline void kd_split_range(int64_t n, int ith, int nth, int64_t *lo, int64_t *hi)
{
    int64_t per = n / nth, rem = n % nth;
    *lo = ith * per + (ith < rem ? ith : rem);
    *hi = *lo + per + (ith < rem ? 1 : 0);
}

#endif
