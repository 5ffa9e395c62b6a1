"""The dataset registry: recorded hashes against the real copies, local lookups, and fetch with a
fake opener (these tests never touch the network)."""

import hashlib
import io
import re
from pathlib import Path

import pytest

from rnnkit.data import registry
from rnnkit.data.registry import DataFile, Dataset, FetchError, FileState

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"

TOY_BYTES = {"a.txt": b"alpha\n", "sub/b.txt": b"beta " * 1000}


def _toy_file(path: str) -> DataFile:
    data = TOY_BYTES[path]
    return DataFile(path, f"https://example.invalid/{path}", _sha256(data), len(data))


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class FakeWeb:
    """An opener serving fixed bytes per URL and recording what was requested."""

    def __init__(self, pages: dict[str, bytes]) -> None:
        self.pages = pages
        self.requested: list[str] = []

    def __call__(self, url: str) -> io.BytesIO:
        self.requested.append(url)
        return io.BytesIO(self.pages[url])


@pytest.fixture
def shared_data(monkeypatch):
    """RNNKIT_DATA pointing at the shared, read-only copy of the datasets."""
    monkeypatch.setenv("RNNKIT_DATA", str(SHARED_DATA))
    return SHARED_DATA


@pytest.fixture
def toy(monkeypatch, tmp_path):
    """A registered two-file dataset ``toy``, an empty RNNKIT_DATA, and a web serving it."""
    files = (_toy_file("a.txt"), _toy_file("sub/b.txt"))
    monkeypatch.setitem(registry.DATASETS, "toy", Dataset("toy", "a toy", "MIT", files))
    monkeypatch.setenv("RNNKIT_DATA", str(tmp_path))
    return FakeWeb({file.url: TOY_BYTES[file.path] for file in files})


def _source_md_files(name: str) -> dict[str, tuple[int, str]]:
    """{file: (bytes, sha256)} from the "## Files" table of the dataset's SOURCE.md."""
    text = (SHARED_DATA / name / "SOURCE.md").read_text(encoding="utf-8")
    table = text.split("## Files", 1)[1]
    rows = re.findall(r"^\| (\S+) \| (\d+) \| `([0-9a-f]{64})` \|$", table, re.MULTILINE)
    return {path: (int(size), sha256) for path, size, sha256 in rows}


def test_registry_lists_the_ten_datasets():
    assert sorted(registry.DATASETS) == sorted(
        [
            "tinyshakespeare",
            "ptb",
            "imdb",
            "multi30k",
            "ett",
            "nab",
            "mnist",
            "jsb_chorales",
            "fsdd",
            "ud_english_ewt",
        ]
    )
    for name, dataset in registry.DATASETS.items():
        assert dataset.name == name and dataset.description and dataset.license
        for file in dataset.files:
            assert file.url.startswith("https://github") or file.url.startswith(
                "https://raw.githubusercontent.com/"
            )
            assert re.fullmatch(r"[0-9a-f]{64}", file.sha256) and file.size > 0


def test_only_transformed_files_point_at_directories():
    """A github.com/tree URL is a folder, not the file: such files must carry a note."""
    for dataset in registry.DATASETS.values():
        for file in dataset.files:
            if "/tree/" in file.url:
                assert not file.reproducible, (dataset.name, file.path)


@pytest.mark.parametrize("name", sorted(registry.DATASETS))
def test_registry_matches_source_md(name):
    recorded = {file.path: (file.size, file.sha256) for file in registry.DATASETS[name].files}
    assert recorded == _source_md_files(name)


@pytest.mark.parametrize("name", sorted(registry.DATASETS))
def test_every_registered_file_verifies_against_the_shared_copy(shared_data, name):
    statuses = registry.verify(name)
    assert [status.file.path for status in statuses] == [
        file.path for file in registry.DATASETS[name].files
    ]
    assert all(status.ok for status in statuses), [str(s) for s in statuses if not s.ok]


def test_data_root_is_rnnkit_data_when_set(monkeypatch, tmp_path):
    monkeypatch.setenv("RNNKIT_DATA", str(tmp_path))
    assert registry.data_root() == tmp_path.resolve()
    assert registry.dataset_dir("ptb") == tmp_path.resolve() / "ptb"


