"""Procedural indoor scenes rendered by numpy ray casting.

A pinhole camera looks into a box-shaped room (floor, walls, ceiling) holding random spheres,
oriented boxes, cylinders and cones standing on the floor. Every pixel gets the class of the
first surface hit, its z-depth in metres and its surface normal in the camera frame
(x right, y down, z forward; normals face the camera). The image is the class albedo modulated
by a procedural texture, shaded by a Lambertian directional light plus ambient light, with
Gaussian sensor noise. Like a depth sensor, random blobs have no depth or normal (zeros), and
label boundaries are left unannotated (-1), so every ignore path of the real datasets is
exercised. Everything is a pure function of the integer seed.

Four more targets serve the scaling studies' task-count and relatedness axes. Two share the
scene's geometry with segmentation, depth and normals: ``edges`` (occlusion edges, where depth
jumps) and ``boundary`` (where the class changes). Two come from the texture generator, whose
draws (pattern, phase) do not depend on the room or its objects: ``texture`` (which half of
its pattern a pixel lies in: dark or light tile, stripe or ring) and ``pattern`` (which of the
five patterns covers the pixel; the ceiling is always plain and the floor tiled or striped).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CLASS_NAMES: tuple[str, ...] = ("floor", "wall", "ceiling", "sphere", "box", "cylinder", "cone")
NUM_CLASSES = len(CLASS_NAMES)
NUM_PATTERNS = 5  # checker tiles, diagonal stripes, horizontal rings, 3-D checker, plain
EDGE_JUMP = 0.05  # an occlusion edge: neighbouring depths differ by more than 5 % of the nearer
FLOOR, WALL, CEILING, SPHERE, BOX, CYLINDER, CONE = range(NUM_CLASSES)

# Base RGB albedo per class; each instance jitters it so colour alone is not a perfect cue.
_CLASS_ALBEDO = np.array(
    [
        [0.55, 0.42, 0.30],  # floor: wood
        [0.75, 0.74, 0.68],  # wall: off-white
        [0.90, 0.90, 0.92],  # ceiling
        [0.80, 0.25, 0.20],  # sphere: red
        [0.25, 0.45, 0.80],  # box: blue
        [0.30, 0.70, 0.35],  # cylinder: green
        [0.85, 0.70, 0.20],  # cone: yellow
    ],
    dtype=np.float64,
)
_EPS = 1e-6


@dataclass(frozen=True)
class Frame:
    """One rendered view: ``image`` HxWx3 in [0, 1], ``label`` HxW in -1..C-1,
    ``depth`` HxW metres (0 = invalid), ``normal`` HxWx3 unit or all-zero (invalid), the
    camera's ``focal`` length in pixels (principal point at the image centre), and the binary
    ``edges``, ``boundary``, ``texture`` and the ``pattern`` index (HxW, 0..4) maps."""

    image: np.ndarray
    label: np.ndarray
    depth: np.ndarray
    normal: np.ndarray
    focal: float
    edges: np.ndarray
    boundary: np.ndarray
    texture: np.ndarray
    pattern: np.ndarray


class _Hits:
    """Nearest-hit buffers over all rays, updated surface by surface."""

    def __init__(self, num_rays: int) -> None:
        self.t = np.full(num_rays, np.inf)
        self.label = np.zeros(num_rays, dtype=np.int64)
        self.normal = np.zeros((num_rays, 3))
        self.albedo = np.zeros((num_rays, 3))
        self.texture_id = np.zeros(num_rays, dtype=np.int64)

    def offer(self, t: np.ndarray, normal: np.ndarray, label: int, albedo: np.ndarray, texture: int) -> None:
        closer = t < self.t
        self.t[closer] = t[closer]
        self.label[closer] = label
        self.normal[closer] = normal[closer] if normal.ndim == 2 else normal
        self.albedo[closer] = albedo
        self.texture_id[closer] = texture


def focal_length(width: int, fov_x_deg: float) -> float:
    return 0.5 * width / np.tan(np.deg2rad(fov_x_deg) / 2)


def camera_rays(height: int, width: int, focal: float) -> np.ndarray:
    """Ray directions in the camera frame, scaled so that their z component is 1 (t = z-depth)."""
    v, u = np.mgrid[0:height, 0:width].astype(np.float64)
    x = (u + 0.5 - width / 2) / focal
    y = (v + 0.5 - height / 2) / focal
    return np.stack([x, y, np.ones_like(x)], axis=-1).reshape(-1, 3)


def _world_from_camera(pitch: float, yaw: float) -> np.ndarray:
    """Rotation taking camera-frame vectors (x right, y down, z forward) to the world (y up)."""
    flip = np.diag([1.0, -1.0, 1.0])
    cp, sp = np.cos(pitch), np.sin(pitch)
    tilt_down = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    cy, sy = np.cos(yaw), np.sin(yaw)
    turn = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    return turn @ tilt_down @ flip


def _plane(origin: np.ndarray, dirs: np.ndarray, axis: int, offset: float) -> np.ndarray:
    """Ray parameter where ``p[axis] == offset`` (inf when parallel or behind)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (offset - origin[axis]) / dirs[:, axis]
    return np.where(t > _EPS, t, np.inf)


