/* Pure decoding of a cublasLtMatmul call (its matmul descriptor and four matrix layouts)
 * into an mc_rec_gemm: m n k in BLAS column-major convention (D is m x n, op(A) m x k,
 * op(B) k x n), leading dimensions, batch and strides, dtypes and transposes.
 * No CUDA headers: attribute values are passed as plain integers, so tests need no
 * toolkit library. The reader functions take the getter functions as parameters. */
#ifndef MOECAP_CUBLASLT_DECODE_H
#define MOECAP_CUBLASLT_DECODE_H

#include <stddef.h>
#include <stdint.h>
#include "moecap/trace_format.h"

struct mc_lt_layout {
    int32_t type;           /* cudaDataType_t (CUBLASLT_MATRIX_LAYOUT_TYPE) */
    int32_t order;          /* cublasLtOrder_t: 0 = COL, 1 = ROW, others = tiled */
    uint64_t rows, cols;    /* as stored */
    int64_t ld;
    int32_t batch;          /* BATCH_COUNT, default 1 */
    int64_t batch_stride;   /* STRIDED_BATCH_OFFSET, elements */
    int valid;              /* 1 when read successfully */
};

struct mc_lt_desc {
    int32_t compute_type;   /* cublasComputeType_t */
    int32_t scale_type;     /* cudaDataType_t of alpha/beta */
    int32_t pointer_mode;   /* 0 = host */
    int32_t trans_a, trans_b;  /* cublasOperation_t */
    int valid;
};

/* Fill the shape/type fields of `out` (not the header, times, pointers or stream).
 * Returns 0 when A, B and D agree (m, k, n consistent), 1 when they do not (fields are
 * still filled from D and A), -1 when a required layout is missing. */
int mc_lt_decode(const struct mc_lt_desc *desc, const struct mc_lt_layout *a,
                 const struct mc_lt_layout *b, const struct mc_lt_layout *c,
                 const struct mc_lt_layout *d, struct mc_rec_gemm *out);

/* Getter signatures of cublasLtMatrixLayoutGetAttribute / cublasLtMatmulDescGetAttribute
 * with opaque handles and int attributes (the real enums are ints). Return 0 = success. */
typedef int (*mc_lt_layout_get_fn)(void *layout, int attr, void *buf, size_t size,
                                   size_t *written);
typedef int (*mc_lt_desc_get_fn)(void *desc, int attr, void *buf, size_t size,
                                 size_t *written);

/* Read the attributes decode needs; defaults per the cuBLASLt documentation where an
 * attribute cannot be read. Return 0 on success, -1 if the handle is NULL or the basic
 * attributes failed. */
int mc_lt_read_layout(mc_lt_layout_get_fn get, void *layout, struct mc_lt_layout *out);
int mc_lt_read_desc(mc_lt_desc_get_fn get, void *desc, struct mc_lt_desc *out);

#endif
