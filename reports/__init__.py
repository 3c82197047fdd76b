"""Turning stored runs into tables (Markdown, CSV) that say how their numbers were obtained."""