def _smallest_root(a: np.ndarray, b: np.ndarray, c: np.ndarray, valid_at) -> np.ndarray:
    """Smallest positive root of a t^2 + b t + c = 0 that satisfies ``valid_at(t)``."""
    disc = b * b - 4 * a * c
    hit = (disc >= 0) & (np.abs(a) > _EPS)
    sq = np.sqrt(np.where(hit, disc, 0.0))
    safe_a = np.where(hit, a, 1.0)
    best = np.full(a.shape, np.inf)
    for root in ((-b + sq) / (2 * safe_a), (-b - sq) / (2 * safe_a)):
        ok = hit & (root > _EPS) & valid_at(root)
        best = np.where(ok & (root < best), root, best)
    return best


def _sphere(origin, dirs, center, radius):
    o = origin - center
    a = np.einsum("ij,ij->i", dirs, dirs)
    b = 2 * dirs @ o
    c = np.full_like(a, o @ o - radius**2)
    t = _smallest_root(a, b, c, lambda r: np.ones_like(r, dtype=bool))
    p = origin + np.where(np.isfinite(t), t, 0)[:, None] * dirs
    return t, (p - center) / radius


def _cylinder(origin, dirs, base, radius, height):
    """Vertical cylinder standing on the floor at ``base`` (x, 0, z), with its top cap."""
    o = origin - base
    a = dirs[:, 0] ** 2 + dirs[:, 2] ** 2
    b = 2 * (dirs[:, 0] * o[0] + dirs[:, 2] * o[2])
    c = np.full_like(a, o[0] ** 2 + o[2] ** 2 - radius**2)
    t_side = _smallest_root(a, b, c, lambda r: (o[1] + r * dirs[:, 1] >= 0) & (o[1] + r * dirs[:, 1] <= height))
    t_cap = _plane(o, dirs, 1, height)
    px = o[0] + np.where(np.isfinite(t_cap), t_cap, 0) * dirs[:, 0]
    pz = o[2] + np.where(np.isfinite(t_cap), t_cap, 0) * dirs[:, 2]
    t_cap = np.where(px**2 + pz**2 <= radius**2, t_cap, np.inf)
    t = np.minimum(t_side, t_cap)
    p = o + np.where(np.isfinite(t), t, 0)[:, None] * dirs
    side_normal = np.stack([p[:, 0], np.zeros_like(t), p[:, 2]], axis=1) / radius
    normal = np.where((t_cap <= t_side)[:, None], np.array([0.0, 1.0, 0.0]), side_normal)
    return t, normal


def _cone(origin, dirs, base, radius, height):
    """Vertical cone with its base disc on the floor at ``base`` and its apex above it."""
    apex = base + np.array([0.0, height, 0.0])
    o = origin - apex
    k2 = (radius / height) ** 2
    a = dirs[:, 0] ** 2 + dirs[:, 2] ** 2 - k2 * dirs[:, 1] ** 2
    b = 2 * (dirs[:, 0] * o[0] + dirs[:, 2] * o[2] - k2 * dirs[:, 1] * o[1])
    c = np.full_like(a, o[0] ** 2 + o[2] ** 2 - k2 * o[1] ** 2)
    t = _smallest_root(a, b, c, lambda r: (o[1] + r * dirs[:, 1] <= 0) & (o[1] + r * dirs[:, 1] >= -height))
    p = o + np.where(np.isfinite(t), t, 0)[:, None] * dirs
    normal = np.stack([p[:, 0], -k2 * p[:, 1], p[:, 2]], axis=1)
    normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), _EPS)
    return t, normal


