"""The CRF output layer against brute force over all C^T tag sequences on tiny inputs."""

import itertools
import math

import pytest
import torch

from rnnkit.models.crf import CRF, PAD_TAG


def random_crf(num_tags: int, generator: torch.Generator) -> CRF:
    """A float64 CRF with parameters large enough that the brute-force checks are not trivial."""
    crf = CRF(num_tags).double()
    with torch.no_grad():
        for parameter in crf.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator, dtype=torch.float64))
    return crf


def prefix_mask(lengths: list[int], num_steps: int) -> torch.Tensor:
    """lengths (B,) -> mask (B, T)."""
    return torch.arange(num_steps) < torch.tensor(lengths).unsqueeze(1)


def all_scores(crf: CRF, emissions: torch.Tensor) -> dict[tuple[int, ...], float]:
    """Every tag sequence of one unpadded sequence, emissions (n, C) -> its score s(path),
    written out term by term in Python floats."""
    n, C = emissions.shape
    rows, transitions = emissions.tolist(), crf.transitions.tolist()
    start, end = crf.start_transitions.tolist(), crf.end_transitions.tolist()
    scores = {}
    for path in itertools.product(range(C), repeat=n):
        score = start[path[0]] + sum(rows[t][tag] for t, tag in enumerate(path)) + end[path[-1]]
        scores[path] = score + sum(transitions[a][b] for a, b in itertools.pairwise(path))
    return scores


def log_sum_exp(values) -> float:
    return math.log(sum(math.exp(v) for v in values))


def test_log_likelihood_matches_brute_force_and_probabilities_sum_to_one():
    generator = torch.Generator().manual_seed(1)
    for num_tags, lengths in [(1, [3, 1]), (2, [4, 1, 3, 2]), (3, [4, 2, 1, 3])]:
        crf = random_crf(num_tags, generator)
        B, T = len(lengths), max(lengths)
        emissions = torch.randn(B, T, num_tags, generator=generator, dtype=torch.float64)
        mask = prefix_mask(lengths, T)
        scores = [all_scores(crf, emissions[b, :n]) for b, n in enumerate(lengths)]
        log_z = [log_sum_exp(row.values()) for row in scores]

        # every tag sequence of each row, the row repeated once per sequence
        for b, n in enumerate(lengths):
            paths = list(scores[b])
            tags = torch.full((len(paths), T), PAD_TAG)
            tags[:, :n] = torch.tensor(paths)
            rows = (len(paths), -1)
            got = crf.log_likelihood(emissions[b].expand(*rows, -1), tags, mask[b].expand(*rows))
            want = torch.tensor([scores[b][p] - log_z[b] for p in paths], dtype=torch.float64)
            torch.testing.assert_close(got, want, rtol=0, atol=1e-10)
            assert abs(got.exp().sum().item() - 1.0) < 1e-10

        # the whole batch of mixed lengths at once, one random tag sequence per row
        tags = torch.randint(0, num_tags, (B, T), generator=generator).masked_fill(~mask, PAD_TAG)
        got = crf.log_likelihood(emissions, tags, mask)
        want = [scores[b][tuple(tags[b, :n].tolist())] - log_z[b] for b, n in enumerate(lengths)]
        torch.testing.assert_close(got, torch.tensor(want, dtype=torch.float64), rtol=0, atol=1e-10)


def test_viterbi_matches_brute_force_argmax():
    generator = torch.Generator().manual_seed(2)
    for case in range(50):
        num_tags = 1 + case % 3
        lengths = torch.randint(1, 5, (3,), generator=generator).tolist()
        T = max(lengths) + case % 2  # every other case has an all-padding column
        crf = random_crf(num_tags, generator)
        emissions = torch.randn(3, T, num_tags, generator=generator, dtype=torch.float64)
        mask = prefix_mask(lengths, T)
        got = crf.decode(emissions, mask)
        padded = crf.decode_tensor(emissions, mask)
        for b, n in enumerate(lengths):
            scores = all_scores(crf, emissions[b, :n])
            want = max(scores, key=scores.get)
            assert tuple(got[b]) == want, f"case {case}, row {b}: lengths {lengths}"
            assert padded[b].tolist() == list(want) + [PAD_TAG] * (T - n)


