"""Trainyard's work, as plain functions on plain values, grouped by concern. Nothing here imports
Airflow: a step runs the same from a DAG, a test, a notebook or the CLI.

    hashing, project_root   the one place digests are made; where the checkout lives
    store/                  the one storage interface (local directory, MinIO) and the run-artifact layout
    data/                   snapshot (and the source tree rule), stat cache, dataset reader, schemas, validation
    training/               the trainer contract and the runtime every trainer shares (runs inside trainers)
    catalog/                the dataset catalog, the algorithm registry, retraining schedules, teams
    images/                 what pins a trainer: image digests from a registry, the embedded trainer's code hash
    kubernetes/             rendering a run as Kubernetes objects
    executors/              running a trainer: local subprocess, podman/docker container
    lifecycle/              plan, train, evaluate, register; the model registry, manifests, replay, reproduce, lineage, verify
    tuning/                 hyperparameter studies: search spaces, Optuna samplers in waves, study records and plots
"""