def _box(origin, dirs, center, half_extent, angle):
    """Box rotated by ``angle`` about the vertical axis (slab test in the box frame)."""
    c, s = np.cos(angle), np.sin(angle)
    rot = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])  # box frame -> world
    o = rot.T @ (origin - center)
    d = dirs @ rot
    with np.errstate(divide="ignore", invalid="ignore"):
        t1 = (-half_extent - o) / d
        t2 = (half_extent - o) / d
    t_lo = np.nan_to_num(np.minimum(t1, t2), nan=-np.inf)
    t_hi = np.nan_to_num(np.maximum(t1, t2), nan=np.inf)
    t_near = t_lo.max(axis=1)
    t_far = t_hi.min(axis=1)
    t = np.where((t_near <= t_far) & (t_near > _EPS), t_near, np.inf)
    axis = t_lo.argmax(axis=1)
    local = np.zeros_like(d)
    local[np.arange(len(d)), axis] = -np.sign(d[np.arange(len(d)), axis])
    return t, local @ rot.T


def _texture(texture_id: np.ndarray, points: np.ndarray, rng_phase: np.ndarray) -> np.ndarray:
    """Procedural pattern value in [0, 1] from world-space hit points."""
    x, y, z = points[:, 0], points[:, 1], points[:, 2]
    patterns = [
        ((np.floor(x / 0.5 + rng_phase[0]) + np.floor(z / 0.5 + rng_phase[1])) % 2),  # checker tiles
        0.5 + 0.5 * np.sin(2 * np.pi * (x + z) / 0.35 + rng_phase[2]),  # diagonal stripes
        0.5 + 0.5 * np.sin(2 * np.pi * y / 0.15 + rng_phase[3]),  # horizontal rings
        ((np.floor(x / 0.2) + np.floor(y / 0.2) + np.floor(z / 0.2)) % 2),  # 3-D checker
        np.full_like(x, 0.8),  # plain
    ]
    return np.choose(texture_id, patterns)


