"""Tokenizers: round trips, specials, vocabulary limits, JSON, and BPE on real IMDB reviews."""

import gzip
import json
import time
from itertools import islice

import pytest

from rnnkit.data.tokenizers import (
    BPETokenizer,
    CharTokenizer,
    WordTokenizer,
    make_tokenizer,
    tokenizer_from_json,
)
from rnnkit.data.vocabulary import SPECIALS

KINDS = ["char", "word", "bpe"]
TEXTS = [
    "The cat sat on the mat. The cat didn't move!",
    "A dog sat on the log; the dog's tail wagged.<br /><br />Good dog.",
    "Ünïcödé, emoji 😀 and tabs\tand new\nlines",
]
BPE_SIZE = 300


def fitted(kind, texts=TEXTS, *, lowercase=False, min_freq=1, max_size=None):
    """A tokenizer of ``kind`` fitted on ``texts``; BPE stops at 300 ids unless told."""
    if kind == "bpe" and max_size is None:
        max_size = BPE_SIZE
    tokenizer = make_tokenizer(kind, lowercase=lowercase)
    tokenizer.fit(texts, min_freq=min_freq, max_size=max_size)
    return tokenizer


@pytest.mark.parametrize("kind", KINDS)
def test_specials_have_the_vocabulary_ids(kind):
    tokenizer = fitted(kind)
    ids = (tokenizer.pad_id, tokenizer.unk_id, tokenizer.bos_id, tokenizer.eos_id)
    assert ids == (0, 1, 2, 3)
    assert [tokenizer.decode([i]) for i in ids] == ["", "<unk>", "", ""]
    if kind == "bpe":
        hf = tokenizer.hf_tokenizer
        assert [hf.id_to_token(i) for i in ids] == list(SPECIALS)
    else:
        assert tokenizer.vocabulary.tokens[:4] == list(SPECIALS)


def test_char_round_trip_is_exact_and_unseen_characters_are_unknown():
    tokenizer = fitted("char")
    for text in TEXTS:
        assert tokenizer.decode(tokenizer.encode(text)) == text
    assert tokenizer.tokens("a😀") == ["a", "😀"]
    assert tokenizer.encode("aZ")[1] == tokenizer.unk_id
    framed = [tokenizer.bos_id, *tokenizer.encode("cat"), tokenizer.eos_id, tokenizer.pad_id]
    assert tokenizer.decode(framed) == "cat"


@pytest.mark.parametrize(
    ("text", "lowercase", "tokens"),
    [
        ("Don't stop!", False, ["Don't", "stop", "!"]),
        ("Don't stop!", True, ["don't", "stop", "!"]),
        ("It’s fine,really...", False, ["It’s", "fine", ",", "really", ".", ".", "."]),
        ("one<br />two<BR>three<br/>", False, ["one", "two", "three"]),
        ("ﬁne Ｆilm ①", False, ["fine", "Film", "1"]),  # NFKC
        ("rock'n'roll 'quoted' x_1", False, ["rock'n'roll", "'", "quoted", "'", "x_1"]),
    ],
)
def test_word_normalisation(text, lowercase, tokens):
    assert WordTokenizer(lowercase=lowercase).tokens(text) == tokens


def test_word_encode_decode_joins_normalised_words_and_marks_unknowns():
    tokenizer = fitted("word", lowercase=True)
    ids = tokenizer.encode("The CAT didn't fly!")
    assert tokenizer.decode(ids) == "the cat didn't <unk> !"
    assert ids[3] == tokenizer.unk_id


def test_bpe_round_trip_is_exact_even_for_unseen_text():
    tokenizer = fitted("bpe")
    unseen = "Zebra 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 «quotes»  two spaces <eos> <pad>\r\n"
    for text in [*TEXTS, unseen]:
        ids = tokenizer.encode(text)
        assert tokenizer.unk_id not in ids
        assert tokenizer.decode(ids) == text
    assert not set(tokenizer.encode("<eos> <pad>")) & {0, 1, 2, 3}  # special spellings stay text
    assert tokenizer.tokens(" the") == ["Ġthe"]


def test_bpe_lowercase_round_trips_the_lowercased_text():
    tokenizer = fitted("bpe", lowercase=True)
    assert tokenizer.decode(tokenizer.encode("The CAT")) == "the cat"


