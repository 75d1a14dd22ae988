"""Writers of small datasets in the exact on-disk formats of VOC and SBD, for any test.

pytest puts tests/ on sys.path (its conftest.py has no package), so ``import ondisk`` works from
every test folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from fcnseg.data.palette import voc_palette


def scene(seed: int, h: int = 40, w: int = 48, num_classes: int = 21,
          border: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """An image and a label: background plus a rectangle of one class with a 255 border band."""
    rng = np.random.default_rng(seed)
    label = np.zeros((h, w), dtype=np.uint8)
    cls = int(rng.integers(1, num_classes))
    top, left = int(rng.integers(2, h // 2)), int(rng.integers(2, w // 2))
    label[top : top + h // 3, left : left + w // 3] = cls
    if border:
        edge = np.zeros_like(label, dtype=bool)
        edge[:-1] |= label[:-1] != label[1:]
        edge[:, :-1] |= label[:, :-1] != label[:, 1:]
        label[edge] = 255
    image = voc_palette()[label].copy()
    return image, label


def save_palette_png(path: Path, label: np.ndarray) -> None:
    img = Image.fromarray(label.astype(np.uint8), mode="P")
    img.putpalette(voc_palette().ravel().tolist())
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)


#: Adam7's passes: (first row, first column, row step, column step).
_ADAM7 = ((0, 0, 8, 8), (0, 4, 8, 8), (4, 0, 8, 4), (0, 2, 4, 4), (2, 0, 4, 2), (0, 1, 2, 2),
          (1, 0, 2, 1))


def save_png_16(path: Path, samples: np.ndarray, interlaced: bool = False) -> Path:
    """Write H×W×2 (grey and alpha), H×W×3 (RGB) or H×W×4 (RGBA) 16-bit samples as a PNG of
    16 bits per sample (which
    Pillow cannot write), optionally Adam7-interlaced."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))

    h, w, n = samples.shape
    big = samples.astype(">u2")
    passes = _ADAM7 if interlaced else ((0, 0, 1, 1),)
    raw = b"".join(b"\x00" + row.tobytes() for y, x, dy, dx in passes
                   for row in big[y::dy, x::dx] if row.size)
    header = struct.pack(">IIBBBBB", w, h, 16, {2: 4, 3: 2, 4: 6}[n], 0, 0, int(interlaced))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    return path


def save_jpeg(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path, quality=95)


