"""Sub-commands of the `mfdeploy` CLI, one module each."""
