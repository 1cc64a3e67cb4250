// Native CPU kernels of qsim's statevector simulator, called from JAX through the XLA FFI
// (qsim/native.py compiles this file on first use and registers the handlers).
//
// The state is held as real planes x (P, N), N = 2**n: P = 2 (real part, imaginary part) or P = 1
// (a real state). A dense block on k = 1..5 wires is a real matrix m (Q, D, D), D = 2**k: Q = 2
// (real part, imaginary part; needs P = 2) or Q = 1 (a real matrix, applied to every plane). The
// attribute `bits` names, for each bit of the matrix index from the most significant, the bit of
// the state index it acts on (wire w of n is bit n - 1 - w). Wires may sit anywhere: one pass over
// the state, no transposes.
//
//   qsim_apply_{f32,f64}(x, m) -> y = m x                       (may alias x)
//   qsim_adjoint_{f32,f64}(psi, lam, m) -> (m^dagger psi, m^dagger lam, g)
//       one pass of the adjoint method: uncompute the state, pull the cotangent back, and
//       g = d<lam, m psi_in>/dm (the real gradient of the real matrix components), accumulated
//       in double per chunk and summed in a fixed order (deterministic).
//
// Every block runs in "lane form" (see Lanes below): full-width SIMD multiply-adds whichever wires
// it acts on, the lowest ones included. Work is split into chunks run on XLA's intra-op thread
// pool (the calling thread takes chunks too, so it never waits on a busy pool).

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

template <typename T> struct VecOf;
template <> struct VecOf<double> { typedef double V __attribute__((vector_size(32))); };
template <> struct VecOf<float> { typedef float V __attribute__((vector_size(32))); };
template <typename T> constexpr int kLanes = 32 / sizeof(T);
template <typename T> constexpr int kLaneBits = sizeof(T) == 8 ? 2 : 3;

template <typename V, typename T> inline V load(const T* p) { V v; std::memcpy(&v, p, sizeof(V)); return v; }
template <typename V, typename T> inline void store(T* p, const V& v) { std::memcpy(p, &v, sizeof(V)); }
template <typename V, typename T> inline V bcast(T a) { return V{} + a; }

struct Layout {
  int k = 0;
  int sorted[5] = {0, 0, 0, 0, 0};   // target bits, ascending
  // the i-th base index: i with a zero inserted at every target bit
  inline int64_t base(int64_t i) const {
    for (int j = 0; j < k; ++j) {
      const int s = sorted[j];
      i = ((i >> s) << (s + 1)) | (i & ((int64_t(1) << s) - 1));
    }
    return i;
  }
};

// ---------------------------------------------------------------------------------------------
// parallel loop on XLA's thread pool
// ---------------------------------------------------------------------------------------------
template <typename Pool, typename F>
void parallel_chunks(Pool& pool, int64_t nchunks, F& body) {
  const int64_t nt = pool.num_threads();
  if (nt <= 1 || nchunks <= 1) {
    for (int64_t c = 0; c < nchunks; ++c) body(c);
    return;
  }
  struct State { std::atomic<int64_t> next{0}, done{0}; };
  auto st = std::make_shared<State>();
  // a helper that starts after all chunks were taken returns without touching `body`
  auto work = [st, nchunks, &body]() {
    for (int64_t c; (c = st->next.fetch_add(1)) < nchunks;) {
      body(c);
      st->done.fetch_add(1);
    }
  };
  const int64_t helpers = std::min<int64_t>(nt, nchunks - 1);
  for (int64_t h = 0; h < helpers; ++h) pool.Schedule(decltype(work)(work));
  work();
  while (st->done.load() < nchunks) std::this_thread::yield();
}

template <typename Pool>
inline int64_t num_chunks(Pool& pool, int64_t items, int64_t grain) {
  const int64_t nt = std::max<int64_t>(1, pool.num_threads());
  return std::max<int64_t>(1, std::min<int64_t>(items / grain, 4 * nt));
}

