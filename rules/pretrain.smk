rule pretrain_corpus:
    """Build the offline pre-training text: pydoc topics, stdlib docstrings and the demo statements."""
    output:
        "results/pretrain/corpus.txt",
    log:
        "logs/pretrain_corpus/corpus.log",
    benchmark:
        "results/benchmarks/pretrain_corpus/corpus.tsv"
    conda:
        "../envs/trusttrace.yaml"
    threads: 1
    script:
        "../workflow_scripts/pretrain_corpus.py"


rule pretrain_tokenizer:
    """Train a byte-level BPE tokenizer for a pre-trained model and encode the corpus once."""
    input:
        corpus="results/pretrain/corpus.txt",
    output:
        tokenizer=directory("results/pretrain/{model}/tokenizer"),
        tokens="results/pretrain/{model}/tokens.npy",
    log:
        "logs/pretrain_tokenizer/{model}.log",
    benchmark:
        "results/benchmarks/pretrain_tokenizer/{model}.tsv"
    conda:
        "../envs/trusttrace.yaml"
    threads: 1
    params:
        vocab_size=lambda wildcards: config["models"][wildcards.model]["pretrain"][
            "vocab_size"
        ],
    script:
        "../workflow_scripts/pretrain_tokenizer.py"


rule pretrain_checkpoint:
    """Train a tiny Llama from the previous checkpoint (or a seeded init) up to this checkpoint's step."""
    input:
        tokenizer="results/pretrain/{model}/tokenizer",
        tokens="results/pretrain/{model}/tokens.npy",
        previous=previous_pretrain_checkpoint,
    output:
        checkpoint=directory("results/pretrain/{model}/checkpoints/{checkpoint}"),
        losses="results/pretrain/{model}/losses/{checkpoint}.tsv",
    log:
        "logs/pretrain_checkpoint/{model}/{checkpoint}.log",
    benchmark:
        "results/benchmarks/pretrain_checkpoint/{model}/{checkpoint}.tsv"
    # The chain of segments is the run's critical path: a segment starts as soon as it can.
    priority: 50
    conda:
        "../envs/trusttrace.yaml"
    threads: lambda wildcards: config["models"][wildcards.model]["pretrain"]["threads"]
    resources:
        mem_mb=4000,
        runtime=120,
    params:
        step=lambda wildcards: tt_config.checkpoint_entry(
            config, wildcards.model, wildcards.checkpoint
        )["step"],
        settings=lambda wildcards: config["models"][wildcards.model]["pretrain"],
    script:
        "../workflow_scripts/pretrain_checkpoint.py"
