"""The run pipeline: settings, data, the teacher and its cached outputs, pools, training with the
chosen parts, checkpoints and the run record (`runs.py` puts them together)."""
