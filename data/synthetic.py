"""The embedded default dataset: procedural scenes whose colours follow from what the objects are.

Each of up to `MAX_CLASSES` object classes has its own shape, texture and colour distribution (a
class hue with a small spread and a class saturation range), so a colorizer can only predict the
colour of an object by recognising its shape and texture from the greyscale input. Luminance
varies widely within each class (random brightness times texture modulation), and the classes'
brightness ranges are set so that their grey levels overlap: grey level alone does not give the
class away. Objects are drawn over desaturated gradient backgrounds of random hue, whose colour is
mostly unpredictable. Every scene comes with a segmentation mask and
multi-hot labels, which makes the same data usable for the transfer tasks.

Rendering is pure TensorFlow and vectorised over a batch of scenes. Only the random draws are
made per scene (one stateless Philox call seeded with `(seed, index)`), so scene `i` depends on
`(seed, i)` alone. To keep scenes bit-identical whatever the batch they are rendered in, all
per-pixel and per-object maths uses only exactly rounded operations (+, -, *, /, floor, min, max,
comparisons): Eigen's vectorised and scalar code paths for transcendental functions (sin, cos,
exp, ...) can differ in the last bit, and which path an element takes depends on the tensor size.
"""

import functools
import math

import tensorflow as tf

MAX_CLASSES = 8

# Class c (mask value c, label column c - 1) is SYNTHETIC_CLASS_NAMES[c - 1]. The order is chosen so
# that the default 6 classes already have hues spread around the wheel.
SYNTHETIC_CLASS_NAMES = (
    "red_disk",
    "green_square",
    "blue_triangle",
    "yellow_ring",
    "purple_cross",
    "cyan_diamond",
    "orange_ellipse",
    "magenta_star",
)

# HSV hue of each class in turns (0 = red, 1/3 = green, 2/3 = blue) and its saturation range.
_CLASS_HUES = (0.0, 0.33, 0.62, 0.15, 0.78, 0.5, 0.09, 0.91)
_CLASS_SATURATIONS = (
    (0.70, 0.95),
    (0.50, 0.80),
    (0.55, 0.85),
    (0.65, 0.95),
    (0.45, 0.75),
    (0.50, 0.80),
    (0.75, 1.00),
    (0.50, 0.80),
)
_HUE_SPREAD = 0.025  # +- turns (9 degrees); the closest class hues are 22 degrees apart (28 in Lab)
# HSV value of an object before texture modulation. Wide, so luminance varies within a class, and
# lower for hues that are light at full value (yellow, cyan, green), so that the classes' grey
# levels overlap broadly and L alone does not tell them apart.
_CLASS_BRIGHTNESS = (
    (0.45, 1.00),
    (0.35, 0.85),
    (0.50, 1.00),
    (0.30, 0.80),
    (0.50, 1.00),
    (0.30, 0.80),
    (0.35, 0.90),
    (0.45, 1.00),
)
_TEXTURE_DARK = 0.5  # the darkest texture modulation factor (the lightest is 1)

_RADIUS_RANGE = (0.12, 0.26)  # object radius as a fraction of the image size
_MIN_RADIUS_PX = 3.0  # so that small images still draw recognisable, never empty objects
_CENTRE_RANGE = (0.15, 0.85)  # object centres as a fraction of the image size: always in view
_MAX_ROTATION = 0.35  # radians; small so a square never turns into a diamond (45 degrees)

_BACKGROUND_SATURATION_MAX = 0.08  # faint tints: objects (from 0.45) carry the colour to be learnt
_BACKGROUND_VALUE_RANGE = (0.25, 0.95)
_NOISE_AMPLITUDE = 0.05  # peak-to-peak grey noise added to the whole image (sensor-like grain)