// ---------------------------------------------------------------------------------------------
// the block in lane form
//
// A vector holds W consecutive amplitudes: its lanes are the state's lowest log2(W) bits. The
// block's wires split into "high" ones (bit >= log2(W)), whose DH = 2**kh combinations are DH
// vectors at offsets off[ch], and "low" ones inside the lanes. With PL = 2**kl lane permutations
// (lane l -> l ^ px[j], px[j] ranging over the subsets of the low bits) the block is
//     out[rh] = sum_{ch, j} E[rh][ch][j] * perm_j(in[ch])        (lane-wise products)
// with E[rh][ch][j][l] = A[row(rh, l), col(ch, l ^ px[j])]: the same D*D products per amplitude
// as the plain matrix, all of them full-width vector FMAs, whatever wires the block acts on.
// ---------------------------------------------------------------------------------------------
template <typename T>
struct Lanes {
  using V = typename VecOf<T>::V;
  static constexpr int W = kLanes<T>;
  int k = 0, DH = 1, PL = 1, lm = 0;
  int px[8] = {0};
  int idx[32][8];            // matrix index of (high combination, lane bits)
  int64_t off[32] = {0};     // state offset of each high combination
  Layout L;                  // high bits only: base(g * W) is the g-th group's first index
  std::vector<V> er, ei;     // E, real and imaginary parts, [(rh * DH + ch) * PL + j]

  Lanes(const int64_t* bits, int k_) : k(k_) {
    int kh = 0;
    for (int j = 0; j < k; ++j) {
      if (bits[j] >= kLaneBits<T>) L.sorted[kh++] = static_cast<int>(bits[j]);
      else lm |= 1 << bits[j];
    }
    L.k = kh;
    std::sort(L.sorted, L.sorted + kh);
    DH = 1 << kh;
    PL = 1 << (k - kh);
    for (int j = 0, s = 0; s < PL; ++s) {   // deposit s into the bits of lm
      int v = 0, t = s;
      for (int b = 0; b < kLaneBits<T>; ++b)
        if ((lm >> b) & 1) { v |= (t & 1) << b; t >>= 1; }
      px[j++] = v;
    }
    for (int c = 0; c < (1 << k); ++c) {
      int ch = 0, lane = 0;
      int64_t o = 0;
      for (int j = 0; j < k; ++j) {
        const int bit = (c >> (k - 1 - j)) & 1;
        if (bits[j] >= kLaneBits<T>) { ch = (ch << 1) | bit; o |= int64_t(bit) << bits[j]; }
        else lane |= bit << bits[j];
      }
      idx[ch][lane] = c;
      off[ch] = o;
    }
  }

  // E for the matrix m (Q = 1: real; Q = 2: planar) or, with dagger, for its conjugate transpose
  void expand(const T* m, int Q, bool dagger) {
    const int D = 1 << k;
    er.assign(DH * DH * PL, V{});
    ei.assign(Q == 2 ? DH * DH * PL : 0, V{});
    for (int rh = 0; rh < DH; ++rh)
      for (int ch = 0; ch < DH; ++ch)
        for (int j = 0; j < PL; ++j)
          for (int l = 0; l < W; ++l) {
            const int r = idx[rh][l & lm], c = idx[ch][(l ^ px[j]) & lm];
            const int e = dagger ? c * D + r : r * D + c;
            er[(rh * DH + ch) * PL + j][l] = m[e];
            if (Q == 2) ei[(rh * DH + ch) * PL + j][l] = dagger ? -m[D * D + e] : m[D * D + e];
          }
  }
};

template <int X, typename V>
inline V xperm_(const V& v) {
  using I = decltype(v < v);
  constexpr int W = sizeof(V) / sizeof(v[0]);
  I mask;
  for (int l = 0; l < W; ++l) mask[l] = l ^ X;
  return __builtin_shuffle(v, mask);
}

