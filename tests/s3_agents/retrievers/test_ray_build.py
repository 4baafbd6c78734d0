"""A build whose embedding runs on a local two-worker Ray cluster equals a single-process build."""

from __future__ import annotations

import numpy as np
import pytest

from s3_agents.embedders import HashingEmbedder
from s3_agents.retrievers import load_retriever
from s3_agents.retrievers._store import IndexStore
from s3_agents.retrievers.faiss import build_faiss_index
from s3_agents.retrievers.qdrant_edge import build_qdrant_edge_index
from s3_agents.worlds import default_world_dir, load_world
from tests.conftest import run_main

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster():
    """A head and two worker nodes, one CPU each, all on this machine: a real multi-node Ray cluster."""
    from ray.cluster_utils import Cluster

    local = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    for _ in range(2):
        local.add_node(num_cpus=1)
    local.wait_for_nodes()
    yield local
    local.shutdown()


def test_ray_build_equals_a_single_process_build(tmp_path, cluster, minilm) -> None:
    from s3_agents.retrievers.ray_embed import RayEmbedding

    passages = load_world(default_world_dir()).passages[:150]
    distributed = build_faiss_index(passages, tmp_path / "ray", embedder=minilm, chunk_size=50, show_progress=False,
                                    distribute=RayEmbedding(cluster.address, workers=2))
    local = build_faiss_index(passages, tmp_path / "local", embedder=minilm, chunk_size=50, show_progress=False)
    a, b = (load_retriever(path) for path in (tmp_path / "ray", tmp_path / "local"))
    np.testing.assert_allclose(a.index.reconstruct_n(0, 150), b.index.reconstruct_n(0, 150), atol=1e-5)
    asked = ["Who founded the Meisen Traders?", "Which river flows through Krigaen?"]
    assert [[p.id for p in row] for row in a.search(asked, 5)] == [[p.id for p in row] for row in b.search(asked, 5)]
    assert IndexStore(tmp_path / "ray").read_meta()["embedder"] == "minilm"
    assert distributed.name.startswith("gen-") and local.name.startswith("gen-")


def test_ray_build_resumes_and_writes_straight_into_qdrant_edge(tmp_path, cluster) -> None:
    from s3_agents.retrievers.ray_embed import RayEmbedding

    hashing = HashingEmbedder(dim=64)
    passages = load_world(default_world_dir()).passages[:500]
    out = tmp_path / "edge"
    partial = out / ".partial"
    seen: list[int] = []
    build = RayEmbedding(cluster.address, workers=2)
    asked_chunks = []

    def counting(embedder, chunks):
        asked_chunks.extend(i for i, _ in chunks)
        yield from build(embedder, chunks)

    # An earlier build died after saving three chunks: Ray embeds only the other two.
    with pytest.raises(ZeroDivisionError):
        IndexStore(out).embed_passages(passages, hashing, chunk_size=100, show_progress=False,
                                       feed=lambda block: seen.append(1) if len(seen) < 2 else 1 / 0)
    assert len(list(partial.glob("chunk-*.npy"))) == 3
    build_qdrant_edge_index(passages, out, embedder=hashing, chunk_size=100, show_progress=False,
                            distribute=counting)
    assert asked_chunks == [3, 4]
    with load_retriever(out) as edge:
        assert len(edge) == 500
        top = edge.search([passages[42].contents], 1)[0][0]
    assert top.id == passages[42].id


def test_cli_refuses_ray_for_bm25(tmp_path, capsys) -> None:
    from s3_agents.corpus import demo_corpus_path

    code, _, err = run_main(capsys, "index", "build", str(demo_corpus_path()), str(tmp_path / "b"), "--backend",
                            "bm25", "--ray", "auto")
    assert code == 2 and "BM25 has nothing to embed" in err
