"""Renderer of the synthetic talking face: identity + per-frame state -> an anti-aliased RGB frame.

Geometry is built in face units (fractions of the image side) and drawn with OpenCV's anti-aliased polygon
fill at sub-pixel precision, so the same person renders at any square size (64, 128, 256, ...). A frame costs
about a millisecond at 128 x 128: the background is drawn once per identity and size, the face is ~30 polygons.

Head pose: ``yaw`` in [-1, 1] slides the features across the head by their depth (nose most, outline least);
``roll`` (degrees) and ``tx``/``ty`` (face units) move the whole head and shoulders over a fixed background.
"""

from dataclasses import dataclass, field
from functools import cache

import cv2
import numpy as np

from memo_model.data.synthetic.expression import expression_parameters, one_hot_expression
from memo_model.data.synthetic.identity import Identity

DEFAULT_SIZE = 128
_SUBPIXEL_BITS = 4  # cv2 `shift`: coordinates carry 4 fractional bits (1/16 pixel)
_SUBPIXEL = 1 << _SUBPIXEL_BITS
_CURVE_POINTS = 24  # points per curve; enough for smooth outlines at 256 px

FACE_CENTRE = (0.5, 0.5)
HEAD_PIVOT = (0.5, 0.62)  # roll rotates about the neck rather than the nose
EYE_LINE = -0.045  # eye height relative to the face centre
MOUTH_LINE = 0.175
MAX_MOUTH_OPENING = 0.085  # lip gap at mouth_open = 1, in face units
YAW_SHIFT = 0.045  # how far features at depth 1 move for yaw = 1


@dataclass
class FaceState:
    """What changes frame to frame. ``expression`` holds weights over SELECTABLE_EMOTIONS, shape (8,)."""

    mouth_open: float = 0.0  # 0 closed .. 1 fully open (speech)
    mouth_shape: float = 0.0  # -1 round ("u") .. +1 wide ("i")
    blink: float = 0.0  # 0 open .. 1 closed
    yaw: float = 0.0
    roll: float = 0.0  # degrees
    tx: float = 0.0
    ty: float = 0.0
    expression: np.ndarray = field(default_factory=lambda: one_hot_expression(4))


def _colour(rgb: tuple[float, float, float] | np.ndarray, scale: float = 1.0) -> tuple[int, int, int]:
    values = np.clip(np.asarray(rgb, dtype=np.float32) * scale, 0, 255)
    return (int(values[0]), int(values[1]), int(values[2]))


@cache
def _grid(start: float, stop: float, n: int, endpoint: bool = True) -> np.ndarray:
    """np.linspace, cached: the same few parameter grids are needed for every frame."""
    grid = np.linspace(start, stop, n, endpoint=endpoint)
    grid.flags.writeable = False
    return grid


@cache
def _unit_circle(n: int) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    circle = np.stack([np.cos(t), np.sin(t)], axis=1)
    circle.flags.writeable = False
    return circle


def _ellipse(cx: float, cy: float, rx: float, ry: float, n: int = _CURVE_POINTS) -> np.ndarray:
    return _unit_circle(n) * (rx, ry) + (cx, cy)


class _Canvas:
    """Draws face-unit polygons on an image after applying the head transform."""

    def __init__(self, image: np.ndarray, state: FaceState):
        self.image = image
        self.size = image.shape[0]
        angle = np.deg2rad(state.roll)
        self.rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]], dtype=np.float64)
        self.offset = np.array([state.tx, state.ty])
        self.pivot = np.array(HEAD_PIVOT)
        self.yaw = state.yaw

    def _pixels(self, points: np.ndarray, depth: float) -> np.ndarray:
        points = np.array(points, dtype=np.float64)  # a copy: callers keep their points
        points[:, 0] += self.yaw * YAW_SHIFT * depth
        points = (points - self.pivot) @ self.rotation.T + self.pivot + self.offset
        return np.round(points * self.size * _SUBPIXEL).astype(np.int32)

    def fill(self, points: np.ndarray, colour: tuple[int, int, int], depth: float = 0.0) -> None:
        cv2.fillPoly(self.image, [self._pixels(points, depth)], colour, cv2.LINE_AA, _SUBPIXEL_BITS)

    def line(self, points: np.ndarray, colour: tuple[int, int, int], width: float, depth: float = 0.0) -> None:
        thickness = max(1, int(round(width * self.size)))
        cv2.polylines(self.image, [self._pixels(points, depth)], False, colour, thickness, cv2.LINE_AA, _SUBPIXEL_BITS)