// lanes l -> l ^ x
template <typename V>
inline V xperm(const V& v, int x) {
  switch (x) {
    case 0: return v;
    case 1: return xperm_<1>(v);
    case 2: return xperm_<2>(v);
    case 3: return xperm_<3>(v);
    case 4: return xperm_<4>(v);
    case 5: return xperm_<5>(v);
    case 6: return xperm_<6>(v);
    default: return xperm_<7>(v);
  }
}

// ---------------------------------------------------------------------------------------------
// forward: y = m x
// ---------------------------------------------------------------------------------------------
template <typename T, int DH, int PL>
void fwd_c(const T* xr, const T* xi, T* yr, T* yi, const Lanes<T>& E, int64_t g0, int64_t g1) {
  using V = typename VecOf<T>::V;
  constexpr int W = kLanes<T>;
  constexpr int RT = DH < 4 ? DH : 4;
  const V* er = E.er.data();
  const V* ei = E.ei.data();
  for (int64_t g = g0; g < g1; ++g) {
    const int64_t b = E.L.base(g * W);
    V ar[DH][PL], ai[DH][PL];
    for (int ch = 0; ch < DH; ++ch) {
      const V a = load<V>(xr + b + E.off[ch]), e = load<V>(xi + b + E.off[ch]);
      for (int j = 0; j < PL; ++j) {
        ar[ch][j] = PL == 1 ? a : xperm(a, E.px[j]);
        ai[ch][j] = PL == 1 ? e : xperm(e, E.px[j]);
      }
    }
    for (int r0 = 0; r0 < DH; r0 += RT) {
      V sr[RT], si[RT];
      for (int t = 0; t < RT; ++t) { sr[t] = V{}; si[t] = V{}; }
      for (int ch = 0; ch < DH; ++ch)
        for (int j = 0; j < PL; ++j)
          for (int t = 0; t < RT; ++t) {
            const V u = er[((r0 + t) * DH + ch) * PL + j], w = ei[((r0 + t) * DH + ch) * PL + j];
            sr[t] += u * ar[ch][j];
            si[t] += u * ai[ch][j];
            sr[t] -= w * ai[ch][j];
            si[t] += w * ar[ch][j];
          }
      for (int t = 0; t < RT; ++t) {
        store(yr + b + E.off[r0 + t], sr[t]);
        store(yi + b + E.off[r0 + t], si[t]);
      }
    }
  }
}

// a real matrix on one plane
template <typename T, int DH, int PL>
void fwd_r(const T* x, T* y, const Lanes<T>& E, int64_t g0, int64_t g1) {
  using V = typename VecOf<T>::V;
  constexpr int W = kLanes<T>;
  constexpr int RT = DH < 8 ? DH : 8;
  const V* er = E.er.data();
  for (int64_t g = g0; g < g1; ++g) {
    const int64_t b = E.L.base(g * W);
    V a[DH][PL];
    for (int ch = 0; ch < DH; ++ch) {
      const V v = load<V>(x + b + E.off[ch]);
      for (int j = 0; j < PL; ++j) a[ch][j] = PL == 1 ? v : xperm(v, E.px[j]);
    }
    for (int r0 = 0; r0 < DH; r0 += RT) {
      V s[RT];
      for (int t = 0; t < RT; ++t) s[t] = V{};
      for (int ch = 0; ch < DH; ++ch)
        for (int j = 0; j < PL; ++j)
          for (int t = 0; t < RT; ++t) s[t] += er[((r0 + t) * DH + ch) * PL + j] * a[ch][j];
      for (int t = 0; t < RT; ++t) store(y + b + E.off[r0 + t], s[t]);
    }
  }
}

