"""A peft LoRA adapter as a GGUF LoRA: its layout, its errors, and llama.cpp taking transformers' greedy turns."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from s3_agents.errors import DataError
from s3_agents.llm import gguf_lora_for, smollm2_gguf_path, write_gguf_lora
from s3_agents.trained import trained_searcher_dir


@pytest.fixture(scope="module")
def shipped_gguf(tmp_path_factory):
    return write_gguf_lora(trained_searcher_dir("world"), smollm2_gguf_path(),
                           tmp_path_factory.mktemp("lora") / "s.gguf")


def test_layout_names_alpha_and_the_rotary_row_order(shipped_gguf) -> None:
    from gguf import GGUFReader
    from safetensors.numpy import load_file

    reader = GGUFReader(str(shipped_gguf))
    fields = {k: f.contents() for k, f in reader.fields.items() if not k.startswith("GGUF.")}
    assert fields["general.type"] == "adapter" and fields["adapter.type"] == "lora"
    assert fields["general.architecture"] == "llama" and fields["adapter.lora.alpha"] == 32.0
    tensors = {t.name: np.array(t.data) for t in reader.tensors}
    peft = load_file(str(trained_searcher_dir("world") / "adapter_model.safetensors"))
    assert len(tensors) == len(peft) == 30 * 7 * 2
    prefix = "base_model.model.model.layers.0"
    down = tensors["blk.0.ffn_down.weight.lora_b"]
    assert down.dtype == np.float32 and np.array_equal(down, peft[f"{prefix}.mlp.down_proj.lora_B.weight"])
    assert np.array_equal(tensors["blk.0.attn_q.weight.lora_a"], peft[f"{prefix}.self_attn.q_proj.lora_A.weight"])
    # q's B rows follow llama.cpp's rotary layout: within a head (64 rows) the two halves interleave.
    hf_q = peft[f"{prefix}.self_attn.q_proj.lora_B.weight"].astype(np.float32)
    gguf_q = tensors["blk.0.attn_q.weight.lora_b"]
    assert np.array_equal(gguf_q[0], hf_q[0]) and np.array_equal(gguf_q[1], hf_q[32])
    assert np.array_equal(gguf_q[2], hf_q[1]) and np.array_equal(gguf_q[64 + 1], hf_q[64 + 32])
    assert sorted(map(tuple, gguf_q)) == sorted(map(tuple, hf_q))          # a permutation of the rows
    v = tensors["blk.0.attn_v.weight.lora_b"]                               # v keeps Hugging Face's order
    assert np.array_equal(v, peft[f"{prefix}.self_attn.v_proj.lora_B.weight"])
    assert oct(shipped_gguf.stat().st_mode & 0o777) == "0o644"


def test_cache_reuses_the_file_until_the_adapter_changes(tmp_path) -> None:
    adapter = tmp_path / "adapter"
    shutil.copytree(trained_searcher_dir("world"), adapter)
    first = gguf_lora_for(adapter, smollm2_gguf_path(), tmp_path / "cache")
    stamp = first.stat().st_mtime_ns
    assert gguf_lora_for(adapter, smollm2_gguf_path(), tmp_path / "cache").stat().st_mtime_ns == stamp
    config = json.loads((adapter / "adapter_config.json").read_text())
    (adapter / "adapter_config.json").write_text(json.dumps(config | {"lora_alpha": 16}))
    assert gguf_lora_for(adapter, smollm2_gguf_path(), tmp_path / "cache") != first


def test_what_llama_cpp_cannot_hold_is_refused(tmp_path) -> None:
    adapter = tmp_path / "dora"
    shutil.copytree(trained_searcher_dir("world"), adapter)
    config = json.loads((adapter / "adapter_config.json").read_text())
    (adapter / "adapter_config.json").write_text(json.dumps(config | {"use_dora": True, "modules_to_save": ["x"]}))
    with pytest.raises(DataError, match="cannot hold use_dora, modules_to_save"):
        write_gguf_lora(adapter, smollm2_gguf_path(), tmp_path / "x.gguf")
    with pytest.raises(FileNotFoundError, match="no LoRA adapter"):
        write_gguf_lora(tmp_path, smollm2_gguf_path(), tmp_path / "x.gguf")
    with pytest.raises(FileNotFoundError, match="base GGUF"):
        write_gguf_lora(trained_searcher_dir("world"), tmp_path / "none.gguf", tmp_path / "x.gguf")
    assert not (tmp_path / "x.gguf").exists()


def test_cli_exports_the_shipped_adapter_and_a_run_folder(tmp_path, capsys) -> None:
    from llama_cpp import Llama

    from tests.conftest import run_main

    code, out, err = run_main(capsys, "train", "export", "--gguf", "--searcher", "world",
                              str(tmp_path / "shipped.gguf"))
    assert code == 0, err
    assert "--lora_path" in out and (tmp_path / "shipped.gguf").is_file()
    run = tmp_path / "run"
    shutil.copytree(trained_searcher_dir("world"), run / "adapter")
    code, out, err = run_main(capsys, "train", "export", str(run), str(tmp_path / "run.gguf"), "--gguf")
    assert code == 0, err
    assert (tmp_path / "run.gguf").read_bytes() == (tmp_path / "shipped.gguf").read_bytes()
    llm = Llama(str(smollm2_gguf_path()), lora_path=str(tmp_path / "run.gguf"), n_ctx=256, verbose=False)
    assert llm.create_completion("The capital of France is", max_tokens=3, temperature=0)["choices"][0]["text"]
    llm.close()
    code, _, err = run_main(capsys, "train", "export", str(run), str(tmp_path / "x.gguf"), "--trained", "--gguf")
    assert code == 2 and "--trained exports the shipped adapter" in err
    code, _, err = run_main(capsys, "train", "export", "--gguf", "--trained", str(tmp_path))
    assert code == 1 and "is a folder" in err
    code, _, err = run_main(capsys, "train", "export", "--gguf", "--searcher", "qwen", str(tmp_path / "q.gguf"))
    assert code == 2 and "--searcher must be one of real, world" in err


@pytest.mark.slow
def test_llama_cpp_with_the_gguf_lora_takes_transformers_greedy_turns() -> None:
    """Real episodes of the shipped world searcher (world questions, its grammar): every turn the transformers model
    wrote with the adapter merged is written again, token for token, by llama.cpp with the GGUF LoRA."""
    from s3_agents import FaissRetriever, S3Searcher
    from s3_agents.embedders import HashingEmbedder
    from s3_agents.llm import LlamaCppClient
    from s3_agents.trained import trained_config, trained_searcher
    from s3_agents.worlds import default_world_dir, load_world

    world = load_world(default_world_dir())
    retriever = FaissRetriever.from_passages(world.passages, HashingEmbedder(dim=256))
    turns = []

    class Recorder:
        model = "recorder"

        def __init__(self, inner) -> None:
            self.inner = inner

        async def achat(self, messages, **kwargs):
            out = await self.inner.achat(messages, **kwargs)
            turns.append((list(messages), kwargs, out.text))
            return out

    questions = [q["question"] for q in world.sample("test", 1)]
    S3Searcher(Recorder(trained_searcher("world", engine="transformers")), retriever,
               trained_config("world")).batch(questions)
    assert len(turns) >= 2 and all(kwargs.get("grammar") for _, kwargs, _ in turns)
    adapted, base = trained_searcher("world"), LlamaCppClient()
    assert [adapted.chat(m, **kw).text for m, kw, _ in turns] == [text for _, _, text in turns]
    assert [base.chat(m, **kw).text for m, kw, _ in turns] != [text for _, _, text in turns]   # the LoRA acts
    adapted.close()
    base.close()