def render_background(identity: Identity, size: int) -> np.ndarray:
    """Gradient plus optional pattern, (size, size, 3) uint8; independent of the frame state."""
    coords = (np.arange(size, dtype=np.float32) + 0.5) / size
    x, y = np.meshgrid(coords, coords)
    direction = np.cos(identity.background_angle) * (x - 0.5) + np.sin(identity.background_angle) * (y - 0.5)
    t = np.clip(direction / np.sqrt(2) + 0.5, 0, 1)[..., None]
    top = np.asarray(identity.background_top, dtype=np.float32)
    bottom = np.asarray(identity.background_bottom, dtype=np.float32)
    image = top * (1 - t) + bottom * t

    scale = identity.pattern_scale
    if identity.background_pattern == "stripes":
        mask = 0.5 + 0.5 * np.sin(2 * np.pi * (x + y) / scale)
    elif identity.background_pattern == "dots":
        mask = ((np.mod(x, scale) - scale / 2) ** 2 + (np.mod(y, scale) - scale / 2) ** 2 < (scale / 4) ** 2) * 1.0
    elif identity.background_pattern == "checker":
        mask = (np.floor(x / scale) + np.floor(y / scale)) % 2
    elif identity.background_pattern == "rings":
        mask = 0.5 + 0.5 * np.sin(2 * np.pi * np.hypot(x - 0.15, y - 0.15) / scale)
    else:
        mask = np.zeros_like(x)
    # Patterns only modulate brightness slightly, so the person stays the salient object.
    image = image * (1 - 0.12 * mask[..., None])
    return np.clip(image, 0, 255).astype(np.uint8)


def _head_outline(identity: Identity, cx: float, cy: float) -> np.ndarray:
    t = _grid(0, 2 * np.pi, 2 * _CURVE_POINTS, False)
    exponent = 2.0 / identity.squareness
    cos, sin = np.cos(t), np.sin(t)
    x = np.sign(cos) * np.abs(cos) ** exponent
    y = np.sign(sin) * np.abs(sin) ** exponent
    x = x * (1 - identity.jaw_taper * np.clip(sin, 0, 1) ** 2)  # narrow only the lower half towards the chin
    return np.stack([cx + identity.face_width * x, cy + identity.face_height * y], axis=1)


def _hair_back(canvas: _Canvas, identity: Identity, cx: float, cy: float, colour: tuple[int, int, int]) -> None:
    w, h, v = identity.face_width, identity.face_height, identity.hair_volume
    style = identity.hair_style
    if style == "long":
        top = _ellipse(cx, cy - 0.04, w * 1.2 * v, h * 1.05, 2 * _CURVE_POINTS)
        canvas.fill(
            np.concatenate([top[top[:, 1] < cy], [[cx + w * 1.25 * v, 0.98], [cx - w * 1.25 * v, 0.98]]]), colour, -0.3
        )
    elif style == "bob":
        canvas.fill(_ellipse(cx, cy + 0.0, w * 1.25 * v, h * 1.05), colour, -0.3)
    elif style == "curly":
        blobs = _ellipse(cx, cy - 0.07, w * 1.05 * v, h * 0.95 * v, 14)
        for bx, by in blobs:
            canvas.fill(_ellipse(bx, by, 0.065 * v, 0.065 * v, 16), colour, -0.3)
        canvas.fill(_ellipse(cx, cy - 0.07, w * 1.05 * v, h * 0.95 * v), colour, -0.3)
    elif style == "bun":
        canvas.fill(_ellipse(cx, cy - h - 0.03, 0.075 * v, 0.065 * v), colour, -0.3)


