rule resolve_checkpoint:
    """Resolve a checkpoint (hub revision -> commit, or a directory), record its weight hash and layer count."""
    input:
        checkpoint_files,
    output:
        MODEL_RECORD,
    log:
        "logs/resolve_checkpoint/{model}/{checkpoint}.log",
    benchmark:
        "results/benchmarks/resolve_checkpoint/{model}/{checkpoint}.tsv"
    conda:
        "../envs/trusttrace.yaml"
    threads: 1
    params:
        spec=model_spec,
        cell=lambda wildcards: tt_config.checkpoint_entry(
            config, wildcards.model, wildcards.checkpoint
        ),
        duplicate_check=lambda wildcards: config["models"][wildcards.model][
            "duplicate_check"
        ],
        layer_settings={
            "layers": config["layers"],
            "mi": {"input_layer": config["mi"]["input_layer"]},
            "steering": {"layers": config["steering"]["layers"]},
        },
    script:
        "../workflow_scripts/resolve_checkpoint.py"


localrules:
    verify_checkpoint,


rule verify_checkpoint:
    """Gate: fail (or warn) when a checkpoint holds the same weights as a checkpoint before it."""
    input:
        records=checkpoint_records_up_to,
    output:
        "results/models/{model}/{checkpoint}.verified",
    log:
        "logs/verify_checkpoint/{model}/{checkpoint}.log",
    benchmark:
        "results/benchmarks/verify_checkpoint/{model}/{checkpoint}.tsv"
    conda:
        "../envs/analysis.yaml"
    threads: 1
    params:
        on_duplicate=lambda wildcards: config["models"][wildcards.model][
            "duplicate_weights"
        ],
    script:
        "../workflow_scripts/check_checkpoint_integrity.py"


rule check_checkpoint_integrity:
    """Summarise a model's duplicate-weights checks (every pair of its checkpoints) in one record."""
    input:
        records=lambda wildcards: expand(
            "results/models/{{model}}/{checkpoint}.json",
            checkpoint=tt_config.checkpoint_names(config, wildcards.model),
        ),
        gates=lambda wildcards: expand(
            "results/models/{{model}}/{checkpoint}.verified",
            checkpoint=tt_config.checkpoint_names(config, wildcards.model),
        ),
    output:
        "results/models/{model}/_integrity.json",
    log:
        "logs/check_checkpoint_integrity/{model}.log",
    benchmark:
        "results/benchmarks/check_checkpoint_integrity/{model}.tsv"
    conda:
        "../envs/analysis.yaml"
    threads: 1
    params:
        on_duplicate=lambda wildcards: config["models"][wildcards.model][
            "duplicate_weights"
        ],
    script:
        "../workflow_scripts/check_checkpoint_integrity.py"


rule materialise_checkpoint:
    """Read a hub or local checkpoint once into a local safetensors copy in the compute dtype (hub_cache: evict frees its revision)."""
    input:
        record=MODEL_RECORD,
        gate=checkpoint_gate,
    output:
        temp(directory(LOCAL_COPY)),
    log:
        "logs/materialise_checkpoint/{model}/{checkpoint}.log",
    benchmark:
        "results/benchmarks/materialise_checkpoint/{model}/{checkpoint}.tsv"
    # Before further resolve_checkpoint jobs: with hub_cache evict a revision stays in the HF cache until its
    # copy is made, so copies first keep the cache at the checkpoints in flight.
    priority: 10
    conda:
        "../envs/trusttrace.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        # Only what the copy's bytes depend on; each is also in the spec of every job that reads the copy, so a
        # change reruns those anyway. Any other changed param would remake every copy, and a copy re-made after
        # temp() removed it reruns the jobs reading it (ancient() spares only inputs that exist): hub_cache is
        # therefore read by the script from the config.
        copy_settings=local_copy_settings,
    script:
        "../workflow_scripts/materialise_checkpoint.py"


rule extract_activations:
    """Run a checkpoint over a dimension's statements and write one Parquet shard per layer."""
    input:
        data=DATA,
        record=MODEL_RECORD,
        gate=checkpoint_gate,
        files=checkpoint_files,
        local_copy=local_copy,
    output:
        directory(ACTIVATIONS),
    log:
        "logs/extract_activations/{model}/{checkpoint}/{dimension}.log",
    benchmark:
        "results/benchmarks/extract_activations/{model}/{checkpoint}/{dimension}.tsv"
    conda:
        "../envs/trusttrace.yaml"
    threads: lambda wildcards: config["models"][wildcards.model]["threads"]
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        spec=model_spec,
        cell=cell_params,
        layers=config["layers"],
        extraction=config["extraction"],
    script:
        "../workflow_scripts/extract_activations.py"