def test_data_root_defaults_to_the_user_cache(monkeypatch, tmp_path):
    monkeypatch.delenv("RNNKIT_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert registry.data_root() == tmp_path / "rnnkit" / "data"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert registry.data_root() == Path.home() / ".cache" / "rnnkit" / "data"


def test_unknown_dataset_lists_the_known_names():
    with pytest.raises(ValueError, match="unknown dataset 'nope'") as raised:
        registry.verify("nope")
    assert all(name in str(raised.value) for name in registry.DATASETS)


def test_unknown_file_lists_the_dataset_files():
    with pytest.raises(ValueError, match="ptb.valid.txt"):
        registry.dataset_file("ptb", "ptb.nope.txt")


def test_dataset_file_finds_the_shared_copy(shared_data):
    assert registry.dataset_file("ptb", "ptb.valid.txt") == shared_data / "ptb" / "ptb.valid.txt"


def test_missing_file_message_names_the_place_and_both_fixes(monkeypatch, tmp_path):
    monkeypatch.setenv("RNNKIT_DATA", str(tmp_path))
    with pytest.raises(FileNotFoundError) as raised:
        registry.dataset_file("tinyshakespeare", "input.txt")
    message = str(raised.value)
    assert "tinyshakespeare/input.txt" in message
    assert str(tmp_path / "tinyshakespeare" / "input.txt") in message
    assert "rnnkit datasets fetch tinyshakespeare" in message and "RNNKIT_DATA" in message


def test_missing_unreproducible_file_says_fetch_cannot_rebuild_it(monkeypatch, tmp_path):
    monkeypatch.setenv("RNNKIT_DATA", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="cannot be downloaded byte-for-byte"):
        registry.dataset_file("ptb", "ptb.train.txt.gz")


def test_verify_reports_missing_wrong_size_and_wrong_sha256(monkeypatch, tmp_path):
    """A tmp copy of ptb: one file corrupted in place (same size), one truncated, one absent."""
    monkeypatch.setenv("RNNKIT_DATA", str(tmp_path))
    files = {file.path: file for file in registry.DATASETS["ptb"].files}
    (tmp_path / "ptb").mkdir()
    corrupted = b"x" * files["ptb.test.txt"].size
    (tmp_path / "ptb" / "ptb.test.txt").write_bytes(corrupted)
    (tmp_path / "ptb" / "ptb.valid.txt").write_bytes(b"too short")

    statuses = {status.file.path: status for status in registry.verify("ptb")}

    wrong_hash = statuses["ptb.test.txt"]
    assert wrong_hash.state is FileState.WRONG_SHA256 and not wrong_hash.ok
    assert wrong_hash.expected == files["ptb.test.txt"].sha256
    assert wrong_hash.got == _sha256(corrupted)
    assert f"expected {wrong_hash.expected}, got {wrong_hash.got}" in str(wrong_hash)
    wrong_size = statuses["ptb.valid.txt"]
    assert wrong_size.state is FileState.WRONG_SIZE
    assert (wrong_size.expected, wrong_size.got) == (str(files["ptb.valid.txt"].size), "9")
    assert statuses["ptb.train.txt.gz"].state is FileState.MISSING


def test_dataset_file_refuses_a_damaged_copy_and_accepts_it_repaired(toy, tmp_path):
    registry.fetch("toy", urlopen=toy)
    local = tmp_path / "toy" / "sub" / "b.txt"
    assert registry.dataset_file("toy", "sub/b.txt") == local
    damaged = b"B" + TOY_BYTES["sub/b.txt"][1:]  # same size, one byte changed
    local.write_bytes(damaged)
    with pytest.raises(ValueError) as raised:
        registry.dataset_file("toy", "sub/b.txt")
    message = str(raised.value)
    assert f"wrong sha256 (expected {_sha256(TOY_BYTES['sub/b.txt'])}, got {_sha256(damaged)})" in (
        message
    )
    assert "rnnkit datasets fetch toy --force" in message
    assert registry.dataset_file("toy", "sub/b.txt", check=False) == local
    local.write_bytes(b"short")
    with pytest.raises(ValueError, match=r"wrong size \(expected 5000, got 5\)"):
        registry.dataset_file("toy", "sub/b.txt")
    local.write_bytes(TOY_BYTES["sub/b.txt"])
    assert registry.dataset_file("toy", "sub/b.txt") == local


def test_vendored_tiny_shakespeare_is_the_registered_file():
    from rnnkit.data.prepare import VENDORED

    file = registry.DATASETS["tinyshakespeare"].file("input.txt")
    data = VENDORED["tinyshakespeare"].read_bytes()
    assert (len(data), _sha256(data)) == (file.size, file.sha256)


def test_fetch_puts_files_with_the_right_hash_in_place(toy, tmp_path):
    received: list[tuple[str, int]] = []
    written = registry.fetch(
        "toy", urlopen=toy, progress=lambda file, n: received.append((file.path, n))
    )
    assert written == [tmp_path / "toy" / "a.txt", tmp_path / "toy" / "sub" / "b.txt"]
    for path, data in TOY_BYTES.items():
        assert (tmp_path / "toy" / path).read_bytes() == data
    assert received == [(path, len(data)) for path, data in TOY_BYTES.items()]
    assert all(status.ok for status in registry.verify("toy"))
    assert not list(tmp_path.rglob("*.part"))


def test_fetch_with_a_bad_hash_raises_and_leaves_nothing_behind(toy, tmp_path):
    url = registry.DATASETS["toy"].file("a.txt").url
    tampered = b"tampered\n"
    toy.pages[url] = tampered
    with pytest.raises(FetchError) as raised:
        registry.fetch("toy", urlopen=toy)
    message = str(raised.value)
    assert url in message
    assert f"expected {_sha256(TOY_BYTES['a.txt'])}, got {_sha256(tampered)}" in message
    assert [path for path in (tmp_path / "toy").rglob("*") if path.is_file()] == []


def test_fetch_skips_files_that_already_verify(toy, tmp_path):
    (tmp_path / "toy").mkdir()
    (tmp_path / "toy" / "a.txt").write_bytes(TOY_BYTES["a.txt"])
    assert registry.fetch("toy", urlopen=toy) == [tmp_path / "toy" / "sub" / "b.txt"]
    assert toy.requested == [registry.DATASETS["toy"].file("sub/b.txt").url]


def test_fetch_force_downloads_again_and_replaces_a_corrupt_copy(toy, tmp_path):
    registry.fetch("toy", urlopen=toy)
    (tmp_path / "toy" / "a.txt").write_bytes(b"corrupt")
    assert registry.fetch("toy", urlopen=toy) == [tmp_path / "toy" / "a.txt"]
    assert (tmp_path / "toy" / "a.txt").read_bytes() == TOY_BYTES["a.txt"]
    assert len(registry.fetch("toy", force=True, urlopen=toy)) == 2


def test_fetch_wraps_network_errors_with_the_url(toy):
    def unreachable(url: str) -> io.BytesIO:
        raise OSError("no network")

    with pytest.raises(FetchError, match=r"downloading https://example.invalid/a.txt failed"):
        registry.fetch("toy", urlopen=unreachable)


def test_dataset_file_download_uses_the_module_opener(toy, monkeypatch, tmp_path):
    monkeypatch.setattr(registry, "open_url", toy)
    path = registry.dataset_file("toy", "sub/b.txt", download=True)
    assert path == tmp_path / "toy" / "sub" / "b.txt"
    assert path.read_bytes() == TOY_BYTES["sub/b.txt"]
    assert not (tmp_path / "toy" / "a.txt").exists()


def test_fetch_refuses_files_it_cannot_reproduce_before_downloading(monkeypatch, tmp_path):
    monkeypatch.setenv("RNNKIT_DATA", str(tmp_path))
    web = FakeWeb({})
    with pytest.raises(FetchError) as raised:
        registry.fetch("ett", urlopen=web)
    message = str(raised.value)
    assert "byte-for-byte" in message and "RNNKIT_DATA" in message
    assert (
        "ETTh1.csv.gz" in message and registry.DATASETS["ett"].file("ETTh1.csv.gz").url in message
    )
    assert web.requested == []


def test_fetch_downloads_nothing_when_the_shared_copy_verifies(shared_data):
    web = FakeWeb({})
    assert registry.fetch("ptb", urlopen=web) == []
    assert web.requested == []
