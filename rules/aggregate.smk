# From cells to findings: tidy tables from every cell, then figures and the summary from the tables only, so a
# changed figure never reruns a cell, and a new cell reruns only the aggregation downstream of it. The four
# per-dimension figures share one job (plotting imports cost more than drawing).


rule aggregate_metrics:
    """Gather every probe, MI and steering cell into one tidy metrics table and a list of degenerate cells."""
    input:
        probe=cell_directories("probe"),
        mi=cell_directories("mi"),
        steering=steering_directories(),
    output:
        parquet=f"{TABLES}/metrics.parquet",
        csv=f"{TABLES}/metrics.csv",
        degenerate=f"{TABLES}/degenerate_cells.parquet",
        degenerate_csv=f"{TABLES}/degenerate_cells.csv",
    log:
        "logs/aggregate_metrics/aggregate_metrics.log",
    benchmark:
        "benchmarks/out/aggregate_metrics/aggregate_metrics.tsv"
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
        csv=report(
            f"{TABLES}/phases.csv",
            caption="../report/phases.rst",
            category="Overview",
            subcategory="Tables",
            labels={"table": "phases"},
        ),
    log:
        "logs/aggregate_phases/aggregate_phases.log",
    benchmark:
        "benchmarks/out/aggregate_phases/aggregate_phases.tsv"
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
        "benchmarks/out/aggregate_pretrain_loss/aggregate_pretrain_loss.tsv"
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
        csv=report(
            f"{TABLES}/findings.csv",
            caption="../report/findings.rst",
            category="Overview",
            subcategory="Tables",
            labels={"table": "findings"},
        ),
    log:
        "logs/aggregate_findings/aggregate_findings.log",
    benchmark:
        "benchmarks/out/aggregate_findings/aggregate_findings.tsv"
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
        report(
            "results/summary.md",
            caption="../report/summary.rst",
            category="Overview",
            subcategory="Tables",
            labels={"table": "summary"},
        ),
    log:
        "logs/aggregate_summary/aggregate_summary.log",
    benchmark:
        "benchmarks/out/aggregate_summary/aggregate_summary.tsv"
    conda:
        "../envs/analysis.yaml"
    threads: 1
    params:
        ci_level=config["probe"]["ci_level"],
    script:
        "../workflow_scripts/aggregate_summary.py"


rule plot_dimension:
    """Probe accuracy heatmap and curves, I(X;T)/I(Y;T) curves and information plane of one model x dimension."""
    input:
        metrics=f"{TABLES}/metrics.parquet",
        phases=f"{TABLES}/phases.parquet",
        degenerate=f"{TABLES}/degenerate_cells.parquet",
    output:
        heatmap=report(
            f"{FIGURES}/{{dimension}}/probe_accuracy_heatmap.png",
            caption="../report/probe_accuracy_heatmap.rst",
            category="{dimension}",
            subcategory="{model}",
            labels={"model": "{model}", "figure": "1 probe accuracy heatmap"},
        ),
        heatmap_svg=f"{FIGURES}/{{dimension}}/probe_accuracy_heatmap.svg",
        curves=report(
            f"{FIGURES}/{{dimension}}/probe_accuracy_curves.png",
            caption="../report/probe_accuracy_curves.rst",
            category="{dimension}",
            subcategory="{model}",
            labels={"model": "{model}", "figure": "2 probe accuracy vs step"},
        ),
        curves_svg=f"{FIGURES}/{{dimension}}/probe_accuracy_curves.svg",
        information=report(
            f"{FIGURES}/{{dimension}}/information_curves.png",
            caption="../report/information_curves.rst",
            category="{dimension}",
            subcategory="{model}",
            labels={"model": "{model}", "figure": "3 I(X;T), I(Y;T) vs step"},
        ),
        information_svg=f"{FIGURES}/{{dimension}}/information_curves.svg",
        plane=report(
            f"{FIGURES}/{{dimension}}/information_plane.png",
            caption="../report/information_plane.rst",
            category="{dimension}",
            subcategory="{model}",
            labels={"model": "{model}", "figure": "4 information plane"},
        ),
        plane_svg=f"{FIGURES}/{{dimension}}/information_plane.svg",
    log:
        "logs/plot_dimension/{model}/{dimension}.log",
    benchmark:
        "benchmarks/out/plot_dimension/{model}/{dimension}.tsv"
    conda:
        "../envs/analysis.yaml"
    threads: 1
    script:
        "../workflow_scripts/plot_dimension.py"


rule plot_steering:
    """Change of the likelihood margin vs the vector's source checkpoint, one line per alpha."""
    input:
        metrics=f"{TABLES}/metrics.parquet",
    output:
        png=report(
            f"{FIGURES}/{{dimension}}/steering.png",
            caption="../report/steering.rst",
            category="{dimension}",
            subcategory="{model}",
            labels={"model": "{model}", "figure": "5 steering effect"},
        ),
        svg=f"{FIGURES}/{{dimension}}/steering.svg",
    log:
        "logs/plot_steering/{model}/{dimension}.log",
    benchmark:
        "benchmarks/out/plot_steering/{model}/{dimension}.tsv"
    conda:
        "../envs/analysis.yaml"
    threads: 1
    params:
        target=lambda wildcards: "@".join(
            tt_config.steering_target(config, wildcards.model)
        ),
    script:
        "../workflow_scripts/plot_steering.py"


rule plot_overview:
    """All dimensions of one model on one page: accuracy, I(X;T), I(Y;T) and steering vs step."""
    input:
        metrics=f"{TABLES}/metrics.parquet",
        phases=f"{TABLES}/phases.parquet",
    output:
        png=report(
            f"{FIGURES}/overview.png",
            caption="../report/overview.rst",
            category="Overview",
            subcategory="{model}",
            labels={"model": "{model}", "figure": "overview"},
        ),
        svg=f"{FIGURES}/overview.svg",
    log:
        "logs/plot_overview/{model}.log",
    benchmark:
        "benchmarks/out/plot_overview/{model}.tsv"
    conda:
        "../envs/analysis.yaml"
    threads: 1
    params:
        dimensions=DIMENSIONS,
    script:
        "../workflow_scripts/plot_overview.py"


rule plot_pretrain_loss:
    """Pre-training loss vs step of one pre-trained model, the analysed checkpoints marked."""
    input:
        loss=f"{TABLES}/pretrain_loss.parquet",
    output:
        png=report(
            f"{FIGURES}/pretrain_loss.png",
            caption="../report/pretrain_loss.rst",
            category="Overview",
            subcategory="{model}",
            labels={"model": "{model}", "figure": "pre-training loss"},
        ),
        svg=f"{FIGURES}/pretrain_loss.svg",
    log:
        "logs/plot_pretrain_loss/{model}.log",
    benchmark:
        "benchmarks/out/plot_pretrain_loss/{model}.tsv"
    conda:
        "../envs/analysis.yaml"
    threads: 1
    params:
        checkpoint_steps=lambda wildcards: [
            entry["step"] for entry in config["models"][wildcards.model]["checkpoints"]
        ],
    script:
        "../workflow_scripts/plot_pretrain_loss.py"