template <typename T, int DH, int PL, typename Pool>
void forward(Pool& pool, const T* x, T* y, int64_t P, int64_t N, const T* m, int64_t Q,
             const Lanes<T>& E) {
  constexpr int W = kLanes<T>;
  const int64_t groups = N / W / DH;
  const int64_t nch = num_chunks(pool, groups, 2048 / (DH * PL));
  auto body = [&](int64_t ch) {
    const int64_t g0 = groups * ch / nch, g1 = groups * (ch + 1) / nch;
    if (Q == 2) fwd_c<T, DH, PL>(x, x + N, y, y + N, E, g0, g1);
    else for (int64_t p = 0; p < P; ++p) fwd_r<T, DH, PL>(x + p * N, y + p * N, E, g0, g1);
  };
  parallel_chunks(pool, nch, body);
}

// ---------------------------------------------------------------------------------------------
// adjoint: q = m^dagger psi, k = m^dagger lam, g = d<lam, m q>/dm
// ---------------------------------------------------------------------------------------------
// F: the dagger's lane form. Gradient lanes accumulate in ga (T, flushed every FLUSH groups into
// gd, double) in E's layout: ga[(rh * DH + ch) * PL + j][l] belongs to m[row(rh, l), col(ch, l ^ px[j])].
template <typename T, int DH, int PL>
void adj_c(const T* pr, const T* pi, const T* lr, const T* li, T* qr, T* qi, T* kr, T* ki,
           const Lanes<T>& F, int64_t g0, int64_t g1, typename VecOf<T>::V* ga, double* gd) {
  using V = typename VecOf<T>::V;
  constexpr int W = kLanes<T>;
  constexpr int NG = DH * DH * PL;
  constexpr int64_t FLUSH = 32;
  const V* er = F.er.data();
  const V* ei = F.ei.data();
  V* gr = ga;
  V* gi = ga + NG;
  for (int64_t s0 = g0; s0 < g1; s0 += FLUSH) {
    for (int j = 0; j < 2 * NG; ++j) ga[j] = V{};
    for (int64_t g = s0; g < std::min(g1, s0 + FLUSH); ++g) {
      const int64_t b = F.L.base(g * W);
      V ar[DH][PL], ai[DH][PL], br[DH][PL], bi[DH][PL], xr[DH], xi[DH];
      for (int h = 0; h < DH; ++h) {
        const V a = load<V>(pr + b + F.off[h]), e = load<V>(pi + b + F.off[h]);
        const V c = load<V>(lr + b + F.off[h]), d = load<V>(li + b + F.off[h]);
        for (int j = 0; j < PL; ++j) {
          ar[h][j] = PL == 1 ? a : xperm(a, F.px[j]);
          ai[h][j] = PL == 1 ? e : xperm(e, F.px[j]);
          br[h][j] = PL == 1 ? c : xperm(c, F.px[j]);
          bi[h][j] = PL == 1 ? d : xperm(d, F.px[j]);
        }
      }
      for (int ch = 0; ch < DH; ++ch) {
        V sr = V{}, si = V{}, tr = V{}, ti = V{};
        for (int rh = 0; rh < DH; ++rh)
          for (int j = 0; j < PL; ++j) {
            const V u = er[(ch * DH + rh) * PL + j], w = ei[(ch * DH + rh) * PL + j];
            sr += u * ar[rh][j]; sr -= w * ai[rh][j];
            si += u * ai[rh][j]; si += w * ar[rh][j];
            tr += u * br[rh][j]; tr -= w * bi[rh][j];
            ti += u * bi[rh][j]; ti += w * br[rh][j];
          }
        store(qr + b + F.off[ch], sr); store(qi + b + F.off[ch], si);
        store(kr + b + F.off[ch], tr); store(ki + b + F.off[ch], ti);
        xr[ch] = sr; xi[ch] = si;
      }
      // g[r, c] += lam[r] * q[c]: lane l of lam[rh] (unpermuted) with lane l ^ px[j] of q[ch]
      for (int ch = 0; ch < DH; ++ch)
        for (int j = 0; j < PL; ++j) {
          const V a = PL == 1 ? xr[ch] : xperm(xr[ch], F.px[j]);
          const V e = PL == 1 ? xi[ch] : xperm(xi[ch], F.px[j]);
          for (int rh = 0; rh < DH; ++rh) {
            const V c = br[rh][0], d = bi[rh][0];
            V& u = gr[(rh * DH + ch) * PL + j];
            V& w = gi[(rh * DH + ch) * PL + j];
            u += c * a; u += d * e;
            w += d * a; w -= c * e;
          }
        }
    }
    for (int j = 0; j < 2 * NG; ++j)
      for (int l = 0; l < W; ++l) gd[j * W + l] += ga[j][l];
  }
}