def write_voc(root: Path, year: str, splits: dict[str, list[str]], seed: int = 0) -> Path:
    """Write ``root/VOCdevkit/VOC<year>`` with the given segmentation split lists."""
    voc = root / "VOCdevkit" / f"VOC{year}"
    lists = voc / "ImageSets" / "Segmentation"
    lists.mkdir(parents=True)
    every = sorted({i for ids in splits.values() for i in ids})
    for n, stem in enumerate(every):
        image, label = scene(seed + n)
        save_jpeg(voc / "JPEGImages" / f"{stem}.jpg", image)
        save_palette_png(voc / "SegmentationClass" / f"{stem}.png", label)
    for split, ids in splits.items():
        (lists / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
    return voc


def write_sbd(root: Path, splits: dict[str, list[str]], seed: int = 100) -> Path:
    """Write ``root/benchmark_RELEASE/dataset`` with img/*.jpg, cls/*.mat and split lists."""
    from scipy.io import savemat

    ds = root / "benchmark_RELEASE" / "dataset"
    (ds / "cls").mkdir(parents=True)
    every = sorted({i for ids in splits.values() for i in ids})
    for n, stem in enumerate(every):
        image, label = scene(seed + n, border=False)
        save_jpeg(ds / "img" / f"{stem}.jpg", image)
        gt = {"Segmentation": label.astype(np.uint8),
              "Boundaries": np.zeros((1, 1), dtype=np.uint8),
              "CategoriesPresent": np.unique(label[label > 0]).astype(np.uint8)}
        savemat(ds / "cls" / f"{stem}.mat", {"GTcls": gt})
    for split, ids in splits.items():
        (ds / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
    return ds


# --- PASCAL-Context, NYUDv2 and SIFT Flow, in their own layouts ----------------------------

#: A full-scene label list in the style of PASCAL-Context's labels.txt: alphabetical, with the
#: task classes spelled as the full list spells them, names with spaces, and labels outside the
#: task.
def context_full_labels() -> list[str]:
    from fcnseg.data.pascal_context import PASCAL_CONTEXT_CLASSES

    full = {"diningtable": "table", "bedcloth": "bedclothes", "clothes": "cloth",
            "pottedplant": "potted plant"}
    names = [full.get(n, n) for n in PASCAL_CONTEXT_CLASSES[1:]]
    return sorted(names + ["accordion", "air conditioner", "zebra"])


def write_pascal_context(root: Path, splits: dict[str, list[str]],
                         label_maps: dict[str, np.ndarray] | None = None,
                         seed: int = 200) -> Path:
    """Write ``root/VOCdevkit/VOC2010`` (JPEGImages, ImageSets/Main) and ``root/pascal-context``
    (trainval/*.mat with LabelMap, labels.txt, 59_labels.txt). ``label_maps`` gives some ids'
    LabelMap (full-scene ids); the others get a random one."""
    from scipy.io import savemat

    from fcnseg.data.pascal_context import PASCAL_CONTEXT_CLASSES

    voc = root / "VOCdevkit" / "VOC2010"
    lists = voc / "ImageSets" / "Main"
    lists.mkdir(parents=True)
    context = root / "pascal-context"
    (context / "trainval").mkdir(parents=True)
    full = context_full_labels()
    (context / "labels.txt").write_text("".join(f"{k}: {n}\n" for k, n in enumerate(full, 1)))
    (context / "59_labels.txt").write_text(
        "".join(f"{k}: {n}\n" for k, n in enumerate(PASCAL_CONTEXT_CLASSES[1:], 1)))
    rng = np.random.default_rng(seed)
    for stem in sorted({i for ids in splits.values() for i in ids}):
        label_map = (label_maps or {}).get(stem)
        if label_map is None:
            label_map = rng.integers(1, len(full) + 1, size=(24, 32))
        save_jpeg(voc / "JPEGImages" / f"{stem}.jpg",
                  rng.integers(0, 256, (*label_map.shape, 3), dtype=np.uint8))
        savemat(context / "trainval" / f"{stem}.mat", {"LabelMap": label_map.astype(np.uint16)})
    for split, ids in splits.items():
        (lists / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
    return root


def write_nyud(root: Path, splits: dict[str, list[str]], size: tuple[int, int] = (24, 32),
               seed: int = 300) -> Path:
    """Write ``root/nyud`` as the FCN reference lays NYUDv2 out: data/{images,hha,depth}/
    img_<id>.png (depth 16-bit), segmentation/img_<id>.mat (0 void, 1-40) and split lists."""
    from scipy.io import savemat

    nyud = root / "nyud"
    for sub in ("data/images", "data/hha", "data/depth", "segmentation"):
        (nyud / sub).mkdir(parents=True)
    rng = np.random.default_rng(seed)
    h, w = size
    for stem in sorted({i for ids in splits.values() for i in ids}):
        color = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        hha = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        depth = rng.integers(500, 10000, (h, w)).astype(np.uint16)
        seg = rng.integers(0, 41, (h, w)).astype(np.uint8)
        Image.fromarray(color).save(nyud / "data" / "images" / f"img_{stem}.png")
        Image.fromarray(hha).save(nyud / "data" / "hha" / f"img_{stem}.png")
        Image.fromarray(depth).save(nyud / "data" / "depth" / f"img_{stem}.png")
        savemat(nyud / "segmentation" / f"img_{stem}.mat", {"segmentation": seg})
    for split, ids in splits.items():
        (nyud / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
    return nyud


SIFTFLOW_SUBDIR = "spatial_envelope_256x256_static_8outdoorcategories"


def write_siftflow(root: Path, splits: dict[str, list[str]], size: tuple[int, int] = (16, 16),
                   seed: int = 400) -> Path:
    """Write ``root/SiftFlowDataset`` with Images/, SemanticLabels/ (S: 0 void, 1-33) and
    GeoLabels/ (S: -1 void, 1-3), each under the dataset's one category folder, and the split
    lists."""
    from scipy.io import savemat

    ds = root / "SiftFlowDataset"
    for sub in ("Images", "SemanticLabels", "GeoLabels"):
        (ds / sub / SIFTFLOW_SUBDIR).mkdir(parents=True)
    rng = np.random.default_rng(seed)
    h, w = size
    for stem in sorted({i for ids in splits.values() for i in ids}):
        save_jpeg(ds / "Images" / SIFTFLOW_SUBDIR / f"{stem}.jpg",
                  rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        savemat(ds / "SemanticLabels" / SIFTFLOW_SUBDIR / f"{stem}.mat",
                {"S": rng.integers(0, 34, (h, w)).astype(np.int32)})
        savemat(ds / "GeoLabels" / SIFTFLOW_SUBDIR / f"{stem}.mat",
                {"S": rng.choice([-1, 1, 2, 3], (h, w)).astype(np.int32)})
    for split, ids in splits.items():
        (ds / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
    return ds


def write_grey_16_bit_cells(root: Path, high: int, count: int = 4, bands_line: str = "") -> Path:
    """A folder dataset of 32×32 grey uint16 TIFFs (microscopy): background 300, a disc ("cell")
    of value ``high`` in each, PNG masks, train and val lists of every sample; ``bands_line``
    ends its dataset.yaml."""
    import tifffile

    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    (root / "dataset.yaml").write_text(f"classes: [background, cell]\n{bands_line}")
    yy, xx = np.mgrid[0:32, 0:32]
    for n in range(count):
        cell = (yy - 16) ** 2 + (xx - 10 - n) ** 2 < 64
        tifffile.imwrite(root / "images" / f"c{n}.tif",
                         np.where(cell, high, 300).astype(np.uint16))
        Image.fromarray(cell.astype(np.uint8)).save(root / "masks" / f"c{n}.png")
    for split in ("train", "val"):
        (root / f"{split}.txt").write_text("".join(f"c{n}\n" for n in range(count)))
    return root


def write_folder(root: Path, classes: list[str], splits: dict[str, int] | None = None,
                 seed: int = 0) -> Path:
    """A folder dataset (images/, masks/, dataset.yaml, split lists) of synthetic scenes, whose
    masks number the synthetic classes in the order ``classes`` lists them (a permutation of
    :data:`fcnseg.data.SYNTHETIC_CLASSES`): the same pictures and pixels whatever the order."""
    from fcnseg.data import SYNTHETIC_CLASSES
    from fcnseg.data.synthetic import SyntheticSegmentation

    splits = splits or {"train": 3, "val": 2}
    to_listed = np.full(256, 255, np.uint8)
    to_listed[: len(SYNTHETIC_CLASSES)] = [classes.index(c) for c in SYNTHETIC_CLASSES]
    scenes = SyntheticSegmentation(sum(splits.values()), size=(32, 40), seed=seed)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    n = 0
    for split, count in splits.items():
        names = [f"{split}{k}" for k in range(count)]
        for name in names:
            image, label = scenes.load(n)
            n += 1
            Image.fromarray(np.asarray(image, np.uint8)).save(root / "images" / f"{name}.png")
            Image.fromarray(to_listed[np.asarray(label)]).save(root / "masks" / f"{name}.png")
        (root / f"{split}.txt").write_text("".join(f"{x}\n" for x in names))
    (root / "dataset.yaml").write_text(f"classes: [{', '.join(classes)}]\n")
    return root


def record_reads(reader: Any) -> list[tuple[int, int, int, int]]:
    """The windows (row, col, height, width) ``reader`` decodes from now on, as a list that
    fills as it reads: for tests of how often raster blocks are decoded."""
    read, windows = reader.read, []
    reader.read = lambda *window: windows.append(window) or read(*window)
    return windows


def write_grey_16_bit_cvat(root: Path, high: int, count: int = 4) -> Path:
    """A CVAT for images 1.1 export (``root/annotations.xml`` and ``root/images/``) of 32×32 grey
    uint16 TIFFs as :func:`write_grey_16_bit_cells` draws them, a polygon per cell; the XML's
    path (what ``--dataset cvat --root`` takes)."""
    import tifffile

    from fcnseg.data.annotations.export import cvat_document, cvat_image_element

    (root / "images").mkdir(parents=True)
    yy, xx = np.mgrid[0:32, 0:32]
    elements = []
    for n in range(count):
        cell = (yy - 16) ** 2 + (xx - 10 - n) ** 2 < 64
        tifffile.imwrite(root / "images" / f"c{n}.tif",
                         np.where(cell, high, 300).astype(np.uint16))
        elements.append(cvat_image_element(cell.astype(np.uint8), ["background", "cell"],
                                           f"c{n}.tif", n))
    (root / "annotations.xml").write_bytes(cvat_document(elements, ["background", "cell"]))
    return root / "annotations.xml"