def test_gradcheck_wrt_emissions_and_all_transitions():
    generator = torch.Generator().manual_seed(3)
    crf = random_crf(3, generator)
    emissions = torch.randn(3, 4, 3, generator=generator, dtype=torch.float64, requires_grad=True)
    tags = torch.randint(0, 3, (3, 4), generator=generator)
    mask = prefix_mask([4, 2, 1], 4)
    parameters = (crf.transitions, crf.start_transitions, crf.end_transitions)

    def log_likelihood(emissions, *parameters):
        # gradcheck perturbs its inputs in place, so passing the parameters themselves checks the
        # gradients with respect to them too
        return crf.log_likelihood(emissions, tags, mask)

    assert torch.autograd.gradcheck(log_likelihood, (emissions, *parameters))


def test_padding_changes_nothing():
    generator = torch.Generator().manual_seed(4)
    crf = random_crf(3, generator)
    lengths = [3, 1, 2]
    emissions = torch.randn(3, 3, 3, generator=generator, dtype=torch.float64)
    tags = torch.randint(0, 3, (3, 3), generator=generator)
    mask = prefix_mask(lengths, 3)
    # two more padded steps everywhere, and garbage at every padded step
    garbage = torch.tensor([float("nan"), float("inf"), -1e30], dtype=torch.float64)
    wide_emissions = garbage.repeat(3, 5, 1)
    wide_emissions[:, :3] = torch.where(mask.unsqueeze(-1), emissions, garbage)
    wide_tags = torch.full((3, 5), PAD_TAG)
    wide_tags[:, :3] = tags.masked_fill(~mask, 7)
    wide_mask = prefix_mask(lengths, 5)

    wide_emissions.requires_grad_()
    wide = crf.log_likelihood(wide_emissions, wide_tags, wide_mask)
    (grad_wide,) = torch.autograd.grad(wide.sum(), wide_emissions)
    narrow_emissions = emissions.clone().requires_grad_()
    narrow = crf.log_likelihood(narrow_emissions, tags, mask)
    (grad_narrow,) = torch.autograd.grad(narrow.sum(), narrow_emissions)

    torch.testing.assert_close(wide, narrow, rtol=0, atol=1e-12)
    torch.testing.assert_close(grad_wide[:, :3], grad_narrow)
    assert torch.all(grad_narrow[~mask] == 0) and torch.all(grad_wide[:, 3:] == 0)
    assert crf.decode(wide_emissions, wide_mask) == crf.decode(emissions, mask)
    for b, n in enumerate(lengths):  # and each row scores as it would alone
        alone = crf.log_likelihood(
            emissions[b : b + 1, :n], tags[b : b + 1, :n], mask[b : b + 1, :n]
        )
        torch.testing.assert_close(alone, narrow[b : b + 1], rtol=0, atol=1e-12)


