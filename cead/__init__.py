"""The `cead` command line and the multi-organisation demo."""
