from __future__ import annotations

import numpy as np
import pytest

from s3_agents.embedders import (
    Embedder,
    HashingEmbedder,
    SentenceTransformerEmbedder,
    load_embedder,
)


def test_minilm_loads_offline_and_ranks_sensibly(minilm: SentenceTransformerEmbedder) -> None:
    assert isinstance(minilm, Embedder)
    assert minilm.dim == 384 and minilm.spec == "minilm"
    q = minilm.embed_queries(["Who wrote Hamlet?"])
    p = minilm.embed_passages([
        '"Hamlet"\nHamlet is a tragedy written by William Shakespeare.',
        '"Volcano"\nA volcano is a rupture in the crust of a planet.',
    ])
    assert q.dtype == np.float32 and q.shape == (1, 384) and p.shape == (2, 384)
    np.testing.assert_allclose(np.linalg.norm(p, axis=1), 1.0, rtol=1e-4)
    scores = (q @ p.T)[0]
    assert scores[0] > scores[1] + 0.3


def test_batching_does_not_change_vectors(minilm: SentenceTransformerEmbedder) -> None:
    texts = [f"passage number {i} about rivers and cities" for i in range(10)]
    whole = minilm.embed_passages(texts)
    minilm.batch_size, old = 3, minilm.batch_size
    try:
        batched = minilm.embed_passages(texts, show_progress=True)
    finally:
        minilm.batch_size = old
    np.testing.assert_allclose(whole, batched, atol=1e-5)


def test_e5_style_prefixes_are_applied(minilm: SentenceTransformerEmbedder, capfd) -> None:
    from transformers.utils import logging

    prefixed = SentenceTransformerEmbedder(minilm.model_name, query_prefix="query: ",
                                           passage_prefix="passage: ")
    assert "Loading weights" not in capfd.readouterr().err and logging.is_progress_bar_enabled()
    text = "the salt market of Gritia"
    np.testing.assert_allclose(prefixed.embed_queries([text]), minilm.embed_queries(["query: " + text]), atol=1e-5)
    np.testing.assert_allclose(prefixed.embed_passages([text]), minilm.embed_passages(["passage: " + text]), atol=1e-5)
    assert not np.allclose(prefixed.embed_queries([text]), prefixed.embed_passages([text]))


def test_empty_input(minilm: SentenceTransformerEmbedder, hashing: HashingEmbedder) -> None:
    assert minilm.embed_queries([]).shape == (0, 384)
    assert hashing.embed_passages([]).shape == (0, 256)


@pytest.mark.parametrize("make", [lambda: HashingEmbedder(32)])
def test_single_string_is_refused(make) -> None:
    with pytest.raises(TypeError, match="list of texts"):
        make().embed_queries("one string")


def test_hashing_is_deterministic_and_keyword_sensitive(hashing: HashingEmbedder) -> None:
    a = hashing.embed_queries(["river of the capital", "river of the capital"])
    np.testing.assert_array_equal(a[0], a[1])
    p = hashing.embed_passages(["the capital has a river", "a bakery sells bread"])
    scores = (a[:1] @ p.T)[0]
    assert scores[0] > scores[1]
    assert HashingEmbedder(32).embed_queries(["x"]).shape == (1, 32)


def test_load_embedder_specs(minilm: SentenceTransformerEmbedder) -> None:
    assert load_embedder("hashing").spec == "hashing:256"
    assert load_embedder("hashing:64").dim == 64
    local = load_embedder(f"st:{minilm.model_name}")
    assert local.spec == f"st:{minilm.model_name}" and local.dim == 384
    with pytest.raises(ValueError, match="hashing"):
        load_embedder("hashing:lots")
    with pytest.raises(ValueError, match="empty embedder spec"):
        load_embedder(" ")


def test_e5_factory_sets_s3_conventions(minilm: SentenceTransformerEmbedder) -> None:
    # The real factory, pointed at a local model instead of the hub.
    e5 = SentenceTransformerEmbedder.e5(minilm.model_name)
    assert (e5.query_prefix, e5.passage_prefix) == ("query: ", "passage: ")
    assert e5.spec == f"e5:{minilm.model_name}"
    assert e5._model.max_seq_length == 256


def test_length_sorted_batches_come_back_in_input_order(minilm: SentenceTransformerEmbedder) -> None:
    texts = ["short", "a much longer passage about the rivers of the archipelago " * 6, "mid length text here",
             "x", "another long one " * 20, "river"]
    minilm.batch_size, old = 2, minilm.batch_size
    try:
        got = minilm.embed_passages(texts)
    finally:
        minilm.batch_size = old
    one_by_one = np.concatenate([minilm.embed_passages([t]) for t in texts])
    np.testing.assert_allclose(got, one_by_one, atol=1e-5)
    assert minilm.precision == "fp32" and minilm.device == "cpu"


def test_device_precision_and_threads_are_checked() -> None:
    import torch

    with pytest.raises(ValueError, match="precision"):
        SentenceTransformerEmbedder.default(precision="fp8")
    with pytest.raises(ValueError, match="threads"):
        SentenceTransformerEmbedder.default(threads=0)
    if not torch.cuda.is_available():
        from s3_agents.errors import NoGPUError

        with pytest.raises(NoGPUError, match="cuda"):
            SentenceTransformerEmbedder.default(device="cuda")