def _hair_front(canvas: _Canvas, identity: Identity, cx: float, cy: float, colour: tuple[int, int, int]) -> None:
    """Hair covering the top of the head down to a style-specific hairline."""
    w, h, v = identity.face_width, identity.face_height, identity.hair_volume
    style = identity.hair_style
    if style == "bald":
        return
    thickness = {"buzz": 0.012, "spiky": 0.02}.get(style, 0.035 * v)
    t = _grid(np.pi * 1.02, np.pi * 1.98, 2 * _CURVE_POINTS)
    crown = np.stack([cx + (w + thickness) * np.cos(t), cy - 0.02 + (h + thickness) * np.sin(t)], axis=1)
    u = _grid(1, -1, 2 * _CURVE_POINTS)  # hairline runs back from right temple to left temple
    hairline_y = cy - h * 0.55 + 0.03 * u**2  # temples sit lower than the middle of the forehead
    if style == "side_part":
        hairline_y = hairline_y + 0.05 * np.clip(u + 0.2, 0, None) ** 1.5  # fringe swept over one side
    elif style in ("bob", "long"):
        hairline_y = hairline_y + 0.035 * (1 - np.abs(u)) ** 0.5  # straight fringe
    elif style == "curly":
        hairline_y = hairline_y + 0.015 * np.abs(np.sin(u * 9))
    elif style == "buzz":
        hairline_y = hairline_y - 0.02
    hairline = np.stack([cx + u * w * 0.98, hairline_y], axis=1)
    canvas.fill(np.concatenate([crown, hairline]), colour, 0.1)
    if style == "spiky":
        spikes = []
        for i, s in enumerate(np.linspace(-0.8, 0.8, 7)):
            base_x, base_y = cx + s * w, cy - 0.02 - (h + thickness) * np.sqrt(1 - (s * 0.98) ** 2)
            tip = 0.06 + 0.02 * (i % 2)
            spikes.append(
                [[base_x - 0.03, base_y + 0.02], [base_x + s * 0.03, base_y - tip], [base_x + 0.03, base_y + 0.02]]
            )
        for spike in spikes:
            canvas.fill(np.array(spike), colour, 0.1)


def _eye(
    canvas: _Canvas,
    identity: Identity,
    ex: float,
    ey: float,
    side: int,
    p: dict[str, float],
    blink: float,
    skin_dark: tuple[int, int, int],
) -> None:
    """One almond eye; ``side`` is -1 for the image-left eye and +1 for the image-right eye."""
    half_w = 0.054 * identity.eye_size
    opening = 0.03 * identity.eye_size * max(0.0, 1.0 + p["eye_open"]) * (1.0 - blink)
    lower = 0.026 * identity.eye_size * (1.0 - 0.6 * p["lower_lid"]) * (1.0 - blink)
    u = _grid(-1, 1, _CURVE_POINTS)
    x = ex + u * half_w
    upper_y = ey - opening * (1 - u**2) ** 0.8 + 0.004 * u * side  # outer corner slightly lower
    lower_y = ey + lower * (1 - u**2) ** 0.9 + 0.004 * u * side
    if opening + lower > 0.004:
        sclera = np.concatenate([np.stack([x, upper_y], 1), np.stack([x, lower_y], 1)[::-1]])
        canvas.fill(sclera, (245, 245, 240), 0.6)
        iris_r = 0.021 * identity.eye_size
        ix = ex + p["gaze_x"] * half_w * 0.45
        iy = ey + p["gaze_y"] * opening * 0.5
        for radius, colour in ((iris_r, _colour(identity.eye_colour)), (iris_r * 0.45, (15, 12, 12))):
            circle = _ellipse(ix, iy, radius, radius, 20)
            # Clip the circle against the lids: clamp each point between the lid curves at its x.
            lid_u = np.clip((circle[:, 0] - ex) / half_w, -1, 1)
            top = ey - opening * (1 - lid_u**2) ** 0.8 + 0.004 * lid_u * side
            bottom = ey + lower * (1 - lid_u**2) ** 0.9 + 0.004 * lid_u * side
            circle[:, 1] = np.clip(circle[:, 1], top, bottom)
            circle[:, 0] = np.clip(circle[:, 0], ex - half_w, ex + half_w)
            canvas.fill(circle, colour, 0.6)
        canvas.fill(
            _ellipse(ix + iris_r * 0.3, iy - iris_r * 0.35, iris_r * 0.22, iris_r * 0.22, 8), (255, 255, 255), 0.6
        )  # catch-light makes the eye read as wet and alive
    lash = np.stack([x, upper_y], 1)
    canvas.line(lash, (30, 22, 20), 0.011, 0.6)
    crease = np.stack([x * 0.9 + ex * 0.1, upper_y - 0.012 - 0.004 * (1 - u**2)], 1)
    canvas.line(crease, skin_dark, 0.004, 0.6)