def render_scene(seed: int | np.ndarray | list[int], height: int = 96, width: int = 128) -> Frame:
    """Render one random scene; the same ``seed`` always gives the same frame.

    Example:
        >>> frame = render_scene(0, height=24, width=32)
        >>> frame.image.shape, bool(frame.label.max() < NUM_CLASSES)
        ((24, 32, 3), True)
    """
    rng = np.random.default_rng(seed)
    focal = focal_length(width, fov_x_deg=rng.uniform(55, 70))
    dirs_cam = camera_rays(height, width, focal)
    room_w, room_d, room_h = rng.uniform(4.0, 7.0), rng.uniform(5.0, 8.0), rng.uniform(2.6, 3.2)
    cam_pos = np.array([rng.uniform(-room_w / 5, room_w / 5), rng.uniform(1.1, 1.7), rng.uniform(0.0, 0.6)])
    world_from_cam = _world_from_camera(pitch=np.deg2rad(rng.uniform(8, 28)), yaw=np.deg2rad(rng.uniform(-20, 20)))
    dirs = dirs_cam @ world_from_cam.T
    hits = _Hits(len(dirs))

    def jitter(cls: int) -> np.ndarray:
        return np.clip(_CLASS_ALBEDO[cls] + rng.normal(0, 0.06, 3), 0.02, 1.0)

    up = np.array([0.0, 1.0, 0.0])
    hits.offer(_plane(cam_pos, dirs, 1, 0.0), up, FLOOR, jitter(FLOOR), rng.choice([0, 1]))
    hits.offer(_plane(cam_pos, dirs, 1, room_h), -up, CEILING, jitter(CEILING), 4)
    wall_albedo, wall_texture = jitter(WALL), rng.choice([1, 2, 4])
    for axis, offset in ((0, -room_w / 2), (0, room_w / 2), (2, room_d), (2, -1.0)):
        normal = np.zeros(3)
        normal[axis] = -np.sign(offset)
        hits.offer(_plane(cam_pos, dirs, axis, offset), normal, WALL, wall_albedo, wall_texture)

    for _ in range(rng.integers(4, 10)):
        cls = int(rng.choice([SPHERE, BOX, CYLINDER, CONE]))
        size = rng.uniform(0.2, 0.6)
        x = rng.uniform(-room_w / 2 + size, room_w / 2 - size)
        z = rng.uniform(1.5, room_d - size)
        if cls == SPHERE:
            t, normal = _sphere(cam_pos, dirs, np.array([x, size, z]), size)
        elif cls == BOX:
            half = np.array([size, rng.uniform(0.15, 0.7), rng.uniform(0.2, 0.6)])
            t, normal = _box(cam_pos, dirs, np.array([x, half[1], z]), half, rng.uniform(0, np.pi))
        elif cls == CYLINDER:
            t, normal = _cylinder(cam_pos, dirs, np.array([x, 0.0, z]), size * 0.7, rng.uniform(0.4, 1.6))
        else:
            t, normal = _cone(cam_pos, dirs, np.array([x, 0.0, z]), size, rng.uniform(0.5, 1.4))
        hits.offer(t, normal, cls, jitter(cls), int(rng.integers(0, 5)))

    points = cam_pos + hits.t[:, None] * dirs
    pattern_value = _texture(hits.texture_id, points, rng.uniform(0, 1, 4))
    brightness = 0.6 + 0.4 * pattern_value
    normal_world = hits.normal * np.where(np.einsum("ij,ij->i", hits.normal, dirs) > 0, -1.0, 1.0)[:, None]
    light = np.array([rng.uniform(-0.6, 0.6), 1.0, rng.uniform(-0.8, 0.3)])
    light /= np.linalg.norm(light)
    shading = rng.uniform(0.2, 0.35) + rng.uniform(0.6, 0.9) * np.clip(normal_world @ light, 0, None)
    image = hits.albedo * brightness[:, None] * shading[:, None]
    image = image.reshape(height, width, 3) + rng.normal(0, 0.02, (height, width, 3))

    label = hits.label.reshape(height, width)
    boundary = np.zeros_like(label, dtype=bool)
    boundary[:, :-1] |= label[:, 1:] != label[:, :-1]
    boundary[:-1, :] |= label[1:, :] != label[:-1, :]

    depth = hits.t.reshape(height, width)
    edges = np.zeros_like(boundary)
    edges[:, :-1] |= np.abs(depth[:, 1:] - depth[:, :-1]) > EDGE_JUMP * np.minimum(depth[:, 1:], depth[:, :-1])
    edges[:-1, :] |= np.abs(depth[1:, :] - depth[:-1, :]) > EDGE_JUMP * np.minimum(depth[1:, :], depth[:-1, :])
    normal_cam = (normal_world @ world_from_cam).reshape(height, width, 3)
    holes = _sensor_holes(rng, height, width)
    return Frame(
        image=np.clip(image, 0.0, 1.0),
        label=np.where(boundary, -1, label),
        depth=np.where(holes, 0.0, depth),
        normal=np.where(holes[..., None], 0.0, normal_cam),
        focal=float(focal),
        edges=edges,
        boundary=boundary,
        texture=(pattern_value > 0.5).reshape(height, width),
        pattern=hits.texture_id.reshape(height, width),
    )


def _sensor_holes(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A few elliptic blobs without depth or normal, like a structured-light sensor's dropouts."""
    v, u = np.mgrid[0:height, 0:width]
    holes = np.zeros((height, width), dtype=bool)
    for _ in range(rng.integers(0, 3)):
        cv, cu = rng.uniform(0, height), rng.uniform(0, width)
        rv, ru = rng.uniform(0.03, 0.1) * height, rng.uniform(0.03, 0.1) * width
        holes |= ((v - cv) / rv) ** 2 + ((u - cu) / ru) ** 2 <= 1
    return holes
