"""Stored runs turned into paper-ready output: tables (Markdown, LaTeX, CSV) that say how their
numbers were obtained, seaborn figures, and one HTML page showing them all (`kdbench report`)."""