def _brow(canvas: _Canvas, identity: Identity, ex: float, ey: float, side: int, p: dict[str, float]) -> None:
    u = _grid(-1, 1, 12)  # -1 at the inner end (towards the nose)
    half_len = 0.05
    x = ex + side * u * half_len  # u = -1 lands on the side nearer the nose
    raise_ = 0.026 * p["brow_raise"] + 0.024 * side * p["brow_asymmetry"]
    inner = 0.03 * p["brow_inner"] * (1 - u) / 2  # only the inner end moves
    arch = 0.012 * (1 - u**2)
    y = ey - 0.06 - raise_ - inner - arch
    thickness = identity.brow_thickness * (1 - 0.4 * (u + 1) / 2)  # tapers towards the outer end
    top = np.stack([x, y - thickness / 2], 1)
    bottom = np.stack([x, y + thickness / 2], 1)
    canvas.fill(np.concatenate([top, bottom[::-1]]), _colour(identity.brow_colour), 0.5)


def _mouth(canvas: _Canvas, identity: Identity, cx: float, my: float, state: FaceState, p: dict[str, float]) -> None:
    shape = float(np.clip(state.mouth_shape, -1, 1))
    half_w = identity.mouth_width * (1 + 0.22 * shape + p["mouth_width"])
    # No upper clip below 1 + max jaw_open: the speech opening must stay readable on top of a dropped jaw.
    opening = MAX_MOUTH_OPENING * float(np.clip(state.mouth_open + p["jaw_open"], 0, 1.8))
    opening *= 1 + 0.25 * max(0.0, -shape)  # rounded lips open taller
    u = _grid(-1, 1, _CURVE_POINTS)
    x = cx + u * half_w
    asym = p["mouth_asymmetry"] * 0.025 * np.clip(u, 0, 1)  # one corner pulled up
    corner = 0.024 * p["mouth_corner"] * np.abs(u) ** 1.6 + asym  # smile lifts the corners
    sneer = 0.02 * p["sneer"] * np.exp(-((u + 0.45) ** 2) / 0.08)  # upper lip raised on one side
    base = my - corner
    lip = identity.lip_thickness
    upper_outer = base - lip * (1 - u**2) ** 0.5 - 0.004 * np.exp(-(u**2) / 0.03) - sneer
    upper_inner = base - 0.25 * opening * (1 - u**2) - sneer * 0.9
    lower_inner = base + opening * (1 - u**2) ** 0.7
    lower_outer = lower_inner + lip * 1.25 * (1 - u**2) ** 0.5
    lips = np.concatenate([np.stack([x, upper_outer], 1), np.stack([x, lower_outer], 1)[::-1]])
    canvas.fill(lips, _colour(identity.lip_colour), 0.7)
    gap = lower_inner - upper_inner
    if gap.max() > 0.004:
        interior = np.concatenate([np.stack([x, upper_inner], 1), np.stack([x, lower_inner], 1)[::-1]])
        canvas.fill(interior, (70, 20, 25), 0.7)
        teeth_h = min(0.018, gap.max() * 0.45) * (0.4 + 0.6 * min(1.0, p["teeth"] + 0.5))
        teeth_bottom = np.minimum(upper_inner + teeth_h * (1 - u**2) ** 0.3, lower_inner)
        keep = np.abs(u) < 0.8  # teeth stop before the corners
        teeth = np.concatenate(
            [np.stack([x[keep], upper_inner[keep]], 1), np.stack([x[keep], teeth_bottom[keep]], 1)[::-1]]
        )
        canvas.fill(teeth, (240, 238, 228), 0.7)
        tongue_top = np.maximum(lower_inner - gap * 0.35, teeth_bottom)
        tongue = np.concatenate(
            [np.stack([x[keep], tongue_top[keep]], 1), np.stack([x[keep], lower_inner[keep]], 1)[::-1]]
        )
        canvas.fill(tongue, (185, 80, 90), 0.7)
    else:
        canvas.line(np.stack([x, (upper_inner + lower_inner) / 2], 1), _colour(identity.lip_colour, 0.55), 0.008, 0.7)


