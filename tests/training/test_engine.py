"""End to end: a tiny language model, classifier and tagger trained through Lightning."""

import json

import pytest
import torch
from safetensors.torch import load_file

import rnnkit.api
from rnnkit.training.metrics_log import read_metrics
from tests.training.conftest import train_tiny


@pytest.fixture(scope="module")
def lm_run(tiny_text, tmp_path_factory):
    return train_tiny(tiny_text, tmp_path_factory.mktemp("runs") / "lm")


def test_run_directory_has_everything(lm_run):
    run = lm_run.run_dir
    for name in [
        "config.yaml",
        "metrics.csv",
        "report.md",
        "model/model.json",
        "model/model.safetensors",
        "checkpoints/best.safetensors",
        "checkpoints/last.safetensors",
        "diagnostics/hidden_grad_norms.csv",
        "plots/loss.png",
        "plots/metrics.png",
        "plots/grad_norm.png",
        "plots/gradient_flow.png",
    ]:
        assert (run / name).is_file(), name
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    rows = read_metrics(run / "metrics.csv")
    columns = set().union(*rows)
    assert {"train_loss", "val_loss", "val_ppl", "grad_norm", "grad_norm/rnn.l0"} <= columns
    assert [r["epoch"] for r in rows if "val_loss" in r] == [0.0, 1.0]
    report = (run / "report.md").read_text()
    assert "val_loss" in report and "![loss](plots/loss.png)" in report


def test_bundle_is_plain_safetensors_and_json(lm_run):
    weights = load_file(lm_run.run_dir / "model" / "model.safetensors")
    assert "rnn.weight_hh_l0" in weights
    description = json.loads((lm_run.run_dir / "model" / "model.json").read_text())
    assert description["config"]["task"] == "language_model"
    assert description["tokenizer"]["kind"] == "char"
    assert description["tokenizer"]["tokens"][:2] == ["<pad>", "<unk>"]


def test_load_evaluate_matches_the_final_metrics(lm_run):
    trained = rnnkit.api.load(lm_run.run_dir)
    assert trained.evaluate("val") == pytest.approx(lm_run.metrics, rel=1e-9)
    assert lm_run.metrics["val_ppl"] == pytest.approx(
        torch.tensor(lm_run.metrics["val_loss"]).exp().item()
    )


def test_best_checkpoint_is_the_lowest_validation_loss(lm_run):
    rows = read_metrics(lm_run.run_dir / "metrics.csv")
    best_logged = min(r["val_loss"] for r in rows if "val_loss" in r)
    assert lm_run.metrics["val_loss"] == pytest.approx(best_logged, rel=1e-6)


def test_generation_is_seeded_and_streams_the_same_text(lm_run):
    trained = rnnkit.api.load(lm_run.run_dir)
    first = trained.generate("ROMEO:", 40, temperature=1.0, seed=7)
    assert first == trained.generate("ROMEO:", 40, temperature=1.0, seed=7)
    assert first != trained.generate("ROMEO:", 40, temperature=1.0, seed=8)
    assert "".join(trained.generate("ROMEO:", 40, temperature=1.0, seed=7, stream=True)) == first
    assert len(first) == 40 and "<pad>" not in first


def test_state_carrying_generation_equals_rereading_the_context(lm_run):
    trained = rnnkit.api.load(lm_run.run_dir)
    text = "ROMEO:" + trained.generate("ROMEO:", 15, temperature=0.0)
    ids = torch.tensor([trained.tokenizer.encode(text)])
    logits, _ = trained.model(ids[:, :-1])
    greedy = logits[0, 5:].argmax(-1)  # re-reading the whole context predicts each next char
    assert trained.tokenizer.decode(greedy.tolist()) == text[6:]


def test_same_seed_same_metrics(tiny_text, tmp_path, lm_run):
    again = train_tiny(tiny_text, tmp_path / "again")
    assert read_metrics(again.run_dir / "metrics.csv") == read_metrics(
        lm_run.run_dir / "metrics.csv"
    )


