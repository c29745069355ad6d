"""Shared test fixtures: the real plate folders in ../shared/data beside the repository."""

import shutil
import subprocess
from pathlib import Path

import pytest
import torch
import webdataset as wds
from PIL import Image

from plategen.charset import parse_charset
from plategen.checkpoint import save_checkpoint
from plategen.model import Discriminator, Generator, SAAEConfig
from plategen.synth import SynthRequest

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not (DATA / "uc3m-lp").is_dir():
        pytest.fail(f"real plate data not found at {DATA} (shared/ must sit beside the repository)")
    return DATA


@pytest.fixture(scope="session")
def imported(data_dir):
    """Each real folder imported once per test session (segmentation is the slow part)."""
    from plategen.plates import load_plates

    cache = {}

    def load(name: str):
        if name not in cache:
            cache[name] = load_plates(data_dir / name)
        return cache[name]

    return load


def make_checkpoint(path: Path, charset: list[str], seen: set[str] | None = None, glyph_aspect: float | None = None
                    ) -> Path:
    """A small randomly initialised generator whose BN statistics are not the identity, and a
    random discriminator, so the label check runs and redraws most images. `seen`: the content
    hashes it records as its training plates (as a benchmark's product regime asks); `glyph_aspect`: as if
    trained on narrowed content glyphs (`SAAEConfig.glyph_aspect`)."""
    torch.manual_seed(0)
    config = SAAEConfig(num_classes=len(charset), content_width=8, style_width=8, decoder_width=16,
                        glyph_aspect=glyph_aspect)
    generator = Generator(config)
    generator.train()
    with torch.no_grad():
        for _ in range(2):
            generator(torch.rand(8, 1, 32, 32), torch.rand(8, 3, *config.style_size))
    meta = {"charset": charset} if seen is None else {"charset": charset, "plate_sha256": sorted(seen)}
    save_checkpoint(path, generator.eval(), config, meta, Discriminator(config).eval())
    return path


@pytest.fixture(scope="session")
def ckpt(tmp_path_factory) -> Path:
    """A small random generator for 0-9A-Z: tests of the synth plumbing, not of image quality."""
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "random.safetensors", parse_charset("0-9A-Z"))


@pytest.fixture(scope="session")
def plate(data_dir) -> Path:
    """One real Spanish plate image, the style of the synth tests."""
    return sorted((data_dir / "uc3m-lp" / "images").glob("*.jpg"))[0]


def synth_request(plate: Path, ckpt: Path, out: Path, **kw):
    """A small CPU synth request over 0-9A-Z; keyword arguments override any field."""
    return SynthRequest(styles=[plate], chars=kw.pop("chars", parse_charset("0-9A-Z")), n=kw.pop("n"), out=out,
                        checkpoint=ckpt, device="cpu", batch_size=kw.pop("batch_size", 16), **kw)



def webdataset_samples(out):
    """The shards of `out` as the `webdataset` package's own loader reads them, PNGs decoded to RGB."""
    urls = [str(p) for p in sorted(out.glob("shard-*.tar"))]
    return list(wds.WebDataset(urls, shardshuffle=False).decode("rgb8"))


def synth_args(plate: Path, ckpt: Path, out: Path, *extra: str) -> list[str]:
    return ["synth", "--style", str(plate), "--n", "40", "--out", str(out), "--checkpoint", str(ckpt),
            "--device", "cpu", *extra]


def one_line_error(result) -> str:
    """The CLI's refusal: exit 2, one line, no traceback."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1, result.output
    return result.output


def copy_plates(uc3m: Path, folder: Path, images) -> Path:
    """A real YOLO folder holding `images` of uc3m-lp (with their labels and classes.txt)."""
    (folder / "images").mkdir(parents=True)
    (folder / "labels").mkdir()
    shutil.copy(uc3m / "classes.txt", folder)
    for image in images:
        shutil.copy(image, folder / "images")
        shutil.copy(uc3m / "labels" / f"{image.stem}.txt", folder / "labels")
    return folder


def leaky_copy(data, test, folder):
    """`data` plus three images of --test plates, renamed: two byte for byte and one re-encoded as PNG (other
    bytes, the same plate), each with its label."""
    leaky = copy_plates(data, folder, sorted((data / "images").iterdir()))
    for n, image in enumerate(sorted((test / "images").iterdir())[:3]):
        if n < 2:
            (leaky / "images" / f"copy{n}.jpg").write_bytes(image.read_bytes())
        else:
            Image.open(image).save(leaky / "images" / f"copy{n}.png")
        (leaky / "labels" / f"copy{n}.txt").write_bytes((test / "labels" / f"{image.stem}.txt").read_bytes())
    return leaky


def immutable(folder: Path) -> Path:
    """A folder no process may write in, root's included (chmod does not stop root); skipped where chattr is not.
    The test must run `chattr -i` on it when done."""
    folder.mkdir()
    if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not available here")
    return folder