# Layout of the uniform draws of one scene: scene fields, then max_objects object records, then
# one noise plane (the image grain, reused by the "fine noise" texture: half the draws).
_SCENE_FIELDS = 9  # n_objects, background colour 0 (h, s, v), colour 1 (h, s, v), gradient (x, y)
# Per object: class, cx, cy, radius, rotation, hue jitter, saturation, brightness, phase u, phase v.
_OBJECT_FIELDS = 10


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _validate(image_size, num_classes, max_objects):
    if not _is_int(num_classes) or not 1 <= num_classes <= MAX_CLASSES:
        raise ValueError(
            f"num_classes must be an int in 1..{MAX_CLASSES}, received {num_classes!r}."
        )
    if not _is_int(image_size) or image_size < 16:
        raise ValueError(f"image_size must be an int >= 16, received {image_size!r}.")
    if not _is_int(max_objects) or max_objects < 1:
        raise ValueError(f"max_objects must be an int >= 1, received {max_objects!r}.")


def _lerp(t, low, high):
    return low + (high - low) * t


def _parity(x):
    """0 or 1 for an integer-valued float tensor: whether it is odd."""
    return x - 2.0 * tf.floor(x * 0.5)


def _fraction(x):
    return x - tf.floor(x)


def _cos_sin(theta):
    """Taylor cos and sin (exact to ~1e-7 for |theta| <= 0.5), with only exactly rounded ops."""
    t2 = theta * theta
    cos = 1.0 - t2 / 2.0 * (1.0 - t2 / 12.0 * (1.0 - t2 / 30.0 * (1.0 - t2 / 56.0)))
    sin = theta * (1.0 - t2 / 6.0 * (1.0 - t2 / 20.0 * (1.0 - t2 / 42.0)))
    return cos, sin


def _hsv_to_rgb(hue, saturation, value):
    """HSV (hue in turns) to RGB with a trailing channel axis, using only exactly rounded ops."""
    k = tf.stack([5.0 + 6.0 * hue, 3.0 + 6.0 * hue, 1.0 + 6.0 * hue], axis=-1)
    k = k - 6.0 * tf.floor(k / 6.0)
    ramp = tf.clip_by_value(tf.minimum(k, 4.0 - k), 0.0, 1.0)
    return value[..., None] * (1.0 - saturation[..., None] * ramp)


# Shapes, in object coordinates: u to the right, v up, the object's radius is 1.
def _disk(u, v):
    return u * u + v * v <= 1.0


def _square(u, v):
    return tf.maximum(tf.abs(u), tf.abs(v)) <= 0.82


def _triangle(u, v):
    # Equilateral, pointing up, slightly larger than the one inscribed in the unit circle.
    return (v >= -0.55) & (v <= 1.1 - math.sqrt(3.0) * tf.abs(u))


def _ring(u, v):
    radius2 = u * u + v * v
    return (radius2 >= 0.3) & (radius2 <= 1.0)  # inner radius ~0.55


def _cross(u, v):
    au, av = tf.abs(u), tf.abs(v)
    return (tf.minimum(au, av) <= 0.3) & (tf.maximum(au, av) <= 0.95)


def _diamond(u, v):
    return tf.abs(u) + tf.abs(v) <= 1.05


def _ellipse(u, v):
    return u * u + v * v * (1.0 / 0.55**2) <= 1.0  # horizontal, half-height 0.55


# The five edge lines of a pentagram with tips at radius 1.1: the line whose normal points at tip
# k passes through tips k - 1 and k + 1. A filled pentagram is the set of points beyond at most one
# of the lines (the inner pentagon is beyond none, each tip beyond exactly one).
_STAR_NORMALS = tuple(
    (math.cos(math.pi / 2 + 2 * math.pi * k / 5), math.sin(math.pi / 2 + 2 * math.pi * k / 5))
    for k in range(5)
)
_STAR_OFFSET = 1.1 * math.cos(2 * math.pi / 5)


def _star(u, v):
    beyond = [tf.cast(nx * u + ny * v > _STAR_OFFSET, tf.float32) for nx, ny in _STAR_NORMALS]
    return tf.add_n(beyond) <= 1.0


# Textures: luminance factors in [_TEXTURE_DARK, 1]. (u, v) are centred object coordinates, (pu, pv)
# the same shifted by a random phase so that periodic patterns do not lock onto the centre.
def _dark_where(condition):
    return tf.where(condition, _TEXTURE_DARK, 1.0)


