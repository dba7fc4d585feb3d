rule resolve_checkpoint:
    """Resolve a checkpoint (hub revision -> commit, or a directory), record its weight hash and layer count."""
    input:
        checkpoint_files,
    output:
        "results/models/{model}/{checkpoint}.json",
    log:
        "logs/resolve_checkpoint/{model}/{checkpoint}.log",
    benchmark:
        "benchmarks/out/resolve_checkpoint/{model}/{checkpoint}.tsv"
    conda:
        "../envs/trusttrace.yaml"
    threads: 1
    params:
        spec=model_spec,
        cell=lambda wildcards: tt_config.checkpoint_entry(
            config, wildcards.model, wildcards.checkpoint
        ),
        layers=config["layers"],
        mi_input_layer=config["mi"]["input_layer"],
        duplicate_check=lambda wildcards: config["models"][wildcards.model][
            "duplicate_check"
        ],
    script:
        "../workflow_scripts/resolve_checkpoint.py"


def checkpoint_records_up_to(wildcards):
    """The records of this checkpoint and of every checkpoint before it in config order: what its gate compares.
    A checkpoint added later never changes an earlier checkpoint's gate."""
    names = tt_config.checkpoint_names(config, wildcards.model)
    position = names.index(wildcards.checkpoint)
    return [
        f"results/models/{wildcards.model}/{name}.json"
        for name in names[: position + 1]
    ]


def checkpoint_gate_of(model, checkpoint):
    """The integrity gate a job of this checkpoint waits for. ancient(): a gate that is redone (another
    duplicate_weights, a checkpoint inserted before it) and passes again does not rerun finished jobs; changed
    weights still do, through the checkpoint's record."""
    return ancient(f"results/models/{model}/{checkpoint}.verified")


def checkpoint_gate(wildcards):
    return checkpoint_gate_of(wildcards.model, wildcards.checkpoint)


def steering_target_gate(wildcards):
    return checkpoint_gate_of(*tt_config.steering_target(config, wildcards.model))


# The gate reads a few small JSON records: on a cluster it runs where Snakemake runs, not as a submitted job.
localrules:
    verify_checkpoint,


rule verify_checkpoint:
    """Gate: fail (or warn) when a checkpoint holds the same weights as a checkpoint before it."""
    input:
        records=checkpoint_records_up_to,
    output:
        "results/models/{model}/{checkpoint}.verified",
    log:
        "logs/resolve_checkpoint/{model}/{checkpoint}.verify.log",
    benchmark:
        "benchmarks/out/verify_checkpoint/{model}/{checkpoint}.tsv"
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
        "logs/resolve_checkpoint/{model}/integrity.log",
    benchmark:
        "benchmarks/out/resolve_checkpoint/{model}/integrity.tsv"
    conda:
        "../envs/analysis.yaml"
    threads: 1
    params:
        on_duplicate=lambda wildcards: config["models"][wildcards.model][
            "duplicate_weights"
        ],
    script:
        "../workflow_scripts/check_checkpoint_integrity.py"


rule extract_activations:
    """Run a checkpoint over a dimension's statements and write one Parquet shard per layer."""
    input:
        data="results/data/{dimension}.parquet",
        record="results/models/{model}/{checkpoint}.json",
        gate=checkpoint_gate,
        files=checkpoint_files,
    output:
        directory("results/activations/{model}/{checkpoint}/{dimension}"),
    log:
        "logs/extract_activations/{model}/{checkpoint}/{dimension}.log",
    benchmark:
        "benchmarks/out/extract_activations/{model}/{checkpoint}/{dimension}.tsv"
    conda:
        "../envs/trusttrace.yaml"
    threads: 2
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
