"""Readers for users' own files: every problem named with file and line."""

import gzip

import pytest

from rnnkit.data.sources import DataError, read_conllu, read_records, read_text


def test_text_gz_and_empty(tmp_path):
    (tmp_path / "a.txt.gz").write_bytes(gzip.compress(b"hello\nworld\n"))
    assert read_text(tmp_path / "a.txt.gz") == "hello\nworld\n"
    (tmp_path / "empty.txt").write_text("  \n")
    with pytest.raises(DataError, match=r"empty\.txt: the file is empty"):
        read_text(tmp_path / "empty.txt")
    with pytest.raises(DataError, match="file not found"):
        read_text(tmp_path / "nope.txt")


def test_undecodable_bytes_warn_once_with_the_line(tmp_path):
    (tmp_path / "bad.txt").write_bytes(b"fine\nbad \xff byte\nmore \xfe\n")
    with pytest.warns(UserWarning, match=r"bad\.txt:2: bytes that are not UTF-8") as record:
        text = read_text(tmp_path / "bad.txt")
    assert len(record) == 1
    assert "\ufffd" in text


def test_records_from_jsonl_csv_tsv(tmp_path):
    (tmp_path / "r.jsonl").write_text(
        '{"text": "good", "label": 1}\n\n{"text": "bad", "label": 0}\n'
    )
    assert read_records(tmp_path / "r.jsonl") == [("good", "1"), ("bad", "0")]
    (tmp_path / "r.csv").write_text('label,text\npos,"a, b"\nneg,c\n')
    assert read_records(tmp_path / "r.csv") == [("a, b", "pos"), ("c", "neg")]
    (tmp_path / "r.tsv").write_text("text\tlabel\nx\ty\n")
    assert read_records(tmp_path / "r.tsv") == [("x", "y")]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (
            "r.jsonl",
            '{"text": "a", "label": 1}\n{"text": "b"}\n',
            r"r\.jsonl:2: expected an object",
        ),
        ("r.jsonl", '{"text": "a", "label": 1}\n{oops\n', r"r\.jsonl:2: not valid JSON"),
        ("r.csv", "text,label\na,1\nb,2,3\n", r"r\.csv:3: expected 2 columns, got 3"),
        ("r.csv", "body,label\na,1\n", r"r\.csv:1: header has no column 'text'"),
        ("r.csv", "", r"r\.csv: the file is empty"),
        ("r.xml", "<a/>", r"expected a \.jsonl, \.csv or \.tsv file"),
        ("r.jsonl", "\n\n", r"r\.jsonl: the file has no records"),
    ],
)
def test_record_errors_name_file_and_line(tmp_path, name, content, message):
    (tmp_path / name).write_text(content)
    with pytest.raises(DataError, match=message):
        read_records(tmp_path / name)


def test_conllu_skips_comments_multiword_and_empty_nodes(tmp_path):
    lines = [
        "# sent_id = 1",
        "1-2\tdon't\t_\t_\t_\t_\t_\t_\t_\t_",
        "1\tdo\tdo\tAUX\t_\t_\t0\troot\t_\t_",
        "2\tn't\tnot\tPART\t_\t_\t1\tadvmod\t_\t_",
        "2.1\tx\tx\tX\t_\t_\t_\t_\t_\t_",
        "",
        "1\tGo\tgo\tVERB\t_\t_\t0\troot\t_\t_",
        "",
    ]
    (tmp_path / "s.conllu").write_text("\n".join(lines))
    assert read_conllu(tmp_path / "s.conllu") == [
        (["do", "n't"], ["AUX", "PART"]),
        (["Go"], ["VERB"]),
    ]
    (tmp_path / "bad.conllu").write_text("1\tGo\tVERB\n")
    with pytest.raises(DataError, match=r"bad\.conllu:1: expected 10 tab-separated columns, got 3"):
        read_conllu(tmp_path / "bad.conllu")


def test_real_ud_ewt_dev_reads(shared_data):
    sentences = read_conllu(shared_data / "ud_english_ewt" / "en_ewt-ud-dev.conllu.gz")
    assert len(sentences) == 2001
    assert sentences[0] == (
        ["From", "the", "AP", "comes", "this", "story", ":"],
        ["ADP", "DET", "PROPN", "VERB", "DET", "NOUN", "PUNCT"],
    )


def test_unicode_line_separators_inside_records_are_text(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_bytes('{"text": "a\u2028b\u0085c", "label": 1}\n'.encode())
    assert read_records(path) == [("a\u2028b\u0085c", "1")]


def test_a_byte_order_mark_is_not_part_of_the_header(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes(b"\xef\xbb\xbftext,label\nfine,1\n")
    assert read_records(path) == [("fine", "1")]