def _flat(u, v, pu, pv, noise):
    return tf.ones_like(u)


def _stripes(u, v, pu, pv, noise):
    return _dark_where(_parity(tf.floor(pu / 0.25)) > 0.5)


def _checker(u, v, pu, pv, noise):
    return _dark_where(_parity(tf.floor(pu / 0.4) + tf.floor(pv / 0.4)) > 0.5)


def _dots(u, v, pu, pv, noise):
    du = _fraction(pu / 0.4) - 0.5
    dv = _fraction(pv / 0.4) - 0.5
    return _dark_where(du * du + dv * dv < 0.1)


def _gradient(u, v, pu, pv, noise):
    return _lerp(tf.clip_by_value(0.5 + 0.5 * v, 0.0, 1.0), _TEXTURE_DARK, 1.0)  # light at the top


def _fine_noise(u, v, pu, pv, noise):
    return _lerp(noise(), _TEXTURE_DARK, 1.0)


def _rings(u, v, pu, pv, noise):
    # Bands of equal squared radius: concentric rings, thinner outwards, without a square root.
    return _dark_where(_parity(tf.floor((u * u + v * v) / 0.15)) > 0.5)


def _hatch(u, v, pu, pv, noise):
    return _dark_where(_fraction((pu - pv) / 0.35) < 0.35)  # thin diagonal lines


_SHAPES = (_disk, _square, _triangle, _ring, _cross, _diamond, _ellipse, _star)
_TEXTURES = (_flat, _stripes, _checker, _dots, _gradient, _fine_noise, _rings, _hatch)


def _per_scene_uniforms(indices, seed, size):
    """[B, size] uniforms in [0, 1); row i is a stateless Philox stream seeded with (seed, index_i).

    Stateless random ops take one seed per call, so the draws loop over the scenes (one cheap op
    each); the costly per-pixel work is then vectorised over the whole batch.
    """
    seed = tf.cast(seed, tf.int64)

    def draw(index):
        return tf.random.stateless_uniform([size], seed=tf.stack([seed, index]), alg="philox")

    return tf.map_fn(draw, indices, fn_output_signature=tf.TensorSpec([size], tf.float32))


