// The body of every Eigen GEMM build (gemm.cpp, simd_avx2_gemm.cpp, simd_avx512_gemm.cpp). Each includes it once,
// inside its own target region and with `Eigen` renamed to a namespace of its own, so the Eigen templates of each
// build are distinct symbols and no AVX instantiation can stand in for the plain one.
// No include guard on purpose: each build includes it once.

namespace {

using RowMajorMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using ConstView = Eigen::Map<const RowMajorMatrix, Eigen::Unaligned, Eigen::OuterStride<>>;
using View = Eigen::Map<RowMajorMatrix, Eigen::Unaligned, Eigen::OuterStride<>>;
using ColumnMajorMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::ColMajor>;
using TransposedView = Eigen::Map<ColumnMajorMatrix, Eigen::Unaligned, Eigen::OuterStride<>>;

void gemm_eigen(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb,
                bool b_transposed, float* c, int64_t ldc) {
  const ConstView lhs(a, m, k, Eigen::OuterStride<>(lda));
  if (b_transposed) {
    // Computed as Cᵀ = B·Aᵀ into C read column-major: B (a weight tile, or keys) is the packed left operand and
    // usually fits one of Eigen's row blocks, so neither operand is packed more than once per depth block (with
    // A as the left operand, Eigen re-packs B for every block of A's rows).
    const ConstView rhs(b, n, k, Eigen::OuterStride<>(ldb));
    TransposedView out_t(c, n, m, Eigen::OuterStride<>(ldc));
    out_t.noalias() = rhs * lhs.transpose();
  } else {
    View out(c, m, n, Eigen::OuterStride<>(ldc));
    const ConstView rhs(b, k, n, Eigen::OuterStride<>(ldb));
    out.noalias() = lhs * rhs;
  }
}

}  // namespace