def test_nll_reductions():
    crf = CRF(2)
    emissions, tags = torch.randn(3, 2, 2), torch.tensor([[0, 1], [1, PAD_TAG], [0, 0]])
    mask = prefix_mask([2, 1, 2], 2)
    per_sequence = -crf.log_likelihood(emissions, tags, mask)
    torch.testing.assert_close(crf.nll(emissions, tags, mask, reduction="none"), per_sequence)
    torch.testing.assert_close(crf.nll(emissions, tags, mask), per_sequence.sum())
    torch.testing.assert_close(crf.nll(emissions, tags, mask, "mean"), per_sequence.mean())
    with pytest.raises(ValueError, match="reduction must be one of"):
        crf.nll(emissions, tags, mask, reduction="token_mean")


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda crf, e, t, m: crf.nll(e, t, m.index_fill(0, torch.tensor([1]), False)),
         ValueError, r"rows \[1\] of the mask have none"),
        (lambda crf, e, t, m: crf.decode(e, m.index_fill(0, torch.tensor([1]), False)),
         ValueError, r"rows \[1\] of the mask have none"),
        (lambda crf, e, t, m: crf.decode(e, torch.tensor([[True, False, True]] * 2)),
         ValueError, r"right-padded prefix .* rows \[0, 1\]"),
        (lambda crf, e, t, m: crf.decode(e[..., :2], m),
         ValueError, r"expected emissions of shape \(B, T, 3\); got \(2, 3, 2\)"),
        (lambda crf, e, t, m: crf.decode(e, m[:, :2]),
         ValueError, r"expected mask of shape \(2, 3\) like emissions; got \(2, 2\)"),
        (lambda crf, e, t, m: crf.nll(e, t[:1], m),
         ValueError, r"expected tags of shape \(2, 3\) like emissions; got \(1, 3\)"),
        (lambda crf, e, t, m: crf.nll(e, t + 3, m),
         ValueError, r"tags at valid steps must lie in \[0, 3\); got \[3\]"),
        (lambda crf, e, t, m: crf.decode(e, m.long()),
         TypeError, "mask must be a bool tensor; got torch.int64"),
        (lambda crf, e, t, m: crf.nll(e, t.double(), m),
         TypeError, "tags must be an integer tensor"),
        (lambda crf, e, t, m: crf.decode(e.double(), m),
         TypeError, "expected emissions of dtype torch.float32"),
    ],
    ids=[
        "zero-length row in nll", "zero-length row in decode", "mask not a prefix",
        "emissions of the wrong width", "mask shape", "tags shape", "tag out of range",
        "mask not bool", "float tags", "emissions dtype",
    ],
)  # fmt: skip
def test_bad_input_says_what_was_expected(call, error, message):
    crf = CRF(3)
    emissions, mask = torch.randn(2, 3, 3), prefix_mask([3, 3], 3)
    tags = torch.zeros(2, 3, dtype=torch.long)
    with pytest.raises(error, match=message):
        call(crf, emissions, tags, mask)


def test_num_tags_must_be_positive():
    with pytest.raises(ValueError, match="num_tags must be a positive int; got 0"):
        CRF(0)


def continuation_task(batch_size: int, num_steps: int, generator: torch.Generator):
    """Tokens 0 and 1 open a span tagged 0 or 1; token 2 (half of all tokens after the first)
    continues the open span, tagged 2 inside a span opened by 0 and 3 inside one opened by 1.
    Which of 2 and 3 is right depends on the previous tag, never on the token alone.

    -> tokens (B, T) long, tags (B, T) long, mask (B, T) bool (each row starts a span).
    """
    tokens = torch.randint(0, 4, (batch_size, num_steps), generator=generator).clamp(max=2)
    tokens[:, 0] = torch.randint(0, 2, (batch_size,), generator=generator)
    tags = tokens.clone()
    for t in range(1, num_steps):
        span = tags[:, t - 1] % 2  # 0 -> span opened by token 0, 1 -> by token 1
        tags[:, t] = torch.where(tokens[:, t] == 2, 2 + span, tokens[:, t])
    lengths = torch.randint(1, num_steps + 1, (batch_size,), generator=generator)
    return tokens, tags, torch.arange(num_steps) < lengths.unsqueeze(1)


def best_per_token_accuracy(tokens: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> float:
    """The accuracy of the best rule token -> tag on this data: each token's most common tag."""
    tokens, tags = tokens[mask], tags[mask]
    right = sum(torch.bincount(tags[tokens == v]).max().item() for v in tokens.unique())
    return right / len(tags)


@pytest.fixture
def one_thread():
    """Tiny tensors: a second intra-op thread only adds synchronisation (and waits on a busy
    machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_crf_learns_a_rule_that_needs_transitions(one_thread):
    generator = torch.Generator().manual_seed(5)
    emit = torch.nn.Linear(3, 4)
    crf = CRF(4)
    optimiser = torch.optim.Adam([*emit.parameters(), *crf.parameters()], lr=0.1)
    for _ in range(100):
        tokens, tags, mask = continuation_task(32, 8, generator)
        emissions = emit(torch.nn.functional.one_hot(tokens, 3).float())
        loss = crf.nll(emissions, tags, mask, reduction="mean")
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()

    tokens, tags, mask = continuation_task(256, 8, generator)
    with torch.no_grad():
        decoded = crf.decode_tensor(emit(torch.nn.functional.one_hot(tokens, 3).float()), mask)
    assert torch.all(decoded[~mask] == PAD_TAG)
    accuracy = (decoded == tags)[mask].double().mean().item()
    assert accuracy > 0.99, accuracy
    # no rule from the token alone comes close: the transitions carry the span
    assert best_per_token_accuracy(tokens, tags, mask) < 0.85
