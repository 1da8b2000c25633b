"""Agreement of the canonical watershed with scikit-image's (method="skimage" is bit-identical to it)
on the masked pixels of DWD-like pages, per connectivity: the case of tests/test_watershed.py
(-energy as int16, markers label(E >= 8), mask E >= 2) on the reference pages n = 250, 2000, 7664 and
on an engraved page's targets (16 levels, dwd_fast.encode of its boxes).

    python benchmarks/measure_agreement.py
"""

import numpy as np
from skimage.segmentation import watershed as sk_watershed

import dwd_fast
from dwd_fast.data import reference_page


def case(E):
    E = E.astype(np.int16)
    return -E, dwd_fast.label(E >= 8), E >= 2


def pages():
    for n in (250, 2000, 7664):
        yield f"reference n={n}", reference_page(n, seed=0).energy
    try:
        from dwd_fast.data import engraved_page
    except ImportError:
        return
    try:
        p = engraved_page("chorale", font="Bravura")
    except Exception as e:  # verovio / resvg missing
        print(f"engraved page skipped: {e}")
        return
    t = dwd_fast.encode(p.boxes, p.labels, p.image.shape, levels=16)
    yield f"engraved chorale ({len(p.boxes)} objects)", np.asarray(t.energy)


def main():
    print("| page | masked px | connectivity 1 | connectivity 2 |")
    print("|---|---|---|---|")
    for name, E in pages():
        img, mk, mask = case(E)
        row = []
        for conn in (1, 2):
            ref = sk_watershed(img, mk, mask=mask, connectivity=conn)
            assert np.array_equal(dwd_fast.watershed(img, mk, mask=mask, connectivity=conn, method="skimage"), ref)
            canon = dwd_fast.watershed(img, mk, mask=mask, connectivity=conn)
            row.append(f"{100 * float((canon == ref)[mask].mean()):.3f}%")
        print(f"| {name} | {int(mask.sum())} | {row[0]} | {row[1]} |")


if __name__ == "__main__":
    main()
