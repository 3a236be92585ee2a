# jobs/: example run files and Slurm batch scripts.
EXTRA_DIST += jobs/demo.yaml

# The Slurm script and the paper's runs: paper.yaml holds the hyper-parameters, jobs/paper-sweep.sh
# writes jobs/paper/ from it with megasweep (tests/test_sweep.sh checks that jobs/paper/ is current).
jobsdir = $(pkgdatadir)/jobs
dist_jobs_DATA = jobs/megatrain.sbatch jobs/paper.yaml
jobspaperdir = $(pkgdatadir)/jobs/paper
dist_jobspaper_DATA = jobs/paper/sweep.tsv \
  jobs/paper/mega200M-8-mb4.yaml jobs/paper/mega200M-64.yaml jobs/paper/mega200M-256-cp2.yaml \
  jobs/paper/mega1.3B-8-mb8.yaml jobs/paper/mega1.3B-64-mb2.yaml jobs/paper/mega1.3B-256-cp2.yaml \
  jobs/paper/paper7B-8-cp2-mb32.yaml jobs/paper/paper7B-64-cp2-mb4.yaml jobs/paper/paper7B-256-cp2.yaml
EXTRA_DIST += jobs/paper-sweep.sh
