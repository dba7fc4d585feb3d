# From cells to findings: tidy tables from every cell, then the phases, findings and summary from the tables, so a
# new cell reruns only the aggregation downstream of it (figures: figures.smk).


rule aggregate_metrics:
    """Gather every probe, MI and steering cell into one tidy metrics table and a list of degenerate cells."""
    input:
        probe=expand_cells(rules.probe.output[0]),
        mi=expand_cells(rules.mutual_information.output[0]),
        steering=steering_directories(),
    output:
        parquet=f"{TABLES}/metrics.parquet",
        csv=f"{TABLES}/metrics.csv",
        degenerate=f"{TABLES}/degenerate_cells.parquet",
        degenerate_csv=f"{TABLES}/degenerate_cells.csv",
    log:
        "logs/aggregate_metrics/aggregate_metrics.log",
    benchmark:
        "results/benchmarks/aggregate_metrics/aggregate_metrics.tsv"
    conda:
        "../envs/analysis.yaml"
    threads: 1
    script:
        "../workflow_scripts/aggregate_metrics.py"


rule aggregate_phases:
    """Per model x dimension x layer: fitting and compression of I(X;T), I(Y;T) over checkpoints, accuracy plateau."""
    input:
        metrics=f"{TABLES}/metrics.parquet",
    output:
        parquet=f"{TABLES}/phases.parquet",
        csv=report_table(f"{TABLES}/phases.csv", "phases"),
    log:
        "logs/aggregate_phases/aggregate_phases.log",
    benchmark:
        "results/benchmarks/aggregate_phases/aggregate_phases.tsv"
    conda:
        "../envs/analysis.yaml"
    threads: 1
    params:
        input_reference=config["mi"]["input_reference"],
    script:
        "../workflow_scripts/aggregate_phases.py"


rule aggregate_pretrain_loss:
    """The pre-training loss curve of every pre-trained model, from its per-checkpoint loss files."""
    input:
        [
            f"results/pretrain/{model}/losses/{checkpoint}.tsv"
            for model, checkpoint in pretrain_loss_cells()
        ],
    output:
        parquet=f"{TABLES}/pretrain_loss.parquet",
        csv=f"{TABLES}/pretrain_loss.csv",
    log:
        "logs/aggregate_pretrain_loss/aggregate_pretrain_loss.log",
    benchmark:
        "results/benchmarks/aggregate_pretrain_loss/aggregate_pretrain_loss.tsv"
    conda:
        "../envs/analysis.yaml"
    threads: 1
    params:
        cells=pretrain_loss_cells(),
        tokens_per_step={
            model: config["models"][model]["pretrain"]["batch_size"]
            * config["models"][model]["pretrain"]["seq_len"]
            for model in pretrain_models()
        },
    script:
        "../workflow_scripts/aggregate_pretrain_loss.py"


rule aggregate_findings:
    """results/tables/findings: per model x dimension, separability, best probe, controls, phases, steering."""
    input:
        metrics=f"{TABLES}/metrics.parquet",
        phases=f"{TABLES}/phases.parquet",
    output:
        parquet=f"{TABLES}/findings.parquet",
        csv=report_table(f"{TABLES}/findings.csv", "findings"),
    log:
        "logs/aggregate_findings/aggregate_findings.log",
    benchmark:
        "results/benchmarks/aggregate_findings/aggregate_findings.tsv"
    conda:
        "../envs/analysis.yaml"
    threads: 1
    params:
        ci_level=config["probe"]["ci_level"],
    script:
        "../workflow_scripts/aggregate_findings.py"


rule aggregate_summary:
    """results/summary.md rendered from the findings table: one section per model x dimension."""
    input:
        findings=f"{TABLES}/findings.parquet",
        metrics=f"{TABLES}/metrics.parquet",
        phases=f"{TABLES}/phases.parquet",
        degenerate=f"{TABLES}/degenerate_cells.parquet",
    output:
        report_table("results/summary.md", "summary"),
    log:
        "logs/aggregate_summary/aggregate_summary.log",
    benchmark:
        "results/benchmarks/aggregate_summary/aggregate_summary.tsv"
    conda:
        "../envs/analysis.yaml"
    threads: 1
    params:
        ci_level=config["probe"]["ci_level"],
    script:
        "../workflow_scripts/aggregate_summary.py"
