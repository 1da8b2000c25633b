"""Slow, obviously-correct statement of the canonical watershed (research/algorithms.md §5.4).

Keys K = (c, d, l) compared lexicographically: a marker m has K(m) = (v(m), 0, label(m)); any other
in-mask pixel q takes p* = its in-mask neighbour with the smallest key and gets
c = max(v(q), c(p*)), d = d(p*) + 1 if c(p*) >= v(q) else 0, l = l(p*). Keys grow strictly from a
pixel to the ones it determines, so processing pixels in increasing key order (Dijkstra) reaches each
pixel first from its smallest-key neighbour.
"""

import heapq

import numpy as np


def canonical_watershed(image, markers, mask=None, connectivity=1):
    H, W = image.shape
    if mask is None:
        mask = np.ones((H, W), bool)
    offs = [(-1, 0), (0, -1), (0, 1), (1, 0)]
    if connectivity == 2:
        offs += [(-1, -1), (-1, 1), (1, -1), (1, 1)]
    out = np.zeros((H, W), markers.dtype)
    key = {}
    heap = []
    for r, c in zip(*np.nonzero((markers != 0) & mask)):
        k = (image[r, c], 0, markers[r, c])
        key[(r, c)] = k
        heapq.heappush(heap, (k, (r, c)))
    done = set()
    while heap:
        k, (r, c) = heapq.heappop(heap)
        if (r, c) in done:
            continue
        done.add((r, c))
        out[r, c] = k[2]
        for dr, dc in offs:
            rr, cc = r + dr, c + dc
            if not (0 <= rr < H and 0 <= cc < W) or not mask[rr, cc] or (rr, cc) in key:
                continue
            v = image[rr, cc]
            nk = (k[0], k[1] + 1, k[2]) if k[0] >= v else (v, 0, k[2])
            key[(rr, cc)] = nk
            heapq.heappush(heap, (nk, (rr, cc)))
    return out
