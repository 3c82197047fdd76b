"""The results store: searches kept in Optuna storages (`search.py` runs them), their records, and
runs read back as one table, without training anything."""
