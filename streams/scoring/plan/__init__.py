"""Plans: the compiled plan (``spec``) and its loader, reader and checks."""
