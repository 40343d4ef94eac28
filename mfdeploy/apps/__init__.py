"""Demo apps: copying an artifact into an app project, with the golden file it checks."""
