"""The de-quantised GGUF cache: the same model as transformers' own GGUF load, converted once, never half-written."""

from __future__ import annotations

import os
import time

import pytest
import torch

from s3_agents.llm import gguf_cache, gguf_transformers_dir, smollm2_gguf_path
from s3_agents.llm.gguf_cache import transformers_source


def _fake_convert(calls: list[str], fail: bool = False):
    def convert(gguf, folder) -> None:
        calls.append(gguf.name)
        folder.mkdir()
        (folder / "model.safetensors").write_bytes(b"weights")
        if fail:
            raise RuntimeError("killed mid-conversion")
        (folder / "config.json").write_text("{}")
    return convert


def test_converts_once_and_a_changed_file_gets_a_new_folder(tmp_path, monkeypatch) -> None:
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF v1")
    calls: list[str] = []
    monkeypatch.setattr(gguf_cache, "_convert", _fake_convert(calls))
    first = gguf_transformers_dir(gguf, tmp_path / "cache")
    assert gguf_transformers_dir(gguf, tmp_path / "cache") == first and calls == ["m.gguf"]
    assert (first / "SOURCE").read_text().startswith(str(gguf.resolve()))
    gguf.write_bytes(b"GGUF version 2")
    os.utime(gguf, ns=(time.time_ns(), time.time_ns() + 10**9))
    second = gguf_transformers_dir(gguf, tmp_path / "cache")
    assert second != first and calls == ["m.gguf", "m.gguf"]
    with pytest.raises(FileNotFoundError, match="missing.gguf"):
        gguf_transformers_dir(tmp_path / "missing.gguf", tmp_path / "cache")


def test_a_failed_conversion_leaves_nothing_and_a_stale_one_is_swept(tmp_path, monkeypatch) -> None:
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    root = tmp_path / "cache" / "gguf-hf"
    root.mkdir(parents=True)
    stale, fresh = root / ".m-old.1.tmp", root / ".m-other.2.tmp"      # a killed conversion, a running one
    stale.mkdir()
    fresh.mkdir()
    os.utime(stale, (time.time() - 2 * gguf_cache.STALE_SECONDS,) * 2)
    monkeypatch.setattr(gguf_cache, "_convert", _fake_convert([], fail=True))
    with pytest.raises(RuntimeError, match="killed"):
        gguf_transformers_dir(gguf, tmp_path / "cache")
    assert sorted(p.name for p in root.iterdir()) == [fresh.name]


def test_a_folder_published_meanwhile_by_another_process_is_used(tmp_path, monkeypatch) -> None:
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")

    def convert_while_another_publishes(source, folder) -> None:
        _fake_convert([])(source, folder)
        other = folder.parent / folder.name.split(".")[1]
        other.mkdir()
        (other / "config.json").write_text('{"by": "the other process"}')

    monkeypatch.setattr(gguf_cache, "_convert", convert_while_another_publishes)
    out = gguf_transformers_dir(gguf, tmp_path / "cache")
    assert (out / "config.json").read_text() == '{"by": "the other process"}'
    assert [p.name for p in out.parent.iterdir()] == [out.name]               # ours was removed


def test_a_local_gguf_goes_through_the_cache_and_a_hub_one_to_transformers(tmp_path, monkeypatch) -> None:
    (tmp_path / "m.gguf").write_bytes(b"GGUF")
    monkeypatch.setenv("S3_AGENTS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(gguf_cache, "_convert", _fake_convert([]))
    folder, kwargs = transformers_source(tmp_path, "m.gguf")
    assert kwargs == {} and folder == str(gguf_transformers_dir(tmp_path / "m.gguf"))
    assert folder.startswith(str(tmp_path / "cache" / "gguf-hf"))
    assert transformers_source("org/model-GGUF", "model.Q4.gguf") == ("org/model-GGUF", {"gguf_file": "model.Q4.gguf"})
    assert transformers_source("org/model") == ("org/model", {})


@pytest.mark.slow
def test_the_cached_folder_is_the_model_transformers_reads_from_the_gguf(tmp_path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = smollm2_gguf_path()
    direct = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32)
    direct_tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    folder = gguf_transformers_dir(path)
    cached = AutoModelForCausalLM.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert cached.dtype == torch.float32
    expected = direct.state_dict()
    assert set(cached.state_dict()) == set(expected)
    for name, tensor in cached.state_dict().items():
        assert torch.equal(tensor, expected[name]), name
    messages = [{"role": "system", "content": "Search."}, {"role": "user", "content": "Who founded Gritia? é 東京"}]
    for attribute in ("eos_token_id", "bos_token_id", "pad_token_id", "chat_template"):
        assert getattr(tokenizer, attribute) == getattr(direct_tokenizer, attribute), attribute
    assert (tokenizer.apply_chat_template(messages, add_generation_prompt=True)
            == direct_tokenizer.apply_chat_template(messages, add_generation_prompt=True))
    assert tokenizer.decode(tokenizer.encode("  <query>x</query>\n")) == "  <query>x</query>\n"
