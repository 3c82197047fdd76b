"""The parts' API: all that a method, objective, scheme or student may import from the harness.

`context` (what a part receives while training: `TrainingContext`, `Batch`), `base` (state and
report every part shares), `registry` (registering a part and its typed parameters), `fields`
(value ranges), `losses` and `kd_config` (the KD loss and its settings), `schedules`, `errors`, `tasks` (what a
task is), `features` (a batch's columns and collation), `models` and `generators` (loading
encoders, tokenizers and masked-LM generators), `hub`. Nothing here imports the run pipeline, the
results store or the application; an import-linter contract keeps parts to this package.
"""