def render_frame(
    identity: Identity, state: FaceState, size: int = DEFAULT_SIZE, background: np.ndarray | None = None
) -> np.ndarray:
    """One RGB frame, (size, size, 3) uint8. Pass ``background`` (from render_background) to skip redrawing it."""
    if background is None:
        background = render_background(identity, size)
    image = background.copy()
    canvas = _Canvas(image, state)
    p = expression_parameters(state.expression)
    cx, cy = FACE_CENTRE
    w, h = identity.face_width, identity.face_height

    flush = p["flush"]
    skin_rgb = np.asarray(identity.skin, dtype=np.float32)
    skin_rgb = skin_rgb + (np.array([16, -10, -10]) if flush > 0 else np.array([12, 12, 12])) * abs(flush)
    skin = _colour(skin_rgb)
    skin_dark = _colour(skin_rgb, 0.8)
    hair = _colour(identity.hair)

    # 1. Behind the head: back hair, shoulders, neck, ears.
    _hair_back(canvas, identity, cx, cy, hair)
    shoulders = _ellipse(cx, 1.08, w * 1.9, 0.2, 2 * _CURVE_POINTS)
    canvas.fill(shoulders, _colour(identity.shirt), -0.2)
    neck = np.array(
        [[cx - w * 0.45, cy + h * 0.5], [cx + w * 0.45, cy + h * 0.5], [cx + w * 0.5, 0.92], [cx - w * 0.5, 0.92]]
    )
    canvas.fill(neck, skin_dark, -0.1)
    for side in (-1, 1):
        ear_x = cx + side * w * 0.98
        canvas.fill(_ellipse(ear_x, cy + EYE_LINE + 0.03, 0.03, 0.05, 16), skin_dark, -0.2)
        if identity.earrings:
            canvas.fill(
                _ellipse(ear_x, cy + EYE_LINE + 0.095, 0.012, 0.012, 12), _colour(identity.earring_colour), -0.2
            )

    # 2. The face and its fixed marks.
    canvas.fill(_head_outline(identity, cx, cy), skin, 0.0)
    if identity.freckles:
        rng = np.random.default_rng(identity.seed)
        for fx, fy in rng.uniform(-1, 1, size=(10, 2)):
            side = 1 if fx > 0 else -1
            canvas.fill(
                _ellipse(cx + side * (0.06 + abs(fx) * 0.06), cy + 0.05 + fy * 0.025, 0.004, 0.004, 6),
                _colour(skin_rgb, 0.7),
                0.5,
            )
    _hair_front(canvas, identity, cx, cy, hair)

    # 3. Eyes and brows carry most of the expression.
    ey = cy + EYE_LINE
    for side in (-1, 1):
        ex = cx + side * identity.eye_spacing
        _eye(canvas, identity, ex, ey, side, p, state.blink, skin_dark)
        _brow(canvas, identity, ex, ey, side, p)
        if p["brow_inner"] < -0.3:  # frown lines between the brows
            canvas.line(
                np.array([[cx + side * 0.012, ey - 0.055], [cx + side * 0.018, ey - 0.03]]), skin_dark, 0.005, 0.6
            )

    # 4. Nose.
    nose_top = ey + 0.02
    nose_tip = ey + 0.02 + identity.nose_length
    nw = identity.nose_width
    canvas.line(
        np.array([[cx + 0.006, nose_top], [cx + nw * 0.6, nose_tip - 0.01], [cx + nw * 0.2, nose_tip]]),
        skin_dark,
        0.007,
        0.9,
    )
    for side in (-1, 1):
        canvas.fill(
            _ellipse(cx + side * nw * 0.45, nose_tip + 0.002, nw * 0.28, 0.008, 10), _colour(skin_rgb, 0.6), 0.9
        )
    if p["nose_wrinkle"] > 0.2:
        for k in range(2):
            yy = nose_top + 0.012 + k * 0.012
            canvas.line(
                np.array([[cx - 0.02, yy + 0.004], [cx, yy - 0.004], [cx + 0.02, yy + 0.004]]),
                skin_dark,
                0.005 * p["nose_wrinkle"],
                0.8,
            )

    # 5. Mouth: speech opening, vowel shape and expression corners.
    _mouth(canvas, identity, cx, cy + MOUTH_LINE, state, p)
    if p["lower_lid"] > 0.3:  # raised cheeks of a real smile
        for side in (-1, 1):
            canvas.fill(
                _ellipse(cx + side * 0.125, cy + 0.09, 0.035, 0.02, 14), _colour(skin_rgb + [20, -10, -10]), 0.4
            )

    # 6. Accessories in front of the face.
    if identity.glasses:
        frame = _colour(identity.glasses_colour)
        for side in (-1, 1):
            ex = cx + side * identity.eye_spacing
            if identity.glasses_round:
                rim = _ellipse(ex, ey, 0.058, 0.048, 28)
            else:
                t = np.linspace(0, 2 * np.pi, 28, endpoint=False)
                rim = np.stack(
                    [
                        ex + 0.062 * np.sign(np.cos(t)) * np.abs(np.cos(t)) ** 0.4,
                        ey + 0.042 * np.sign(np.sin(t)) * np.abs(np.sin(t)) ** 0.4,
                    ],
                    1,
                )
            canvas.line(np.concatenate([rim, rim[:1]]), frame, 0.009, 0.7)
        bridge = np.array(
            [
                [cx - identity.eye_spacing + 0.055, ey - 0.01],
                [cx, ey - 0.02],
                [cx + identity.eye_spacing - 0.055, ey - 0.01],
            ]
        )
        canvas.line(bridge, frame, 0.008, 0.7)
    return image


class FaceRenderer:
    """Renders many frames of one identity at one size, reusing the background."""

    def __init__(self, identity: Identity, size: int = DEFAULT_SIZE):
        if size < 16:
            raise ValueError(f"Image size {size} is too small to draw a face; use at least 16 pixels.")
        self.identity = identity
        self.size = size
        self.background = render_background(identity, size)

    def __call__(self, state: FaceState) -> np.ndarray:
        return render_frame(self.identity, state, self.size, self.background)

    def render_video(self, states: list[FaceState]) -> np.ndarray:
        """Frames for a list of states, shape (f, size, size, 3) uint8."""
        frames = np.empty((len(states), self.size, self.size, 3), dtype=np.uint8)
        for i, state in enumerate(states):
            frames[i] = self(state)
        return frames
