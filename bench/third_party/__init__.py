"""Code vendored from other projects, each folder with its licence and a header naming its source and
what was changed; kdbench's own code wraps it elsewhere."""
