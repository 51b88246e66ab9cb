"""course_lib.exercises: right functions pass, wrong ones fail naming the input; hints; solutions."""

import pytest
import torch

from course_lib.exercises import Exercise, default_equal, describe
from course_lib.temperature.exercises import stable_softmax


def test_right_function_passes():
    def mine(logits):
        return torch.softmax(logits, dim=-1)

    result = stable_softmax.check(mine, quiet=True)
    assert result.passed and result.attempted and bool(result)
    assert "correct on 4 edge cases and 25 random inputs" in result.message


def test_naive_function_fails_on_the_overflow_edge_case():
    def naive(logits):
        return logits.exp() / logits.exp().sum(dim=-1, keepdim=True)

    result = stable_softmax.check(naive, quiet=True)
    assert not result.passed and result.attempted
    assert "edge case 2 of 29" in result.message
    assert "1000.0" in result.message and "expected:" in result.message and "got:" in result.message
    assert result.failing_case is stable_softmax.edge_cases[1]


def test_wrong_dim_fails_on_a_random_input():
    def wrong_axis(logits):
        shifted = logits - logits.amax(dim=0, keepdim=True)
        return shifted.exp() / shifted.exp().sum(dim=0, keepdim=True)

    result = stable_softmax.check(wrong_axis, quiet=True)
    assert not result.passed and "wrong on" in result.message


def test_crash_is_reported_against_its_input():
    def crashes(logits):
        return logits.softmax()  # missing dim

    result = stable_softmax.check(crashes, quiet=True)
    assert not result.passed and "raised TypeError" in result.message


def test_stub_counts_as_not_attempted(capsys):
    def stub(logits):
        raise NotImplementedError

    result = stable_softmax.check(stub)
    assert not result.attempted and not result.passed
    assert "not attempted yet" in capsys.readouterr().out


def test_check_rejects_non_callable():
    with pytest.raises(TypeError, match="fn must be a function; got int"):
        stable_softmax.check(3)


def test_learner_cannot_corrupt_the_reference_inputs():
    def mutates(logits):
        out = torch.softmax(logits, dim=-1)
        logits.zero_()
        return out

    assert stable_softmax.check(mutates, quiet=True).passed
    assert stable_softmax.edge_cases[1]["logits"][0] == 1000.0


def test_random_cases_are_reproducible():
    a, b = stable_softmax.cases(seed=3), stable_softmax.cases(seed=3)
    assert all(torch.equal(x["logits"], y["logits"]) for x, y in zip(a, b))
    assert not torch.equal(stable_softmax.cases(seed=4)[-1]["logits"], a[-1]["logits"])


def test_hints_one_at_a_time_then_solution(capsys):
    ex = Exercise("t", "task", reference=lambda x: x, hints=["first", "second"])
    assert ex.hint() == "Hint 1/2: first"
    assert ex.hint() == "Hint 2/2: second"
    assert "last hint" in ex.hint()
    assert "lambda x: x" in ex.solution()
    assert "Exercise: t" in ex.show()


def test_default_equal():
    assert default_equal(torch.ones(2), torch.ones(2))
    assert not default_equal(torch.ones(2), torch.ones(3))
    assert not default_equal(torch.ones(2), torch.ones(2, dtype=torch.float64))
    assert not default_equal(1.0, True)
    assert default_equal([1, (2.0, torch.zeros(1))], [1, (2.0, torch.zeros(1))])
    assert default_equal({"a": 1}, {"a": 1}) and not default_equal({"a": 1}, {"b": 1})
    assert default_equal(float("nan"), float("nan"))
    assert "values=[1.0, 2.0]" in describe(torch.tensor([1.0, 2.0]))


def test_run_plugs_the_candidate_into_machinery_and_oracle_gives_the_expected_value():
    calls = []

    def run(fn, case):  # the "machinery": applies the learner's piece twice
        calls.append(case["x"])
        return fn(fn(case["x"]))

    ex = Exercise(title="double twice", task="", reference=lambda x: 2 * x, edge_cases=[{"x": 1.0}, {"x": -3.0}],
                  run=run, oracle=lambda case: 4 * case["x"])
    assert ex.check(lambda x: x + x, quiet=True).passed
    wrong = ex.check(lambda x: x + 1, quiet=True)
    assert not wrong.passed and wrong.failing_case == {"x": 1.0} and "expected: 4.0" in wrong.message
    assert not ex.check(lambda x: 3 * x, quiet=True).passed
    assert ex.check(ex.reference, quiet=True).passed  # the solution passes against the oracle too