def test_resume_equals_uninterrupted(tiny_text, tmp_path, lm_run):
    first = train_tiny(tiny_text, tmp_path / "r", "train.max_epochs=1")
    from rnnkit.config import load_config
    from rnnkit.training.engine import train

    config = load_config(first.run_dir / "config.yaml", ["train.max_epochs=2"])
    resumed = train(config, run_dir=first.run_dir, resume=True, quiet=True)
    assert read_metrics(resumed.run_dir / "metrics.csv") == read_metrics(
        lm_run.run_dir / "metrics.csv"
    )
    a = load_file(resumed.run_dir / "model" / "model.safetensors")
    b = load_file(lm_run.run_dir / "model" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_classification_learns_a_keyword(tmp_path):
    rows = []
    generator = torch.Generator().manual_seed(0)
    words = ["the", "film", "was", "plot", "actor", "scene"]
    for i in range(240):
        body = [words[j] for j in torch.randint(0, len(words), (6,), generator=generator)]
        label = i % 2
        body.insert(int(torch.randint(0, 6, (1,), generator=generator)), ["dull", "great"][label])
        rows.append(json.dumps({"text": " ".join(body), "label": ["neg", "pos"][label]}))
    (tmp_path / "reviews.jsonl").write_text("\n".join(rows))
    result = train_tiny(
        tmp_path / "reviews.jsonl",
        tmp_path / "cls",
        "task=classification",
        "data.tokenizer=word",
        "train.max_epochs=12",
        "model.bidirectional=true",
        "model.pooling=mean",
        "optim.lr=0.01",
        "sample.prompt=x",
    )
    assert result.metrics["val_acc"] >= 0.9
    trained = rnnkit.api.load(result.run_dir)
    [prediction] = trained.predict("the plot was great")
    assert prediction["label"] == "pos"
    assert sum(prediction["probabilities"].values()) == pytest.approx(1.0)


def test_labelling_learns_word_tags(tmp_path):
    tags = {"dogs": "NOUN", "cats": "NOUN", "run": "VERB", "sleep": "VERB", "fast": "ADV"}
    words = list(tags)
    generator = torch.Generator().manual_seed(1)
    lines = []
    for _ in range(150):
        n = int(torch.randint(2, 7, (1,), generator=generator))
        sentence = [words[j] for j in torch.randint(0, len(words), (n,), generator=generator)]
        lines += [
            f"{i + 1}\t{w}\t{w}\t{tags[w]}\t_\t_\t0\tdep\t_\t_" for i, w in enumerate(sentence)
        ]
        lines.append("")
    (tmp_path / "tags.conllu").write_text("\n".join(lines))
    result = train_tiny(
        tmp_path / "tags.conllu",
        tmp_path / "tag",
        "task=labelling",
        "model.bidirectional=true",
        "train.max_epochs=8",
        "optim.lr=0.02",
        "sample.prompt=x",
    )
    assert result.metrics["val_acc"] >= 0.95
    [prediction] = rnnkit.api.load(result.run_dir).predict("cats sleep fast")
    assert prediction["tags"] == ["NOUN", "VERB", "ADV"]


def test_word_prompts_read_line_breaks_as_eos():
    from rnnkit.api import encode_prompt
    from rnnkit.data.tokenizers import make_tokenizer

    tokenizer = make_tokenizer("whitespace")
    tokenizer.fit(["the cat sat"])
    assert encode_prompt(tokenizer, "\n") == [tokenizer.eos_id]
    expected = [*tokenizer.encode("the cat"), tokenizer.eos_id, *tokenizer.encode("sat")]
    assert encode_prompt(tokenizer, "the cat\nsat") == expected


def test_padded_batches_are_reshuffled_every_epoch(tmp_path):
    import lightning.pytorch as pl

    class FirstBatches(pl.Callback):
        def __init__(self):
            self.seen = []

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if batch_idx == 0:
                self.seen.append(batch[0].clone())

    rows = [json.dumps({"text": " ".join(["w"] * (1 + i % 9)) + f" x{i}", "label": i % 2})
            for i in range(80)]  # fmt: skip
    (tmp_path / "r.jsonl").write_text("\n".join(rows))
    first = FirstBatches()
    train_tiny(tmp_path / "r.jsonl", tmp_path / "run", "task=classification",
               "data.tokenizer=word", "train.max_epochs=3", "sample.prompt=x",
               callbacks=[first])  # fmt: skip
    assert len(first.seen) == 3
    assert not torch.equal(first.seen[0], first.seen[1]) or not torch.equal(
        first.seen[1], first.seen[2]
    )