def render_scenes(indices, *, seed, image_size, num_classes=6, max_objects=3):
    """Vectorised render of a batch of scenes. indices: int64 tensor [B].

    Returns dict(image=float32 [B,S,S,3] sRGB in [0,1], mask=int32 [B,S,S], labels=float32 [B,K]).
    The mask holds 0 for background and c for class c (1..K); labels[:, c - 1] is 1 exactly when
    class c has a visible pixel. Scene i depends only on (seed, indices[i]) and the arguments.
    """
    _validate(image_size, num_classes, max_objects)
    size, classes, slots = image_size, num_classes, max_objects
    indices = tf.cast(tf.reshape(tf.convert_to_tensor(indices), [-1]), tf.int64)
    batch = tf.shape(indices)[0]

    scene_end = _SCENE_FIELDS
    objects_end = scene_end + _OBJECT_FIELDS * slots
    draws = _per_scene_uniforms(indices, seed, objects_end + size * size)
    scene = tf.unstack(draws[:, :scene_end], axis=1)
    objects = tf.reshape(draws[:, scene_end:objects_end], [-1, slots, _OBJECT_FIELDS])
    noise = tf.reshape(draws[:, objects_end:], [-1, size, size])
    pixels = tf.range(size, dtype=tf.float32) + 0.5  # pixel centres

    # Background: a linear gradient between two desaturated colours of independent random hue,
    # with a random direction and steepness (clipped, so some scenes are nearly flat halves).
    colour0 = _hsv_to_rgb(scene[1], scene[2] * _BACKGROUND_SATURATION_MAX,
                          _lerp(scene[3], *_BACKGROUND_VALUE_RANGE))
    colour1 = _hsv_to_rgb(scene[4], scene[5] * _BACKGROUND_SATURATION_MAX,
                          _lerp(scene[6], *_BACKGROUND_VALUE_RANGE))
    centred = pixels / size - 0.5
    ramp = (0.5 + (2.0 * scene[7] - 1.0)[:, None, None] * centred[None, None, :]
            + (2.0 * scene[8] - 1.0)[:, None, None] * centred[None, :, None])
    ramp = tf.clip_by_value(ramp, 0.0, 1.0)
    # The image is built as one [B, S, S] plane per channel: broadcasting per-scene values over
    # such planes is much cheaper than over [B, S, S, 3] with a per-scene colour.
    planes = [colour0[:, c, None, None] + (colour1 - colour0)[:, c, None, None] * ramp
              for c in range(3)]

    # Objects: 1..max_objects per scene (uniform), each of a uniformly drawn class.
    num_objects = tf.minimum(1.0 + tf.floor(scene[0] * slots), float(slots))
    active = tf.range(slots, dtype=tf.float32)[None, :] < num_objects[:, None]
    class_index = tf.minimum(tf.cast(tf.floor(objects[..., 0] * classes), tf.int32), classes - 1)
    centre_x = size * _lerp(objects[..., 1], *_CENTRE_RANGE)
    centre_y = size * _lerp(objects[..., 2], *_CENTRE_RANGE)
    radius = tf.maximum(size * _lerp(objects[..., 3], *_RADIUS_RANGE), _MIN_RADIUS_PX)
    cos, sin = _cos_sin(_lerp(objects[..., 4], -_MAX_ROTATION, _MAX_ROTATION))
    cos, sin = cos / radius, sin / radius
    # Object coordinates of pixel (x, y): u = (x - cx) * cos_r + (y - cy) * sin_r and v = (x - cx)
    # * sin_r - (y - cy) * cos_r (v points up, image rows down), where *_r are divided by radius.
    geometry = tf.stack([centre_x, centre_y, cos, sin, sin, -cos, objects[..., 8], objects[..., 9]],
                        axis=-1)
    scene_row = tf.broadcast_to(tf.range(batch)[:, None], [batch, slots])

    # Render each object with its own class's shape and texture only: partition the objects by
    # class (inactive slots go to an extra partition that is never drawn) and stitch them back.
    flat_count = batch * slots
    partition = tf.reshape(tf.where(active, class_index, classes), [-1])
    geometry_parts = tf.dynamic_partition(tf.reshape(geometry, [-1, 8]), partition, classes + 1)
    row_parts = tf.dynamic_partition(tf.reshape(scene_row, [-1]), partition, classes + 1)
    slot_parts = tf.dynamic_partition(tf.range(flat_count), partition, classes + 1)
    coverages = []
    for k in range(classes):
        params = geometry_parts[k]
        dx = pixels[None, None, :] - params[:, 0, None, None]  # [n, 1, S]
        dy = pixels[None, :, None] - params[:, 1, None, None]  # [n, S, 1]
        u = params[:, 2, None, None] * dx + params[:, 3, None, None] * dy
        v = params[:, 4, None, None] * dx + params[:, 5, None, None] * dy
        pu = u + params[:, 6, None, None]
        pv = v + params[:, 7, None, None]
        rows = row_parts[k]
        texture = _TEXTURES[k](u, v, pu, pv, lambda rows=rows: tf.gather(noise, rows))
        # Coverage: the texture factor (> 0) inside the shape, 0 outside.
        coverages.append(tf.where(_SHAPES[k](u, v), texture, 0.0))
    coverages.append(tf.zeros([tf.shape(slot_parts[classes])[0], size, size]))
    coverage = tf.reshape(tf.dynamic_stitch(slot_parts, coverages), [-1, slots, size, size])

    # Colour: class hue with a small jitter, class saturation and brightness ranges.
    hue = tf.gather(tf.constant(_CLASS_HUES), class_index)
    hue = hue + _lerp(objects[..., 5], -_HUE_SPREAD, _HUE_SPREAD)
    saturation_range = tf.gather(tf.constant(_CLASS_SATURATIONS), class_index)
    saturation = _lerp(objects[..., 6], saturation_range[..., 0], saturation_range[..., 1])
    brightness_range = tf.gather(tf.constant(_CLASS_BRIGHTNESS), class_index)
    brightness = _lerp(objects[..., 7], brightness_range[..., 0], brightness_range[..., 1])
    object_rgb = _hsv_to_rgb(hue, saturation, brightness)  # [B, slots, 3]; scales with HSV value

    # Paint in slot order, so later objects occlude earlier ones.
    mask = tf.zeros([batch, size, size], tf.int32)
    for slot in range(slots):
        cover = coverage[:, slot]
        inside = cover > 0.0
        planes = [tf.where(inside, object_rgb[:, slot, c, None, None] * cover, planes[c])
                  for c in range(3)]
        mask = tf.where(inside, class_index[:, slot, None, None] + 1, mask)

    grain = _NOISE_AMPLITUDE * (noise - 0.5)
    planes = [tf.clip_by_value(plane + grain, 0.0, 1.0) for plane in planes]
    image = tf.transpose(tf.stack(planes), [1, 2, 3, 0])  # faster than stacking on the last axis
    counts = tf.math.bincount(tf.reshape(mask, [batch, size * size]), minlength=classes + 1,
                              maxlength=classes + 1, axis=-1)
    labels = tf.cast(counts[:, 1:] > 0, tf.float32)
    return {
        "image": tf.ensure_shape(image, [None, size, size, 3]),
        "mask": tf.ensure_shape(mask, [None, size, size]),
        "labels": tf.ensure_shape(labels, [None, classes]),
    }


