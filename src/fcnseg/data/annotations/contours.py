"""Region outlines of a label map, for writing predictions back as polygons.

:func:`crack_rings` follows the pixel edges between an 8-connected region and the rest, along
pixel corners (pixel (x, y) is ``[x, x+1) × [y, y+1)``), the region on its right (y down);
:func:`centre_chain` the path through the border pixels' centres, which Pillow (so labelme)
fills back to exactly those pixels.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# Directions: 0 = +x, 1 = +y, 2 = -x, 3 = -y; the step of each.
_STEP = ((1, 0), (0, 1), (-1, 0), (0, -1))


def crack_rings(mask: np.ndarray) -> list[np.ndarray]:
    """The boundary rings of a boolean H×W ``mask`` along pixel edges, each an N×3 int array
    of (x, y, direction of the edge leaving that corner); outer rings have positive
    :func:`ring_area`, holes negative."""
    m = np.pad(np.asarray(mask, bool), 1)
    inside = m[1:-1, 1:-1]
    edges = []
    # Each boundary edge, starting at the corner it leaves (the region on its right).
    for d, (dy, dx), (cy, cx) in ((0, (-1, 0), (0, 0)), (1, (0, 1), (0, 1)),
                                  (2, (1, 0), (1, 1)), (3, (0, -1), (1, 0))):
        neighbour = m[1 + dy:m.shape[0] - 1 + dy, 1 + dx:m.shape[1] - 1 + dx]
        y, x = np.nonzero(inside & ~neighbour)
        edges.append(np.stack([y + cy, x + cx, np.full(len(y), d)]))
    y, x, d = np.concatenate(edges, axis=1)
    width = mask.shape[1] + 1
    corner = y * width + x
    order = np.lexsort((d, corner))
    corner = corner[order]
    xl, yl, dl = x[order].tolist(), y[order].tolist(), d[order].tolist()
    # Outgoing edges per corner: one, or two at a saddle (two pixels touching diagonally).
    first = {}
    for i, c in enumerate(corner.tolist()):
        first.setdefault(c, []).append(i)
    used = np.zeros(len(corner), bool)
    rings = []
    for start in range(len(corner)):
        if used[start]:
            continue
        ring = []
        i = start
        while not used[i]:
            used[i] = True
            ring.append((xl[i], yl[i], dl[i]))
            sx, sy = _STEP[dl[i]]
            nxt = first[(yl[i] + sy) * width + xl[i] + sx]
            if len(nxt) == 1:
                i = nxt[0]
            else:  # a saddle: turn left, around the outside, joining the diagonal pixels
                want = (dl[i] - 1) % 4
                i = next((j for j in nxt if dl[j] == want), nxt[0])
        rings.append(np.array(ring, np.int64))
    return rings


def ring_area(ring: np.ndarray) -> float:
    """Signed area of a ring of (x, y, ...) points (shoelace; positive for outer crack rings)."""
    x, y = ring[:, 0].astype(float), ring[:, 1].astype(float)
    return float((x * np.roll(y, -1) - np.roll(x, -1) * y).sum() / 2)


def corners(ring: np.ndarray) -> np.ndarray:
    """A crack ring's (x, y) vertices where its direction changes."""
    turn = ring[:, 2] != np.roll(ring[:, 2], 1)
    return ring[turn, :2]


def centre_chain(ring: np.ndarray) -> np.ndarray:
    """The centres of the border pixels along an outer crack ring, in order (M×2 ints)."""
    x, y, d = ring[:, 0], ring[:, 1], ring[:, 2]
    px = x - ((d == 1) | (d == 2))
    py = y - ((d == 2) | (d == 3))
    pts = np.stack([px, py], 1)
    keep = np.any(pts != np.roll(pts, 1, axis=0), axis=1)
    return pts[keep] if keep.any() else pts[:1]


def _dp(points: np.ndarray, tolerance: float) -> list[int]:
    """Douglas-Peucker on an open path: the indices kept (first and last always)."""
    keep = [0, len(points) - 1]
    stack = [(0, len(points) - 1)]
    while stack:
        a, b = stack.pop()
        if b - a < 2:
            continue
        p, q = points[a], points[b]
        seg = points[a + 1:b] - p
        direction = q - p
        length2 = float(direction @ direction)
        # Distance to the segment (not its line): a spike beyond an end is far from it.
        t = np.clip(seg @ direction / length2, 0.0, 1.0) if length2 else np.zeros(len(seg))
        dist = np.hypot(*(seg - t[:, None] * direction).T)
        k = int(np.argmax(dist))
        if dist[k] > tolerance:
            keep.append(a + 1 + k)
            stack += [(a, a + 1 + k), (a + 1 + k, b)]
    return sorted(set(keep))


def simplify(points: np.ndarray, tolerance: float) -> np.ndarray:
    """A closed ring of (x, y) points with the points within ``tolerance`` pixels of the
    simplified outline dropped (at least the two points farthest apart are kept)."""
    points = np.asarray(points, float).reshape(-1, 2)
    if tolerance <= 0 or len(points) <= 3:
        return points
    far = int(np.argmax(np.hypot(*(points - points[0]).T)))
    path = np.concatenate([points, points[:1]])
    first = _dp(path[:far + 1], tolerance)
    second = [far + i for i in _dp(path[far:], tolerance)]
    kept = sorted(set(first) | set(second[:-1]))
    return points[kept]


def region_polygons(label: np.ndarray, classes: Sequence[int] | None = None
                    ) -> list[tuple[int, np.ndarray, float]]:
    """(class, outer crack ring, enclosed area) of every region of the ``classes`` present
    (default: all), largest first: drawn in order, later on top, they give the map back."""
    label = np.asarray(label)
    present = np.unique(label) if classes is None else classes
    found = []
    for c in present:
        for ring in crack_rings(label == c):
            area = ring_area(ring)
            if area > 0:
                found.append((int(c), ring, area))
    found.sort(key=lambda t: -t[2])
    return found
