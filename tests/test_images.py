"""Tests of data/files.py, data/decode.py and data/stream.py: decoding awkward files, skipping junk, listing, splitting and resuming.

Every fixture is written into `tmp_path` with PIL and numpy. Reference pixels come from PIL's own
conversion. Tolerances: lossless formats must match to float rounding (1e-6); JPEG may differ by
2/255 per value and 0.5/255 on average, the honest margin between two independent libjpeg builds
(with the accurate integer DCT both decoders agree exactly here); alpha compositing in float versus
PIL's 8-bit arithmetic may differ by 1/255.
"""

import io
import logging
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from data.decode import DecodeStats, check_readable, is_greyscale, load_rgb
from data.files import list_images, split_paths
from data.stream import image_file_dataset

REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata"
COCO = REALDATA / "coco2014-mini" / "train2014"
BSDS_VAL = REALDATA / "bsds500" / "val"

EXACT = 1e-6
JPEG_MAX = 2 / 255
JPEG_MEAN = 0.5 / 255
ALPHA_TOL = 1 / 255 + 1e-6


def _photo(h=48, w=64, seed=0):
    """A smooth, colourful uint8 RGB image with a little noise, like a small photo."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    rgb = 0.5 + 0.4 * np.stack([np.sin(6 * x + seed), np.cos(5 * y), np.sin(4 * (x + y))], -1)
    rgb = rgb + rng.normal(0, 0.02, rgb.shape)
    return (np.clip(rgb, 0, 1) * 255).round().astype(np.uint8)


def _pil_rgb(path):
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255


def _over_white(pil_image):
    """PIL's own compositing of an image with alpha over white, as float RGB."""
    rgba = pil_image.convert("RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"), dtype=np.float32) / 255


def _load(path):
    image = load_rgb(str(path)).numpy()
    assert image.dtype == np.float32 and image.ndim == 3 and image.shape[-1] == 3
    assert 0.0 <= image.min() and image.max() <= 1.0
    return image


def _assert_jpeg_close(got, want):
    diff = np.abs(got - want)
    assert diff.max() <= JPEG_MAX, diff.max() * 255
    assert diff.mean() <= JPEG_MEAN, diff.mean() * 255


def _write_png16(path, array):
    """Writes a 16-bit PNG (grey, LA, RGB or RGBA) with zlib; PIL cannot write 16-bit RGB."""
    array = np.asarray(array, dtype=">u2")
    h, w = array.shape[:2]
    channels = 1 if array.ndim == 2 else array.shape[2]
    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    rows = b"".join(b"\x00" + array[i].tobytes() for i in range(h))

    def chunk(kind, data):
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    header = struct.pack(">IIBBBBB", w, h, 16, colour_type, 0, 0, 0)
    chunks = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    Path(path).write_bytes(b"\x89PNG\r\n\x1a\n" + chunks)