template <typename T, int DH, int PL>
void adj_r(const T* p, const T* l, T* q, T* k, const Lanes<T>& F, int64_t g0, int64_t g1,
           typename VecOf<T>::V* ga, double* gd) {
  using V = typename VecOf<T>::V;
  constexpr int W = kLanes<T>;
  constexpr int NG = DH * DH * PL;
  constexpr int64_t FLUSH = 32;
  const V* er = F.er.data();
  for (int64_t s0 = g0; s0 < g1; s0 += FLUSH) {
    for (int j = 0; j < NG; ++j) ga[j] = V{};
    for (int64_t g = s0; g < std::min(g1, s0 + FLUSH); ++g) {
      const int64_t b = F.L.base(g * W);
      V a[DH][PL], c[DH][PL], x[DH];
      for (int h = 0; h < DH; ++h) {
        const V u = load<V>(p + b + F.off[h]), w = load<V>(l + b + F.off[h]);
        for (int j = 0; j < PL; ++j) {
          a[h][j] = PL == 1 ? u : xperm(u, F.px[j]);
          c[h][j] = PL == 1 ? w : xperm(w, F.px[j]);
        }
      }
      for (int ch = 0; ch < DH; ++ch) {
        V s = V{}, t = V{};
        for (int rh = 0; rh < DH; ++rh)
          for (int j = 0; j < PL; ++j) {
            s += er[(ch * DH + rh) * PL + j] * a[rh][j];
            t += er[(ch * DH + rh) * PL + j] * c[rh][j];
          }
        store(q + b + F.off[ch], s);
        store(k + b + F.off[ch], t);
        x[ch] = s;
      }
      for (int ch = 0; ch < DH; ++ch)
        for (int j = 0; j < PL; ++j) {
          const V xa = PL == 1 ? x[ch] : xperm(x[ch], F.px[j]);
          for (int rh = 0; rh < DH; ++rh) ga[(rh * DH + ch) * PL + j] += c[rh][0] * xa;
        }
    }
    for (int j = 0; j < NG; ++j)
      for (int i = 0; i < W; ++i) gd[j * W + i] += ga[j][i];
  }
}

template <typename T, int DH, int PL, typename Pool>
void adjoint(Pool& pool, const T* psi, const T* lam, T* q, T* k, int64_t P, int64_t N, int64_t Q,
             const Lanes<T>& F, T* gout) {
  using V = typename VecOf<T>::V;
  constexpr int W = kLanes<T>;
  constexpr int NG = DH * DH * PL;
  const int64_t groups = N / W / DH;
  const int64_t nch = num_chunks(pool, groups, 1024 / (DH * PL));
  std::vector<double> gd(nch * Q * NG * W, 0.0);
  auto body = [&](int64_t ch) {
    std::vector<V> ga(Q * NG);
    double* g = gd.data() + ch * Q * NG * W;
    const int64_t g0 = groups * ch / nch, g1 = groups * (ch + 1) / nch;
    if (Q == 2) adj_c<T, DH, PL>(psi, psi + N, lam, lam + N, q, q + N, k, k + N, F, g0, g1, ga.data(), g);
    else for (int64_t p = 0; p < P; ++p)
      adj_r<T, DH, PL>(psi + p * N, lam + p * N, q + p * N, k + p * N, F, g0, g1, ga.data(), g);
  };
  parallel_chunks(pool, nch, body);
  // back from lane form, chunks summed in a fixed order
  const int D = DH * PL;
  std::vector<double> acc(Q * D * D, 0.0);
  for (int64_t ch = 0; ch < nch; ++ch)
    for (int64_t qq = 0; qq < Q; ++qq)
      for (int rh = 0; rh < DH; ++rh)
        for (int c2 = 0; c2 < DH; ++c2)
          for (int j = 0; j < PL; ++j)
            for (int l = 0; l < W; ++l) {
              const int r = F.idx[rh][l & F.lm], c = F.idx[c2][(l ^ F.px[j]) & F.lm];
              acc[qq * D * D + r * D + c] += gd[((ch * Q + qq) * NG + (rh * DH + c2) * PL + j) * W + l];
            }
  for (int j = 0; j < Q * D * D; ++j) gout[j] = static_cast<T>(acc[j]);
}

