# jobs/: example run files and (later) Slurm batch scripts.
EXTRA_DIST += jobs/demo.yaml
