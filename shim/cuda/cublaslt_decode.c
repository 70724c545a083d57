/* cublasLtMatmul descriptor/layout decoding (see cublaslt_decode.h). Attribute numbers
 * are cuBLASLt's documented enum values (cublasLtMatrixLayoutAttribute_t,
 * cublasLtMatmulDescAttributes_t), fixed by its ABI. */
#include <string.h>
#include "cublaslt_decode.h"
#include "mc_cuda.h"

enum { LA_TYPE = 0, LA_ORDER = 1, LA_ROWS = 2, LA_COLS = 3, LA_LD = 4, LA_BATCH = 5,
       LA_STRIDE = 6 };
enum { DA_COMPUTE = 0, DA_SCALE = 1, DA_POINTER_MODE = 2, DA_TRANSA = 3, DA_TRANSB = 4 };

int mc_lt_read_layout(mc_lt_layout_get_fn get, void *layout, struct mc_lt_layout *out)
{
    memset(out, 0, sizeof *out);
    out->batch = 1;
    if (!get || !layout) return -1;
    size_t w = 0;
    uint32_t type = 0;
    uint64_t rows = 0, cols = 0;
    int64_t ld = 0, stride = 0;
    int32_t order = 0, batch = 1;
    if (get(layout, LA_TYPE, &type, sizeof type, &w) != 0) return -1;
    if (get(layout, LA_ROWS, &rows, sizeof rows, &w) != 0) return -1;
    if (get(layout, LA_COLS, &cols, sizeof cols, &w) != 0) return -1;
    if (get(layout, LA_LD, &ld, sizeof ld, &w) != 0) ld = 0;
    if (get(layout, LA_ORDER, &order, sizeof order, &w) != 0) order = 0;
    if (get(layout, LA_BATCH, &batch, sizeof batch, &w) != 0 || batch < 1) batch = 1;
    if (get(layout, LA_STRIDE, &stride, sizeof stride, &w) != 0) stride = 0;
    out->type = (int32_t)type;
    out->order = order;
    out->rows = rows;
    out->cols = cols;
    out->ld = ld;
    out->batch = batch;
    out->batch_stride = stride;
    out->valid = 1;
    return 0;
}

int mc_lt_read_desc(mc_lt_desc_get_fn get, void *desc, struct mc_lt_desc *out)
{
    memset(out, 0, sizeof *out);
    if (!get || !desc) return -1;
    size_t w = 0;
    int32_t v = 0;
    if (get(desc, DA_COMPUTE, &v, sizeof v, &w) != 0) return -1;
    out->compute_type = v;
    /* Scale type defaults to the compute type's natural scalar (cuBLASLt docs). */
    if (get(desc, DA_SCALE, &v, sizeof v, &w) == 0) out->scale_type = v;
    else out->scale_type = -1;
    out->pointer_mode = get(desc, DA_POINTER_MODE, &v, sizeof v, &w) == 0 ? v : 0;
    out->trans_a = get(desc, DA_TRANSA, &v, sizeof v, &w) == 0 ? v : 0;
    out->trans_b = get(desc, DA_TRANSB, &v, sizeof v, &w) == 0 ? v : 0;
    out->valid = 1;
    return 0;
}

int mc_lt_decode(const struct mc_lt_desc *desc, const struct mc_lt_layout *a,
                 const struct mc_lt_layout *b, const struct mc_lt_layout *c,
                 const struct mc_lt_layout *d, struct mc_rec_gemm *out)
{
    if (!a || !a->valid || !b || !b->valid) return -1;
    const struct mc_lt_layout *o = (d && d->valid) ? d : (c && c->valid) ? c : NULL;
    if (!o) return -1;
    int ta = desc && desc->valid ? desc->trans_a : 0;
    int tb = desc && desc->valid ? desc->trans_b : 0;
    /* op(A) = m x k: A is stored m x k (N) or k x m (T/C). */
    int64_t m = (int64_t)o->rows, n = (int64_t)o->cols;
    int64_t k = ta == 0 ? (int64_t)a->cols : (int64_t)a->rows;
    int64_t am = ta == 0 ? (int64_t)a->rows : (int64_t)a->cols;
    int64_t bk = tb == 0 ? (int64_t)b->rows : (int64_t)b->cols;
    int64_t bn = tb == 0 ? (int64_t)b->cols : (int64_t)b->rows;
    out->m = m;
    out->n = n;
    out->k = k;
    out->lda = a->ld;
    out->ldb = b->ld;
    out->ldc = o->ld;
    int64_t batch = o->batch;
    if (a->batch > batch) batch = a->batch;
    if (b->batch > batch) batch = b->batch;
    out->batch = batch < 1 ? 1 : batch;
    out->stride_a = a->batch_stride;
    out->stride_b = b->batch_stride;
    out->stride_c = o->batch_stride;
    out->dtype_a = (uint8_t)mc_cuda_dtype(a->type);
    out->dtype_b = (uint8_t)mc_cuda_dtype(b->type);
    out->dtype_c = (uint8_t)mc_cuda_dtype(o->type);
    out->dtype_compute = desc && desc->valid
        ? (uint8_t)mc_cublas_compute_dtype(desc->compute_type) : MC_DT_UNKNOWN;
    out->layout = o->order == 1 ? MC_LAYOUT_ROW_MAJOR : MC_LAYOUT_COL_MAJOR;
    out->trans_a = (uint8_t)mc_cublas_op(ta);
    out->trans_b = (uint8_t)mc_cublas_op(tb);
    return (am == m && bk == k && bn == n) ? 0 : 1;
}
