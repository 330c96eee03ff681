"""Slurm: sbatch scripts rendered from jinja2 templates (render.py) and job submission/status (jobs.py)."""
