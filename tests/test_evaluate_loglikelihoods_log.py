"""`sample_loglikelihoods`: per-choice log-likelihoods from lm-eval's logged samples (used by
`repro evaluate --log-loglikelihoods` and the evaluation benchmark's numerics comparison)."""

from repro.evaluate.harness import sample_loglikelihoods


def test_loglikelihoods_per_doc_and_choice_from_logged_samples():
    samples = {
        "mc_task": [
            {"doc_id": 0, "filter": "none", "resps": [[[-1.5, False]], [[-0.25, True]]]},
            {"doc_id": 7, "filter": "none", "resps": [[(-3.0, False)], [(-2.0, False)], [(-9.5, False)]]},
            {"doc_id": 0, "filter": "other", "resps": [[[-100.0, False]]]},  # another filter's copy: ignored
        ],
        "generation_task": [{"doc_id": 0, "filter": "none", "resps": [["some text"]]}],  # not loglikelihood
    }
    assert sample_loglikelihoods(samples) == {"mc_task": {"0": [-1.5, -0.25], "7": [-3.0, -2.0, -9.5]}}


def test_no_samples_gives_an_empty_table():
    assert sample_loglikelihoods({}) == {}
    assert sample_loglikelihoods({"t": [{"doc_id": 1, "filter": "none", "resps": []}]}) == {}