// the (DH, PL) instantiation for a block with kh high and kl low wires
template <typename T, typename Fn>
void dispatch(int kh, int kl, Fn&& fn) {
#define QSIM_CASE(H, L) if (kh == H && kl == L) return fn(std::integral_constant<int, (1 << H)>{}, \
                                                          std::integral_constant<int, (1 << L)>{});
  QSIM_CASE(1, 0) QSIM_CASE(2, 0) QSIM_CASE(3, 0) QSIM_CASE(4, 0) QSIM_CASE(5, 0)
  QSIM_CASE(0, 1) QSIM_CASE(1, 1) QSIM_CASE(2, 1) QSIM_CASE(3, 1) QSIM_CASE(4, 1)
  QSIM_CASE(0, 2) QSIM_CASE(1, 2) QSIM_CASE(2, 2) QSIM_CASE(3, 2)
  if constexpr (kLaneBits<T> == 3) {
    QSIM_CASE(0, 3) QSIM_CASE(1, 3) QSIM_CASE(2, 3)
  }
#undef QSIM_CASE
}

// ---------------------------------------------------------------------------------------------
// FFI handlers
// ---------------------------------------------------------------------------------------------
template <typename T>
ffi::Error check(ffi::Span<const int64_t> xdims, ffi::Span<const int64_t> mdims,
                 ffi::Span<const int64_t> bits, int& k_out, int64_t& P, int64_t& N, int64_t& Q, int& n) {
  if (xdims.size() != 2 || mdims.size() != 3)
    return ffi::Error::InvalidArgument("qsim native: state must be (P, N) and matrix (Q, D, D)");
  P = xdims[0]; N = xdims[1]; Q = mdims[0];
  const int64_t k = static_cast<int64_t>(bits.size());
  if (k < 1 || k > 5) return ffi::Error::InvalidArgument("qsim native: a block acts on 1 to 5 wires");
  const int64_t D = int64_t(1) << k;
  if (mdims[1] != D || mdims[2] != D)
    return ffi::Error::InvalidArgument("qsim native: matrix size does not match the number of wires");
  if (N < 1 || (N & (N - 1)) != 0) return ffi::Error::InvalidArgument("qsim native: N is not a power of 2");
  n = 0;
  while ((int64_t(1) << n) < N) ++n;
  if (n < kLaneBits<T>) return ffi::Error::InvalidArgument("qsim native: too few qubits");
  if (!(P == 1 || P == 2) || !(Q == 1 || Q == 2) || (Q == 2 && P != 2))
    return ffi::Error::InvalidArgument("qsim native: bad number of planes");
  k_out = static_cast<int>(k);
  for (int64_t j = 0; j < k; ++j) {
    if (bits[j] < 0 || bits[j] >= n) return ffi::Error::InvalidArgument("qsim native: bit out of range");
    for (int64_t i = 0; i < j; ++i)
      if (bits[i] == bits[j]) return ffi::Error::InvalidArgument("qsim native: repeated bit");
  }
  return ffi::Error::Success();
}