@functools.lru_cache(maxsize=32)
def scene_renderer(seed, image_size, num_classes=6, max_objects=3):
    """`render_scenes` with these arguments as one `tf.function` of the indices, traced once per process:
    every dataset built from it (each fine-tuning run builds three) calls the traced graph instead of
    tracing the renderer again, about a second each on a CPU. Same scenes, bit for bit."""
    _validate(image_size, num_classes, max_objects)
    return tf.function(functools.partial(render_scenes, seed=seed, image_size=image_size, num_classes=num_classes,
                                         max_objects=max_objects),
                       input_signature=[tf.TensorSpec([None], tf.int64)], autograph=False)


def synthetic_dataset(*, seed=0, image_size=64, num_classes=6, max_objects=3, start=0, count=None,
                      render_batch=64, shard=None):
    """tf.data.Dataset of single scenes (dicts with keys image, mask, labels).

    Shapes are [S,S,3], [S,S] and [K]. Scene i (global index start, start+1, ...) depends only on
    (seed, i): the same seed and index give the same scene bit for bit, whatever start/count/
    render_batch. count=None means infinite. Scenes are rendered render_batch at a time and then
    unbatched, so the per-pixel work is vectorised. `shard=(index, workers, block)` keeps (and
    renders) only the scenes i with (i // block) % workers == index: one worker's slot of every
    run of `workers * block` scenes.
    """
    _validate(image_size, num_classes, max_objects)
    if not _is_int(start) or start < 0:
        raise ValueError(f"start must be an int >= 0, received {start!r}.")
    if count is not None and (not _is_int(count) or count < 0):
        raise ValueError(f"count must be None or an int >= 0, received {count!r}.")
    if not _is_int(render_batch) or render_batch < 1:
        raise ValueError(f"render_batch must be an int >= 1, received {render_batch!r}.")

    if count is None:
        indices = tf.data.Dataset.counter(start=start, dtype=tf.int64)
    else:
        indices = tf.data.Dataset.range(start, start + count, output_type=tf.int64)
    if shard is not None:
        index, workers, block = (tf.constant(v, tf.int64) for v in shard)
        indices = indices.filter(lambda i: tf.equal(tf.math.floordiv(i, block) % workers, index))

    render = scene_renderer(int(seed), image_size, num_classes, max_objects)
    ds = indices.batch(render_batch).map(render, num_parallel_calls=tf.data.AUTOTUNE,
                                         deterministic=True)
    return ds.unbatch().prefetch(tf.data.AUTOTUNE)