def _junk_files(folder, source_rgb):
    """Writes one file of each unreadable kind; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    jpeg = io.BytesIO()
    Image.fromarray(source_rgb).save(jpeg, "JPEG", quality=90)
    png = io.BytesIO()
    Image.fromarray(source_rgb).save(png, "PNG")
    jpeg, png = jpeg.getvalue(), png.getvalue()
    broken_header = bytearray(png)
    broken_header[12:16] = b"XXXX"  # the IHDR chunk type
    files = {
        "truncated.jpg": jpeg[: len(jpeg) // 2],
        "no_end_marker.jpg": jpeg[:-2],
        "truncated.png": png[: len(png) // 2],
        "empty.jpg": b"",
        "text.jpg": b"this is a text file, not a photo\n",
        "broken_header.png": bytes(broken_header),
    }
    paths = []
    for name, data in files.items():
        (folder / name).write_bytes(data)
        paths.append(str(folder / name))
    return paths


def _colour_files(folder, count, size=(6, 5)):
    """Writes `count` flat PNGs of distinct colours; returns the paths and a colour->index map."""
    folder.mkdir(parents=True, exist_ok=True)
    paths, index = [], {}
    for i in range(count):
        colour = (20 + 9 * i, 200 - 7 * i, 60 + (37 * i) % 150)
        Image.new("RGB", size, colour).save(folder / f"c{i:03d}.png")
        paths.append(str(folder / f"c{i:03d}.png"))
        index[colour] = i
    return paths, index


def _ids(dataset, index):
    """File indices of a stream of flat-colour images."""
    out = []
    for image in dataset:
        colour = tuple(int(v) for v in np.round(image.numpy()[0, 0] * 255))
        out.append(index[colour])
    return out


# ----------------------------------------------------------------------------------------------
# Decoding awkward files


def test_rgb_jpeg_matches_pil(tmp_path):
    path = tmp_path / "photo.jpg"
    Image.fromarray(_photo()).save(path, quality=90)
    image = _load(path)
    assert image.shape == (48, 64, 3)
    _assert_jpeg_close(image, _pil_rgb(path))


def test_greyscale_jpeg_and_png_become_three_equal_channels(tmp_path):
    grey = Image.fromarray(_photo()).convert("L")
    grey.save(tmp_path / "grey.jpg", quality=90)
    grey.save(tmp_path / "grey.png")
    jpeg = _load(tmp_path / "grey.jpg")
    png = _load(tmp_path / "grey.png")
    for image in (jpeg, png):
        assert image.shape == (48, 64, 3)
        np.testing.assert_array_equal(image[..., 0], image[..., 1])
        np.testing.assert_array_equal(image[..., 0], image[..., 2])
    _assert_jpeg_close(jpeg, _pil_rgb(tmp_path / "grey.jpg"))
    np.testing.assert_allclose(png, _pil_rgb(tmp_path / "grey.png"), atol=EXACT)


def test_cmyk_jpeg_converts_like_pil_and_keeps_colours(tmp_path):
    source = _photo()
    path = tmp_path / "cmyk.jpg"
    Image.fromarray(source).convert("CMYK").save(path, quality=95)
    assert Image.open(path).mode == "CMYK"
    image = _load(path)
    assert image.shape == (48, 64, 3)
    _assert_jpeg_close(image, _pil_rgb(path))
    # Not inverted or channel-swapped: close to the RGB photo it was made from.
    assert np.abs(image - source / 255).mean() < 0.03


def test_16bit_png_rgb_and_grey_scale_by_65535(tmp_path):
    rng = np.random.default_rng(3)
    rgb16 = rng.integers(0, 65536, size=(5, 4, 3), dtype=np.uint16)
    rgb16[0, 0] = (0, 1000, 65535)
    grey16 = rng.integers(0, 65536, size=(3, 7), dtype=np.uint16)
    grey16[0, :3] = (0, 1000, 65535)
    _write_png16(tmp_path / "rgb16.png", rgb16)
    _write_png16(tmp_path / "grey16.png", grey16)

    rgb = _load(tmp_path / "rgb16.png")
    assert rgb.shape == (5, 4, 3)
    np.testing.assert_allclose(rgb, rgb16 / 65535, atol=EXACT)
    np.testing.assert_allclose(rgb[0, 0], [0.0, 1000 / 65535, 1.0], atol=EXACT)
    # PIL reduces 16-bit RGB to 8 bits (value >> 8): agreement within one 8-bit step.
    assert np.abs(rgb - _pil_rgb(tmp_path / "rgb16.png")).max() <= 1 / 255 + EXACT

    grey = _load(tmp_path / "grey16.png")
    assert grey.shape == (3, 7, 3)
    np.testing.assert_allclose(grey, np.repeat(grey16[..., None] / 65535, 3, -1), atol=EXACT)
    # (PIL's convert("RGB") of mode I;16 clips at 255 instead of scaling: no reference here.)


def test_palette_png_with_and_without_transparency(tmp_path):
    palette = Image.fromarray(_photo()).convert("P", palette=Image.Palette.ADAPTIVE, colors=32)
    palette.save(tmp_path / "palette.png")
    np.testing.assert_allclose(
        _load(tmp_path / "palette.png"), _pil_rgb(tmp_path / "palette.png"), atol=EXACT
    )

    transparent_index = int(np.asarray(palette)[0, 0])
    palette.save(tmp_path / "palette_trns.png", transparency=transparent_index)
    image = _load(tmp_path / "palette_trns.png")
    reference = _over_white(Image.open(tmp_path / "palette_trns.png"))
    np.testing.assert_allclose(image, reference, atol=ALPHA_TOL)
    np.testing.assert_allclose(image[0, 0], [1.0, 1.0, 1.0], atol=EXACT)  # transparent -> white


def test_rgba_png_is_composited_over_white(tmp_path):
    rgb = _photo(8, 10)
    alpha = np.tile(np.linspace(0, 255, 10).round().astype(np.uint8), (8, 1))
    Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(tmp_path / "rgba.png")
    image = _load(tmp_path / "rgba.png")
    assert image.shape == (8, 10, 3)
    reference = _over_white(Image.open(tmp_path / "rgba.png"))
    np.testing.assert_allclose(image, reference, atol=ALPHA_TOL)
    np.testing.assert_allclose(image[:, 0], 1.0, atol=EXACT)  # fully transparent -> white
    np.testing.assert_allclose(image[:, -1], rgb[:, -1] / 255, atol=EXACT)  # opaque -> its colour


def test_la_png_is_grey_composited_over_white(tmp_path):
    grey = np.asarray(Image.fromarray(_photo(8, 10)).convert("L"))
    alpha = np.full((8, 10), 128, np.uint8)
    alpha[:, :3] = 0
    alpha[:, -3:] = 255
    Image.fromarray(np.dstack([grey, alpha]), "LA").save(tmp_path / "la.png")
    image = _load(tmp_path / "la.png")
    np.testing.assert_allclose(image, _over_white(Image.open(tmp_path / "la.png")), atol=ALPHA_TOL)
    np.testing.assert_allclose(image[:, :3], 1.0, atol=EXACT)
    np.testing.assert_allclose(image[:, -3:, 0], grey[:, -3:] / 255, atol=EXACT)


def test_bmp_24bit_32bit_and_palette(tmp_path):
    source = _photo(7, 9)
    Image.fromarray(source).save(tmp_path / "rgb24.bmp")
    np.testing.assert_allclose(_load(tmp_path / "rgb24.bmp"), source / 255, atol=EXACT)

    # 32-bit BMP: the 4th byte is not alpha for PIL (nor for us), so colours stay as stored.
    alpha = np.full((7, 9), 0, np.uint8)
    Image.fromarray(np.dstack([source, alpha]), "RGBA").save(tmp_path / "rgb32.bmp")
    assert (tmp_path / "rgb32.bmp").read_bytes()[28] == 32  # bits per pixel
    np.testing.assert_allclose(_load(tmp_path / "rgb32.bmp"), source / 255, atol=EXACT)
    np.testing.assert_allclose(_pil_rgb(tmp_path / "rgb32.bmp"), source / 255, atol=EXACT)

    # 8-bit palette BMP: pixels go through the colour table (TF alone returns the indices as grey).
    palette = Image.fromarray(source).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    palette.save(tmp_path / "palette.bmp")
    assert Image.open(tmp_path / "palette.bmp").mode == "P"
    reference = _pil_rgb(tmp_path / "palette.bmp")
    np.testing.assert_allclose(_load(tmp_path / "palette.bmp"), reference, atol=EXACT)

    Image.fromarray(source).convert("L").save(tmp_path / "grey.bmp")
    reference = _pil_rgb(tmp_path / "grey.bmp")
    np.testing.assert_allclose(_load(tmp_path / "grey.bmp"), reference, atol=EXACT)


def test_gif_gives_its_first_frame(tmp_path):
    frames = [Image.fromarray(_photo(6, 8, seed=s)).convert("P") for s in range(3)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=50)
    assert Image.open(tmp_path / "anim.gif").n_frames == 3
    image = _load(tmp_path / "anim.gif")
    assert image.shape == (6, 8, 3)
    reference = _pil_rgb(tmp_path / "anim.gif")  # PIL opens frame 0
    np.testing.assert_allclose(image, reference, atol=EXACT)


def test_tiny_images_are_returned_as_is(tmp_path):
    Image.fromarray(_photo(5, 3)).save(tmp_path / "tiny.png")
    Image.new("RGB", (1, 1), (255, 0, 0)).save(tmp_path / "one.png")
    tiny = _load(tmp_path / "tiny.png")
    assert tiny.shape == (5, 3, 3)
    np.testing.assert_allclose(tiny, _pil_rgb(tmp_path / "tiny.png"), atol=EXACT)
    np.testing.assert_allclose(_load(tmp_path / "one.png"), [[[1.0, 0.0, 0.0]]], atol=EXACT)
    dataset = image_file_dataset([str(tmp_path / "tiny.png"), str(tmp_path / "one.png")])
    assert [tuple(x.shape) for x in dataset] == [(5, 3, 3), (1, 1, 3)]


def test_content_not_extension_decides_the_decoder(tmp_path):
    Image.fromarray(_photo()).save(tmp_path / "really_a_jpeg.png", "JPEG", quality=90)
    Image.fromarray(_photo()).save(tmp_path / "really_a_png.JPG", "PNG")
    reference = _pil_rgb(tmp_path / "really_a_jpeg.png")
    _assert_jpeg_close(_load(tmp_path / "really_a_jpeg.png"), reference)
    np.testing.assert_allclose(_load(tmp_path / "really_a_png.JPG"), _photo() / 255, atol=EXACT)


def test_each_unreadable_kind_raises_in_load_rgb(tmp_path):
    for path in _junk_files(tmp_path, _photo()):
        with pytest.raises(tf.errors.OpError):
            load_rgb(path)


# ----------------------------------------------------------------------------------------------
# Streaming and counting


def test_stream_skips_junk_drops_greyscale_and_counts(tmp_path):
    good, _ = _colour_files(tmp_path / "good", 5)
    junk = _junk_files(tmp_path / "junk", _photo())
    Image.fromarray(_photo()).convert("L").save(tmp_path / "grey.png")
    grey = np.asarray(Image.fromarray(_photo()).convert("L"))
    grey_rgb = Image.fromarray(np.repeat(grey[..., None], 3, -1))
    grey_rgb.save(tmp_path / "grey_as_rgb.jpg", quality=90)
    greys = [str(tmp_path / "grey.png"), str(tmp_path / "grey_as_rgb.jpg")]
    # Junk first, in the middle and last: failures at the very end of the stream are counted too.
    paths = junk[:2] + good[:2] + greys[:1] + junk[2:4] + good[2:] + greys[1:] + junk[4:]

    stats = DecodeStats()
    dataset = image_file_dataset(paths, stats=stats)
    assert dataset.element_spec.shape.as_list() == [None, None, 3]
    out = list(dataset)
    assert len(out) == 5
    assert stats.as_dict() == {"seen": 13, "decoded": 7, "skipped": 6, "greyscale": 2}
    assert int(stats.skipped) == 6
    assert stats.summary() == "images: 13 read, 6 unreadable skipped, 2 greyscale dropped"

    stats.reset()
    kept = list(image_file_dataset(paths, stats=stats, drop_greyscale=False))
    assert len(kept) == 7
    assert stats.as_dict() == {"seen": 13, "decoded": 7, "skipped": 6, "greyscale": 0}
    grey = kept[2].numpy()
    np.testing.assert_array_equal(grey[..., 0], grey[..., 2])

    # Without stats the same images come out.
    plain = list(image_file_dataset(paths))
    assert all(np.array_equal(a.numpy(), b.numpy()) for a, b in zip(plain, out)) and len(plain) == 5


def test_counters_are_exact_under_parallel_decode_and_repeat(tmp_path):
    good, _ = _colour_files(tmp_path, 40, size=(16, 16))
    junk = _junk_files(tmp_path / "junk", _photo())
    paths = good + junk
    stats = DecodeStats()
    # An endless shuffled stream cut after 120 images: every file counted is decoded or skipped.
    stream = image_file_dataset(paths, stats=stats, shuffle=True, seed=3, repeat=True)
    taken = list(stream.take(120))
    assert len(taken) == 120
    counts = stats.as_dict()
    assert counts["seen"] == counts["decoded"] + counts["skipped"] and counts["skipped"] >= 12

    stats.reset()
    assert stats.as_dict() == {"seen": 0, "decoded": 0, "skipped": 0, "greyscale": 0}
    # Each file three times in one shuffled finite stream: every count is known exactly.
    finite = image_file_dataset(paths * 3, stats=stats, shuffle=True, seed=3)
    assert len(list(finite)) == 120
    assert stats.as_dict() == {"seen": 138, "decoded": 120, "skipped": 18, "greyscale": 0}


def test_stream_of_no_usable_file_raises_instead_of_spinning(tmp_path):
    junk = _junk_files(tmp_path / "junk", _photo())
    for repeat in (False, True):
        stats = DecodeStats()
        dataset = image_file_dataset(junk, stats=stats, repeat=repeat, shuffle=True)
        with pytest.raises(tf.errors.InvalidArgumentError, match="None of the 6 files of an epoch"):
            list(dataset)
        assert stats.as_dict()["skipped"] == 6
        # Pulling on after the error (as a background prefetch does) ends the stream, counting
        # nothing twice, instead of decoding the junk again.
        stream = iter(dataset)
        stats.reset()
        with pytest.raises(tf.errors.InvalidArgumentError, match="None of the 6 files"):
            next(stream)
        with pytest.raises(StopIteration):
            next(stream)
        assert stats.as_dict() == {"seen": 6, "decoded": 0, "skipped": 6, "greyscale": 0}
    Image.fromarray(_photo()).convert("L").save(tmp_path / "grey.png")
    greys = [str(tmp_path / "grey.png")] * 3
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"pass drop_greyscale=False"):
        list(image_file_dataset(greys, repeat=True))
    kept = image_file_dataset(greys, repeat=True, drop_greyscale=False)
    assert len(list(kept.take(5))) == 5
    # A partial first epoch (after skip) of junk only is not an error: later epochs have images.
    good, _ = _colour_files(tmp_path / "good", 1)
    paths = [good[0]] + junk  # shuffle=False: the junk is the end of each epoch
    assert len(list(image_file_dataset(paths, repeat=True, skip=1).take(3))) == 3


def test_load_rgb_counts_in_a_user_map(tmp_path):
    good, _ = _colour_files(tmp_path, 3)
    junk = _junk_files(tmp_path / "junk", _photo())[:2]
    stats = DecodeStats()
    dataset = tf.data.Dataset.from_tensor_slices(good + junk).map(
        lambda p: load_rgb(p, stats), num_parallel_calls=tf.data.AUTOTUNE
    ).ignore_errors()
    assert len(list(dataset)) == 3
    assert stats.as_dict() == {"seen": 5, "decoded": 3, "skipped": 2, "greyscale": 0}


def test_is_greyscale_threshold():
    grey = np.repeat(np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8, 1), 3, -1)
    noise = np.random.default_rng(0).integers(-1, 2, grey.shape) / 255
    noisy = np.clip(grey + noise, 0, 1).astype(np.float32)
    pale = grey.copy()
    pale[..., 0] = np.clip(pale[..., 0] + 0.03, 0, 1)  # a faint but real tint
    assert bool(is_greyscale(grey))
    assert bool(is_greyscale(noisy))  # JPEG-like chroma noise of +-1/255
    assert not bool(is_greyscale(pale))
    assert not bool(is_greyscale(_photo()))  # uint8 input is rescaled
    assert bool(is_greyscale(pale, threshold=0.05))


# ----------------------------------------------------------------------------------------------
# Listing, errors, split


def test_list_images_recursive_mixed_case_sorted(tmp_path):
    (tmp_path / "b" / "deep").mkdir(parents=True)
    (tmp_path / ".hidden").mkdir()
    names = ["a.JPG", "b/c.Png", "b/deep/d.jpeg", "b/deep/E.BMP", "f.GiF", "g.jpg", "b/café ☕.jPeG"]
    formats = Image.registered_extensions()
    for name in names:
        image_format = formats[Path(name).suffix.lower()]
        Image.new("RGB", (2, 2), (1, 2, 3)).save(tmp_path / name, image_format)
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "b" / "image.jpg.bak").write_text("not an image")
    (tmp_path / "._a.jpg").write_bytes(b"AppleDouble junk")
    (tmp_path / ".hidden" / "x.jpg").write_bytes(b"")
    found = list_images(tmp_path)
    assert found == sorted(str(tmp_path / name) for name in names)
    assert found == list_images(str(tmp_path))


def test_missing_folder_error(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(FileNotFoundError, match=r"folder '.*nope' does not exist"):
        list_images(missing)


def test_empty_folder_error(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "readme.txt").write_text("no photos here")
    with pytest.raises(ValueError, match=r"holds no image files .*point it at a folder of photos"):
        list_images(tmp_path)


def test_junk_only_folder_fails_check_readable(tmp_path, caplog):
    _junk_files(tmp_path, _photo())
    paths = list_images(tmp_path)
    assert len(paths) == 6
    with pytest.raises(ValueError, match=r"None of the 6 sampled files is a readable image \(e.g."):
        check_readable(paths)
    # One good file among junk passes, with a warning.
    good, _ = _colour_files(tmp_path / "good", 1)
    with caplog.at_level(logging.WARNING, logger="data.decode"):
        check_readable(paths + good)
    assert "6 of 7 sampled image files are unreadable" in caplog.text
    with pytest.raises(ValueError, match="empty list of paths"):
        check_readable([])


def test_bad_arguments_raise_clear_errors(tmp_path):
    good, _ = _colour_files(tmp_path, 2)
    with pytest.raises(ValueError, match="received -1"):
        image_file_dataset(good, skip=-1)
    with pytest.raises(ValueError, match="single path"):
        image_file_dataset(good[0])
    with pytest.raises(ValueError, match="empty list"):
        image_file_dataset([])
    with pytest.raises(ValueError, match="received 1.5"):
        split_paths(good, val_fraction=1.5)


def test_split_is_deterministic_disjoint_and_complete():
    paths = [f"/data/img_{i:03d}.jpg" for i in range(101)]
    train, val = split_paths(paths, val_fraction=0.1, seed=7)
    assert (train, val) == split_paths(list(reversed(paths)), val_fraction=0.1, seed=7)
    assert len(val) == 10 and len(train) == 91
    assert not set(train) & set(val) and sorted(train + val) == paths
    assert split_paths(paths, val_fraction=0.1, seed=8)[1] != val
    two = split_paths(paths[:2], val_fraction=0.05)
    assert two in ((paths[:1], paths[1:2]), (paths[1:2], paths[:1]))
    small_train, small_val = split_paths(paths[:3], val_fraction=0.9)
    assert len(small_train) == 1 and len(small_val) == 2
    assert split_paths(paths[:1]) == (paths[:1], [])


# ----------------------------------------------------------------------------------------------
# Shuffle and resume


def test_shuffle_is_seeded_and_reshuffles_each_epoch(tmp_path):
    paths, index = _colour_files(tmp_path, 8)
    assert _ids(image_file_dataset(paths), index) == list(range(8))
    def stream_of(seed):
        dataset = image_file_dataset(paths, shuffle=True, seed=seed, repeat=True)
        return _ids(dataset.take(24), index)

    stream = stream_of(1)
    epochs = [stream[i : i + 8] for i in (0, 8, 16)]
    assert all(sorted(e) == list(range(8)) for e in epochs)
    assert epochs[0] != epochs[1] and epochs[0] != list(range(8))
    assert stream == stream_of(1)
    assert stream != stream_of(2)
    # One pass without repeat is epoch 0 of the repeated stream.
    assert _ids(image_file_dataset(paths, shuffle=True, seed=1), index) == epochs[0]


@pytest.mark.parametrize("skip", [3, 8, 13, 35])
def test_resume_with_skip_drops_exactly_the_first_files(tmp_path, skip):
    paths, index = _colour_files(tmp_path, 8)
    def stream(skip, take):
        dataset = image_file_dataset(paths, shuffle=True, seed=5, repeat=True, skip=skip)
        return _ids(dataset.take(take), index)

    full = stream(0, 40)
    resumed = stream(skip, 40 - skip)
    assert resumed == full[skip:]
    if skip < 8:
        once = _ids(image_file_dataset(paths, shuffle=True, seed=5, skip=skip), index)
        assert once == full[skip:8]


def test_skip_counts_files_not_images(tmp_path):
    good, index = _colour_files(tmp_path, 4)
    junk = _junk_files(tmp_path / "junk", _photo())[:2]
    paths = [good[0], junk[0], good[1], junk[1], good[2], good[3]]
    assert _ids(image_file_dataset(paths, skip=2), index) == [1, 2, 3]
    stats = DecodeStats()
    assert _ids(image_file_dataset(paths, skip=4, stats=stats), index) == [2, 3]
    assert stats.as_dict()["seen"] == 2  # skipped files are never read


# ----------------------------------------------------------------------------------------------
# Real photos


def _require(folder):
    if not folder.is_dir():
        pytest.skip(f"../shared/realdata is absent ({folder} not found): no real-photo checks.")


def test_real_coco_mini_streams_and_drops_greyscale():
    _require(COCO)
    paths = list_images(COCO)
    assert len(paths) == 100
    check_readable(paths)
    assert Image.open(COCO / "COCO_train2014_000000000086.jpg").mode == "L"
    stats = DecodeStats()
    shapes = set()
    count = 0
    for image in image_file_dataset(paths, stats=stats):
        array = image.numpy()
        assert 0.0 <= array.min() and array.max() <= 1.0
        shapes.add(array.shape)
        count += 1
    assert shapes == {(224, 224, 3)}
    grey = {
        Path(p).name for p in paths if bool(is_greyscale(load_rgb(p)))
    }
    # 000086 is a 1-channel JPEG; the other three are grey photos stored as RGB (chroma exactly 0).
    assert grey == {f"COCO_train2014_{i:012d}.jpg" for i in (86, 542, 634, 671)}
    assert stats.as_dict() == {"seen": 100, "decoded": 100, "skipped": 0, "greyscale": 4}
    assert count == 96


def test_real_bsds_val_keeps_every_colour_photo():
    _require(BSDS_VAL)
    paths = list_images(BSDS_VAL)
    stats = DecodeStats()
    shapes = {tuple(x.shape) for x in image_file_dataset(paths, stats=stats)}
    assert shapes <= {(321, 481, 3), (481, 321, 3)}
    n = len(paths)
    assert stats.as_dict() == {"seen": n, "decoded": n, "skipped": 0, "greyscale": 0}