@pytest.mark.parametrize("tokenizer_class", [CharTokenizer, WordTokenizer])
def test_min_freq_and_max_size_count_the_specials(tokenizer_class):
    texts = ["a a a b b c", "a b d"]
    kind = tokenizer_class.kind
    frequent = fitted(kind, texts, min_freq=2)
    expected = {"char": [" ", "a", "b"], "word": ["a", "b"]}[kind]
    assert frequent.vocabulary.tokens == [*SPECIALS, *expected]
    assert frequent.encode("c")[-1] == frequent.unk_id
    assert fitted(kind, texts, max_size=5).vocab_size == 5


def test_bpe_max_size_and_min_freq():
    assert fitted("bpe", max_size=270).vocab_size == 270
    every_merge, frequent_merges = (fitted("bpe", max_size=400, min_freq=n) for n in (1, 3))
    assert 260 < frequent_merges.vocab_size < every_merge.vocab_size < 400
    with pytest.raises(ValueError, match="max_size must be at least 260"):
        BPETokenizer().fit(TEXTS, max_size=100)


@pytest.mark.parametrize("kind", KINDS)
def test_json_round_trip_gives_identical_encodings(kind):
    tokenizer = fitted(kind, lowercase=True)
    loaded = tokenizer_from_json(json.loads(json.dumps(tokenizer.to_json())))
    assert type(loaded) is type(tokenizer) and loaded.lowercase
    assert loaded.vocab_size == tokenizer.vocab_size
    for text in [*TEXTS, "Never seen: Zürich <eos>"]:
        assert loaded.encode(text) == tokenizer.encode(text)
        assert loaded.decode(loaded.encode(text)) == tokenizer.decode(tokenizer.encode(text))


def test_bad_json_names_the_kind():
    with pytest.raises(
        ValueError, match="expected kind 'char', 'word', 'whitespace' or 'bpe', got 'sentencepiece'"
    ):
        tokenizer_from_json({"kind": "sentencepiece"})
    with pytest.raises(ValueError, match="got None"):
        tokenizer_from_json({"tokens": list(SPECIALS)})
    word_json = fitted("word").to_json()
    with pytest.raises(ValueError, match="bpe tokenizer JSON: expected 'hf'"):
        tokenizer_from_json(word_json | {"kind": "bpe"})
    with pytest.raises(ValueError, match="char tokenizer JSON: .*expected the special tokens"):
        tokenizer_from_json({"kind": "char", "tokens": ["a"]})
    with pytest.raises(ValueError, match="bpe tokenizer JSON: 'hf' is not an HF tokenizer"):
        tokenizer_from_json({"kind": "bpe", "hf": "{}"})


@pytest.mark.parametrize("kind", KINDS)
def test_unfitted_tokenizer_says_to_fit(kind):
    with pytest.raises(RuntimeError, match=f"{kind} tokenizer: call fit"):
        make_tokenizer(kind).encode("x")


def test_bpe_on_imdb_reviews(shared_data):
    with gzip.open(shared_data / "imdb" / "train.jsonl.gz", "rt", encoding="utf-8") as lines:
        reviews = [json.loads(line)["text"] for line in islice(lines, 200)]
    start = time.perf_counter()
    tokenizer = make_tokenizer("bpe")
    tokenizer.fit(iter(reviews), max_size=500)
    assert time.perf_counter() - start < 3
    assert tokenizer.vocab_size == 500
    lengths = [len(tokenizer.encode(review)) for review in reviews]
    chars = sum(map(len, reviews)) / len(reviews)
    assert chars / 10 < sum(lengths) / len(lengths) < chars
    assert all(tokenizer.decode(tokenizer.encode(review)) == review for review in reviews[:20])


def test_whitespace_tokenizer_keeps_pretokenized_text_and_its_unk():
    tokenizer = make_tokenizer("whitespace")
    tokenizer.fit(["the <unk> cat sat", "the dog"])
    assert tokenizer.tokens("U.S. don't <unk>") == ["U.S.", "don't", "<unk>"]
    assert tokenizer.encode("the <unk> zebra")[1:] == [tokenizer.unk_id, tokenizer.unk_id]
    assert "<unk>" not in tokenizer.vocabulary.tokens[4:]


def test_pretokenized_fit_and_encode():
    tokenizer = make_tokenizer("whitespace")
    tokenizer.fit_tokens([["New York", "is"], ["is"]])
    assert tokenizer.encode_tokens(["New York", "is", "Paris"]) == [5, 4, tokenizer.unk_id]


def test_pretokenized_lowercase_applies_to_fit_and_encode():
    tokenizer = make_tokenizer("whitespace", lowercase=True)
    tokenizer.fit_tokens([["The", "cat"]])
    assert tokenizer.encode_tokens(["THE", "Cat"]) == tokenizer.encode("the cat")
    assert tokenizer.unk_id not in tokenizer.encode_tokens(["THE"])