template <ffi::DataType DT>
ffi::Error ApplyImpl(ffi::ThreadPool pool, ffi::Buffer<DT> x, ffi::Buffer<DT> m, ffi::ResultBuffer<DT> y,
                     ffi::Span<const int64_t> bits) {
  using T = ffi::NativeType<DT>;
  int64_t P, N, Q;
  int n, k;
  if (auto err = check<T>(x.dimensions(), m.dimensions(), bits, k, P, N, Q, n); err.failure()) return err;
  Lanes<T> E(bits.begin(), k);
  E.expand(m.typed_data(), static_cast<int>(Q), false);
  const T* xp = x.typed_data();
  T* yp = y->typed_data();
  dispatch<T>(E.L.k, k - E.L.k, [&](auto dh, auto pl) {
    forward<T, decltype(dh)::value, decltype(pl)::value>(pool, xp, yp, P, N, m.typed_data(), Q, E);
  });
  return ffi::Error::Success();
}

template <ffi::DataType DT>
ffi::Error AdjointImpl(ffi::ThreadPool pool, ffi::Buffer<DT> psi, ffi::Buffer<DT> lam, ffi::Buffer<DT> m,
                       ffi::ResultBuffer<DT> q, ffi::ResultBuffer<DT> lam_in, ffi::ResultBuffer<DT> g,
                       ffi::Span<const int64_t> bits) {
  using T = ffi::NativeType<DT>;
  int64_t P, N, Q;
  int n, k;
  if (auto err = check<T>(psi.dimensions(), m.dimensions(), bits, k, P, N, Q, n); err.failure()) return err;
  Lanes<T> F(bits.begin(), k);
  F.expand(m.typed_data(), static_cast<int>(Q), true);
  dispatch<T>(F.L.k, k - F.L.k, [&](auto dh, auto pl) {
    adjoint<T, decltype(dh)::value, decltype(pl)::value>(pool, psi.typed_data(), lam.typed_data(),
                                                         q->typed_data(), lam_in->typed_data(), P, N, Q, F,
                                                         g->typed_data());
  });
  return ffi::Error::Success();
}

}  // namespace

#define QSIM_APPLY(name, DT)                                                                  \
  XLA_FFI_DEFINE_HANDLER_SYMBOL(name, ApplyImpl<DT>,                                          \
                                ffi::Ffi::Bind()                                              \
                                    .Ctx<ffi::ThreadPool>()                                   \
                                    .Arg<ffi::Buffer<DT>>()                                   \
                                    .Arg<ffi::Buffer<DT>>()                                   \
                                    .Ret<ffi::Buffer<DT>>()                                   \
                                    .Attr<ffi::Span<const int64_t>>("bits"));
#define QSIM_ADJOINT(name, DT)                                                                \
  XLA_FFI_DEFINE_HANDLER_SYMBOL(name, AdjointImpl<DT>,                                        \
                                ffi::Ffi::Bind()                                              \
                                    .Ctx<ffi::ThreadPool>()                                   \
                                    .Arg<ffi::Buffer<DT>>()                                   \
                                    .Arg<ffi::Buffer<DT>>()                                   \
                                    .Arg<ffi::Buffer<DT>>()                                   \
                                    .Ret<ffi::Buffer<DT>>()                                   \
                                    .Ret<ffi::Buffer<DT>>()                                   \
                                    .Ret<ffi::Buffer<DT>>()                                   \
                                    .Attr<ffi::Span<const int64_t>>("bits"));

QSIM_APPLY(qsim_apply_f64, ffi::F64)
QSIM_APPLY(qsim_apply_f32, ffi::F32)
QSIM_ADJOINT(qsim_adjoint_f64, ffi::F64)
QSIM_ADJOINT(qsim_adjoint_f32, ffi::F32)
