// Detection evaluation (see evaluate.h and docs/evaluation.md). Detections and ground truths are
// bucketed by class (a stable counting sort), then ordered by image inside a class; every class is
// independent, so classes run in parallel and the results never depend on the thread count.
#include "cpu/evaluate.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <numeric>

#include "cpu/parallel.h"

namespace dwd {
namespace cpu {

namespace {

// Stable counting sort of [0, n) by cls: offsets (classes + 1) and the order.
void bucket_by_class(const EvalSet& s, std::int64_t classes, std::vector<std::int64_t>& off,
                     std::vector<std::int64_t>& order) {
  off.assign(static_cast<std::size_t>(classes + 1), 0);
  for (std::int64_t i = 0; i < s.n; ++i) ++off[static_cast<std::size_t>(s.cls[i] + 1)];
  for (std::int64_t k = 0; k < classes; ++k) off[k + 1] += off[k];
  std::vector<std::int64_t> pos(off.begin(), off.end() - 1);
  order.resize(static_cast<std::size_t>(s.n));
  for (std::int64_t i = 0; i < s.n; ++i) order[static_cast<std::size_t>(pos[static_cast<std::size_t>(s.cls[i])]++)] = i;
}

// COCO's box IoU (pycocotools' bbIou: x, y, w, h boxes, no +1, union = both areas - intersection).
inline double coco_iou(const double* d, const double* g) {
  const double w = std::fmin(d[2] + d[0], g[2] + g[0]) - std::fmax(d[0], g[0]);
  if (w <= 0) return 0.0;
  const double h = std::fmin(d[3] + d[1], g[3] + g[1]) - std::fmax(d[1], g[1]);
  if (h <= 0) return 0.0;
  const double i = w * h;
  const double da = d[2] * d[3], ga = g[2] * g[3];
  const double u = da + ga - i;
  return i / u;
}

// The toolkit's axis-aligned overlap: intersection over the area of the enclosing box (not IoU);
// touching boxes count (an empty intersection with non-negative extents gives 0).
inline double enclosing_overlap(const double* g, const double* d) {
  const double dx_int = std::min(g[2], d[2]) - std::max(g[0], d[0]);
  const double dy_int = std::min(g[3], d[3]) - std::max(g[1], d[1]);
  if (!(dx_int >= 0 && dy_int >= 0)) return 0.0;
  const double den = (std::max(g[2], d[2]) - std::min(g[0], d[0])) * (std::max(g[3], d[3]) - std::min(g[1], d[1]));
  return den > 0 ? (dx_int * dy_int) / den : 0.0;
}

struct Pt {
  double x, y;
};

double signed_area(const Pt* p, int n) {
  double s = 0;
  for (int i = 0; i < n; ++i) {
    const Pt& a = p[i];
    const Pt& b = p[(i + 1) % n];
    s += a.x * b.y - b.x * a.y;
  }
  return 0.5 * s;
}

// Clips the convex polygon `in` (n points) by the half-plane left of edge a->b (Sutherland-Hodgman).
int clip_half_plane(const Pt* in, int n, Pt a, Pt b, Pt* out) {
  int m = 0;
  auto side = [&](const Pt& p) { return (b.x - a.x) * (p.y - a.y) - (b.y - a.y) * (p.x - a.x); };
  for (int i = 0; i < n; ++i) {
    const Pt& p = in[i];
    const Pt& q = in[(i + 1) % n];
    const double sp = side(p), sq = side(q);
    if (sp >= 0) out[m++] = p;
    if ((sp >= 0) != (sq >= 0)) {
      const double t = sp / (sp - sq);
      out[m++] = Pt{p.x + t * (q.x - p.x), p.y + t * (q.y - p.y)};
    }
  }
  return m;
}

}  // namespace

double quad_iou(const double* a, const double* b) {
  Pt pa[4], pb[4];
  for (int i = 0; i < 4; ++i) {
    pa[i] = Pt{a[2 * i], a[2 * i + 1]};
    pb[i] = Pt{b[2 * i], b[2 * i + 1]};
  }
  double aa = signed_area(pa, 4), ab = signed_area(pb, 4);
  if (aa < 0) std::reverse(pa, pa + 4), aa = -aa;
  if (ab < 0) std::reverse(pb, pb + 4), ab = -ab;
  if (!(aa > 0) || !(ab > 0)) return 0.0;
  // A convex quadrilateral clipped by four half-planes has at most 8 corners.
  Pt buf1[16], buf2[16];
  int n = 4;
  std::copy(pa, pa + 4, buf1);
  Pt* cur = buf1;
  Pt* nxt = buf2;
  for (int e = 0; e < 4 && n > 0; ++e) {
    n = clip_half_plane(cur, n, pb[e], pb[(e + 1) % 4], nxt);
    std::swap(cur, nxt);
  }
  if (n < 3) return 0.0;
  const double inter = std::fabs(signed_area(cur, n));
  const double uni = aa + ab - inter;
  return uni > 0 ? inter / uni : 0.0;
}

CocoOut coco_evaluate(const EvalSet& dt, const EvalSet& gt, const double* gt_area, std::int64_t images,
                      std::int64_t classes, const CocoParams& p) {
  const std::int64_t T = static_cast<std::int64_t>(p.iou_thrs.size());
  const std::int64_t R = static_cast<std::int64_t>(p.rec_thrs.size());
  CocoOut out;
  out.precision.assign(static_cast<std::size_t>(T * R * classes), -1.0);
  out.recall.assign(static_cast<std::size_t>(T * classes), -1.0);
  out.npig.assign(static_cast<std::size_t>(classes), 0);
  out.ndet.assign(static_cast<std::size_t>(classes), 0);

  std::vector<std::int64_t> doff, dord, goff, gord;
  bucket_by_class(dt, classes, doff, dord);
  bucket_by_class(gt, classes, goff, gord);

  const int threads = phase_threads(dt.n + gt.n, classes);
  on_threads(threads, [&](int tid) {
    std::vector<double> ious, thr(static_cast<std::size_t>(T));
    for (std::int64_t t = 0; t < T; ++t) thr[t] = std::min(p.iou_thrs[t], 1 - 1e-10);
    std::vector<std::int64_t> gsel, gtm, kd;
    std::vector<char> gig;
    std::vector<double> kscore, tp, fp, rc, pr;
    std::vector<std::uint8_t> ktp, kfp;  // (T, nk)
    for (std::int64_t k = tid; k < classes; k += threads) {
      // This class's detections: by image, then by score descending (stable: file order on ties).
      std::vector<std::int64_t> d(dord.begin() + doff[k], dord.begin() + doff[k + 1]);
      std::stable_sort(d.begin(), d.end(), [&](std::int64_t a, std::int64_t b) {
        if (dt.img[a] != dt.img[b]) return dt.img[a] < dt.img[b];
        return dt.score[a] > dt.score[b];
      });
      std::vector<std::int64_t> g(gord.begin() + goff[k], gord.begin() + goff[k + 1]);
      std::stable_sort(g.begin(), g.end(), [&](std::int64_t a, std::int64_t b) { return gt.img[a] < gt.img[b]; });
      // Detections kept after the per-image cap, in concatenation order, with their flags.
      kd.clear();
      kscore.clear();
      std::vector<std::vector<std::uint8_t>> mt(static_cast<std::size_t>(T)), ig(static_cast<std::size_t>(T));
      std::int64_t npig = 0;
      std::size_t di = 0, gi = 0;
      while (di < d.size() || gi < g.size()) {
        const std::int64_t im = std::min(di < d.size() ? dt.img[d[di]] : INT64_MAX, gi < g.size() ? gt.img[g[gi]] : INT64_MAX);
        std::size_t de = di, ge = gi;
        while (de < d.size() && dt.img[d[de]] == im) ++de;
        while (ge < g.size() && gt.img[g[ge]] == im) ++ge;
        std::size_t nd = de - di;
        if (p.max_dets >= 0) nd = std::min<std::size_t>(nd, static_cast<std::size_t>(p.max_dets));
        // Ground truths: not ignored first (stable), as COCO sorts them.
        gsel.clear();
        gig.clear();
        for (int pass = 0; pass < 2; ++pass)
          for (std::size_t j = gi; j < ge; ++j) {
            const double a = gt_area[g[j]];
            const bool ign = a < p.area_lo || a > p.area_hi;
            if (ign == (pass == 1)) {
              gsel.push_back(g[j]);
              gig.push_back(ign);
            }
          }
        const std::size_t ng = gsel.size();
        for (std::size_t j = 0; j < ng; ++j) npig += !gig[j];
        ious.assign(nd * ng, 0.0);
        for (std::size_t a = 0; a < nd; ++a)
          for (std::size_t b = 0; b < ng; ++b) ious[a * ng + b] = coco_iou(dt.geom + 4 * d[di + a], gt.geom + 4 * gsel[b]);
        for (std::int64_t t = 0; t < T; ++t) {
          gtm.assign(ng, -1);
          for (std::size_t a = 0; a < nd; ++a) {
            double iou = thr[t];
            std::int64_t m = -1;
            for (std::size_t b = 0; b < ng; ++b) {
              if (gtm[b] >= 0) continue;
              if (m > -1 && !gig[m] && gig[b]) break;
              if (ious[a * ng + b] < iou) continue;
              iou = ious[a * ng + b];
              m = static_cast<std::int64_t>(b);
            }
            bool ignored, matched = m >= 0;
            if (matched) {
              gtm[m] = static_cast<std::int64_t>(a);
              ignored = gig[m];
            } else {
              const double* bb = dt.geom + 4 * d[di + a];
              const double area = bb[2] * bb[3];
              ignored = area < p.area_lo || area > p.area_hi;
            }
            mt[t].push_back(matched);
            ig[t].push_back(ignored);
          }
        }
        for (std::size_t a = 0; a < nd; ++a) kscore.push_back(dt.score[d[di + a]]);
        di = de;
        gi = ge;
      }
      const std::size_t nk = kscore.size();
      out.npig[k] = npig;
      out.ndet[k] = static_cast<std::int64_t>(nk);
      if (npig == 0) continue;
      std::vector<std::int64_t> ord(nk);
      std::iota(ord.begin(), ord.end(), 0);
      std::stable_sort(ord.begin(), ord.end(), [&](std::int64_t a, std::int64_t b) { return kscore[a] > kscore[b]; });
      rc.resize(nk);
      pr.resize(nk);
      for (std::int64_t t = 0; t < T; ++t) {
        double tps = 0, fps = 0;
        for (std::size_t j = 0; j < nk; ++j) {
          const std::int64_t o = ord[j];
          if (!ig[t][o]) (mt[t][o] ? tps : fps) += 1;
          rc[j] = tps / static_cast<double>(npig);
          pr[j] = tps / (fps + tps + DBL_EPSILON);
        }
        out.recall[static_cast<std::size_t>(t * classes + k)] = nk ? rc[nk - 1] : 0.0;
        for (std::size_t j = nk; j-- > 1;)
          if (pr[j] > pr[j - 1]) pr[j - 1] = pr[j];
        for (std::int64_t r = 0; r < R; ++r) {
          const std::size_t idx = static_cast<std::size_t>(std::lower_bound(rc.begin(), rc.end(), p.rec_thrs[r]) - rc.begin());
          out.precision[static_cast<std::size_t>((t * R + r) * classes + k)] = idx < nk ? pr[idx] : 0.0;
        }
      }
    }
  });
  return out;
}

void deepscores_match(const EvalSet& dt, const EvalSet& gt, int geom_len, std::int64_t images,
                      std::int64_t classes, bool ascending, double reserve, double* overlap,
                      std::int64_t* matched) {
  std::vector<std::int64_t> doff, dord, goff, gord;
  bucket_by_class(dt, classes, doff, dord);
  bucket_by_class(gt, classes, goff, gord);
  const int threads = phase_threads(dt.n + gt.n, classes);
  on_threads(threads, [&](int tid) {
    std::vector<char> taken;
    for (std::int64_t k = tid; k < classes; k += threads) {
      std::vector<std::int64_t> d(dord.begin() + doff[k], dord.begin() + doff[k + 1]);
      std::stable_sort(d.begin(), d.end(), [&](std::int64_t a, std::int64_t b) {
        if (dt.img[a] != dt.img[b]) return dt.img[a] < dt.img[b];
        return ascending ? dt.score[a] < dt.score[b] : dt.score[a] > dt.score[b];
      });
      std::vector<std::int64_t> g(gord.begin() + goff[k], gord.begin() + goff[k + 1]);
      std::stable_sort(g.begin(), g.end(), [&](std::int64_t a, std::int64_t b) { return gt.img[a] < gt.img[b]; });
      std::size_t gi = 0;
      for (std::size_t di = 0; di < d.size();) {
        const std::int64_t im = dt.img[d[di]];
        std::size_t de = di;
        while (de < d.size() && dt.img[d[de]] == im) ++de;
        while (gi < g.size() && gt.img[g[gi]] < im) ++gi;
        std::size_t ge = gi;
        while (ge < g.size() && gt.img[g[ge]] == im) ++ge;
        taken.assign(ge - gi, 0);
        for (std::size_t a = di; a < de; ++a) {
          const double* db = dt.geom + geom_len * d[a];
          double best = -1;
          std::int64_t bi = -1;
          for (std::size_t b = gi; b < ge; ++b) {
            if (taken[b - gi]) continue;
            const double* gb = gt.geom + geom_len * g[b];
            const double o = geom_len == 8 ? quad_iou(gb, db) : enclosing_overlap(gb, db);
            if (o > best) {
              best = o;
              bi = static_cast<std::int64_t>(b);
            }
          }
          if (bi >= 0 && best > reserve) {
            taken[bi - gi] = 1;
            overlap[d[a]] = best;
            matched[d[a]] = g[bi];
          } else {
            overlap[d[a]] = 0.0;
            matched[d[a]] = -1;
          }
        }
        di = de;
        gi = ge;
      }
    }
  });
}

}  // namespace cpu
}  // namespace dwd
